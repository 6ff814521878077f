"""The old script's way of checking a conversion, as a baseline for bench_verify.py: both full models in memory.

Loads the fairseq model with fairseq's hub loader (full torch.load, weights_only worked around) and the HF folder
with AutoModelForMaskedLM.from_pretrained, runs the default sample batch through both, prints max |Δ| of the logits.

    python -m benchmarks.full_models_verify FAIRSEQ_FOLDER HF_FOLDER
"""

from __future__ import annotations

import argparse
import sys

import torch


def main() -> None:
    from fairseq.models.roberta import RobertaModel
    from transformers import AutoModelForMaskedLM

    from xlmr_tools.compare.texts import DEFAULT_TEXTS

    src, folder = sys.argv[1], sys.argv[2]
    with torch.serialization.safe_globals([argparse.Namespace]):
        hub = RobertaModel.from_pretrained(
            src, checkpoint_file="model.pt", bpe="sentencepiece", sentencepiece_model=f"{src}/sentencepiece.bpe.model"
        )
    hub.eval()
    hf = AutoModelForMaskedLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True).eval()
    worst = 0.0
    with torch.no_grad():
        for text in DEFAULT_TEXTS[:2]:  # one sentence at a time, as the old script: no padded batch
            ids = hub.encode(text)[:512].unsqueeze(0)
            worst = max(worst, (hub.model(ids)[0] - hf(input_ids=ids).logits).abs().max().item())
    print(f"max|Δ| logits {worst:.3e}")


if __name__ == "__main__":
    main()
