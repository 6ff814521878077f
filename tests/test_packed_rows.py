"""Packed rows: texts back to back in one row, each library masking attention to each text's own tokens, must give
what padded batches give — checked against the full forward of both models (padded batches, whole models)."""

from __future__ import annotations

import pytest
import torch
from conftest import fixture
from full_forward import compare_outputs

from xlmr_tools import convert
from xlmr_tools.compare.layerwise import FairseqRunner, HFRunner, compare_streamed
from xlmr_tools.compare.oracle import FairseqOracle
from xlmr_tools.compare.stages import Group
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.sources.fairseq import open_checkpoint
from xlmr_tools.sources.hf import open_folder

TEXTS = [*DEFAULT_TEXTS[:5], "Привет, мир! " * 20]


@pytest.mark.parametrize(("name", "head"), [("preln", None), ("postln_legacy", None), ("preln_heads", "mnli")])
def test_packed_rows_give_the_figures_of_padded_batches(name, head, tmp_path):
    """bf16 folder against fp32 fairseq, so every stage differs a little: a text attending to another text's tokens,
    a position taken from the wrong text or a head reading the wrong token would change the figures."""
    folder = tmp_path / "bf16"
    convert(fixture(name), folder, dtype="bfloat16", head=head)
    ckpt = open_checkpoint(fixture(name))
    _, full = compare_outputs(ckpt, folder, head, torch.float32, TEXTS, 1.0)
    oracle = FairseqOracle(ckpt, torch.float32, materialize=False)
    ids = [oracle.encode(t) for t in TEXTS]
    lengths = [len(t) for t in ids]
    assert len(set(lengths)) == len(lengths)
    groups = [Group([0, 2, 4, 5], packed=True), Group([1, 3])]  # a packed row beside a padded batch
    streamed = compare_streamed(
        FairseqRunner(oracle, torch.float32, "cpu", head),
        HFRunner(open_folder(folder), torch.float32, "cpu", head),
        ids,
        oracle.dictionary.pad(),
        1.0,
        torch.float32,
        groups=groups,
    )
    assert streamed.performance is not None
    assert streamed.performance.padded_tokens == sum(lengths[i] for i in (0, 2, 4, 5)) + 2 * max(lengths[1], lengths[3])
    assert [r.stage for r in full.rows] == [r.stage for r in streamed.rows]
    for f, s in zip(full.rows, streamed.rows):
        assert f.max_abs > 0
        assert abs(f.max_abs - s.max_abs) <= 1e-6 * max(1.0, f.max_abs), f.stage
        assert abs(f.mean_abs - s.mean_abs) <= 1e-6 * max(1.0, f.mean_abs), f.stage
        assert (f.text, f.token) == (s.text, s.token), f.stage
