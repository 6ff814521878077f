"""The installed `xlmr` console script works as a user runs it (a real process, real stdout/stderr)."""

from __future__ import annotations

import json
import subprocess

from conftest import fixture, xlmr_script


def test_entry_point_inspect_and_error(tmp_path):
    r = subprocess.run(
        [xlmr_script(), "inspect", str(fixture("preln_heads")), "--json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["description"]["classification_heads"] == {"mnli": 3, "sentence_classification_head": 2}
    r = subprocess.run([xlmr_script(), "inspect", str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_entry_point_convert(tmp_path):
    r = subprocess.run(
        [xlmr_script(), "convert", str(fixture("postln_legacy")), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "lm logits" in r.stdout and "converted" in r.stdout
    assert (tmp_path / "out" / "model.safetensors").exists()
