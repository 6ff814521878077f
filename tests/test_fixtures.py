"""The committed fixtures are what fairseq's own code builds, byte for byte, and its references are fairseq's.

Checkpoints, dict.txt and sentencepiece models are compared byte for byte on any machine. The recorded forward
outputs (reference.pt) are floats computed by this machine's kernels, which round differently per CPU vendor
(~1e-6 in fp32, ~4e-3 in fp16 between an Intel and an AMD machine): they are compared with a tolerance that fits
the dtype."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ALL, CONFIGURATIONS, FIXTURES, reference

RECORDED = "reference.pt"  # floats from a forward pass: machine-dependent in the last bits
# Tolerance per dtype for recomputed outputs: a few hundred ulps of the values' scale (logits ~ 1-10).
REBUILD_TOL = {torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 2e-1}


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".pt", ".txt", ".model") and p.name != RECORDED
    }


def _close(a, b, path: str) -> None:
    """Recorded outputs: same structure, same ids/texts exactly, floats within the dtype's tolerance."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        if a.is_floating_point():
            assert (a.float() - b.float()).abs().max().item() <= REBUILD_TOL[a.dtype], path
        else:
            assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rebuilt")
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), "--out", str(out)], check=True, capture_output=True
    )
    return out


@pytest.mark.parametrize("name", ALL + CONFIGURATIONS)
def test_rebuild_is_byte_identical(rebuilt, name):
    assert _digest(rebuilt / name) == _digest(FIXTURES / name), name


@pytest.mark.parametrize("name", ALL)
def test_rebuilt_references_agree_within_dtype_tolerance(rebuilt, name):
    _close(torch.load(rebuilt / name / RECORDED, weights_only=True), reference(name), name)


def test_no_fixture_folder_is_left_unlisted():
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == {*ALL, *CONFIGURATIONS, "trained"}  # trained/: tests/test_trained_fixtures.py lists its own


def test_fixture_sizes_and_norms_away_from_identity():
    for name in ALL + CONFIGURATIONS:
        assert (FIXTURES / name / "model.pt").stat().st_size < 1_000_000
        ckpt = torch.load(FIXTURES / name / "model.pt", weights_only=False)
        for key, t in ckpt["model"].items():
            if key.endswith(("weight_u", "weight_v")):  # spectral norm's power-iteration vectors
                continue
            if "norm" in key and key.endswith("weight"):
                assert (t.float() - 1).abs().min() > 0.0, key
            if key.endswith("bias"):
                assert t.float().abs().min() > 0.0, key


def test_reference_batch_is_padded_multilingual_with_512_tokens_and_unknowns():
    ref = reference("preln")
    lengths = [len(t) for t in ref["token_ids"]]
    assert max(lengths) == 512 and min(lengths) < 20 and len(lengths) >= 5
    assert any((t == 3).sum() >= 3 for t in ref["token_ids"])  # a text of unknown characters
    assert ref["mask_id"] == 248  # after the 7 padding fillers of the padded dictionary
    assert reference("postln_legacy")["mask_id"] == 241
    heads = reference("preln_heads")["heads"]
    assert heads["mnli"].shape == (7, 3) and heads["sentence_classification_head"].shape == (7, 2)


def test_layouts_match_the_releases():
    legacy = (FIXTURES / "postln_legacy" / "model.pt").read_bytes()
    assert not legacy.startswith(b"PK")  # torch's legacy (non-zip) serialization, like the 2019 files
    assert (FIXTURES / "preln" / "model.pt").read_bytes().startswith(b"PK")
    old = torch.load(FIXTURES / "postln_legacy" / "model.pt", weights_only=False)
    assert "cfg" not in old and old["args"].arch == "roberta_base"
    assert any(".emb_layer_norm." in k for k in old["model"]) and all(k.startswith("decoder.") for k in old["model"])
    new = torch.load(FIXTURES / "preln" / "model.pt", weights_only=False)
    assert new["cfg"]["model"].arch == "roberta_prenorm"
    assert (
        next(iter(torch.load(FIXTURES / "preln_fp16" / "model.pt", weights_only=False)["model"].values())).dtype
        == torch.float16
    )
