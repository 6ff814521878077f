"""The committed fixtures are what fairseq's own code builds, byte for byte, and its references are fairseq's."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import torch
from conftest import ALL, FIXTURES, reference


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".pt", ".txt", ".model")}


def test_rebuild_is_byte_identical(tmp_path):
    subprocess.run([sys.executable, str(FIXTURES / "make_fixtures.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ALL:
        assert _digest(tmp_path / name) == _digest(FIXTURES / name), name


def test_fixture_sizes_and_norms_away_from_identity():
    for name in ALL:
        assert (FIXTURES / name / "model.pt").stat().st_size < 1_000_000
        ckpt = torch.load(FIXTURES / name / "model.pt", weights_only=False)
        for key, t in ckpt["model"].items():
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
    assert next(iter(torch.load(FIXTURES / "preln_fp16" / "model.pt", weights_only=False)["model"].values())).dtype \
        == torch.float16
