"""`xlmr inspect` on every fixture and on HF folders: values, not just exit codes."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import fixture

EXPECTED = {
    "postln_legacy": dict(
        family="post-ln",
        hf_model_type="xlm-roberta",
        vocab_rows=242,
        dtype="float32",
        classification_heads={},
        tied_lm_head=True,
    ),
    "postln_untied": dict(family="post-ln", vocab_rows=242, dtype="float32", tied_lm_head=False),
    "preln": dict(
        family="pre-ln", hf_model_type="xlm-roberta-xl", vocab_rows=249, dtype="float32", classification_heads={}
    ),
    "preln_heads": dict(family="pre-ln", classification_heads={"mnli": 3, "sentence_classification_head": 2}),
    "preln_fp16": dict(family="pre-ln", dtype="float16"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_inspect_fixture_json(cli, name):
    r = cli("inspect", fixture(name), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    d = data["description"]
    assert (d["layers"], d["hidden"], d["heads"], d["ffn"], d["position_rows"], d["max_positions"]) == (
        2,
        64,
        4,
        128,
        514,
        512,
    )
    for key, value in EXPECTED[name].items():
        assert d[key] == value, key
    assert data["kind"] == "fairseq"
    assert data["details"]["serialization"] == ("legacy" if name == "postln_legacy" else "zip")


def test_inspect_table_mentions_fillers_and_mask(cli):
    r = cli("inspect", fixture("preln") / "model.pt")
    assert r.exit_code == 0
    assert "pre-ln → xlm-roberta-xl" in r.stdout
    assert "<mask> = 248" in r.stdout and "7 padding fillers" in r.stdout
    assert "padding fillers" in r.stderr  # the warning goes to stderr


def test_inspect_tensors_lists_original_names(cli):
    r = cli("inspect", fixture("postln_legacy"), "--tensors", "--json")
    rows = json.loads(r.stdout)["tensors"]
    names = {row["name"]: row for row in rows}
    assert names["decoder.sentence_encoder.emb_layer_norm.weight"]["shape"] == [64]
    assert names["decoder.sentence_encoder.embed_tokens.weight"] == {
        "name": "decoder.sentence_encoder.embed_tokens.weight",
        "shape": [242, 64],
        "dtype": "float32",
    }


def test_inspect_hf_folder(cli, converted):
    r = cli("inspect", converted["preln_heads:mnli"], "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["kind"] == "hf" and data["format"] == "safetensors"
    assert data["description"]["family"] == "pre-ln"
    assert data["description"]["classification_heads"] == {"classifier": 3}
    assert data["details"]["model_type"] == "xlm-roberta-xl"
    assert "tokenizer.json" in data["tokenizer"]["files"]
    assert data["warnings"] == []


def test_inspect_warns_on_wrong_model_type(cli, converted, tmp_path):
    """What the old script writes: model_type xlm-roberta over pre-LN weights reloads as the wrong class."""
    bad = tmp_path / "bad"
    shutil.copytree(converted["preln"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model_type"] = "xlm-roberta"
    (bad / "config.json").write_text(json.dumps(cfg))
    r = cli("inspect", bad)
    assert r.exit_code == 0
    assert "model_type 'xlm-roberta'" in r.stderr and "wrong class" in r.stderr
