"""Comparing: stage accumulators, tensor diffs, the writer's read-back proof, fairseq as the oracle, the
layer-by-layer runners."""
