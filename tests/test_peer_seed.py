"""The old HF script, run as a peer on the pre-LN fixture, writes the same tensors as we do (its config is wrong)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import fixture

from xlmr_tools.io.safetensors import SafetensorsFile

RUN_SEED = Path(__file__).parent / "peers" / "run_seed.py"


def run_seed(out: Path, classification_head: bool = False) -> None:
    args = [
        sys.executable,
        str(RUN_SEED),
        "--roberta_checkpoint_path",
        str(fixture("preln_heads")),
        "--pytorch_dump_folder_path",
        str(out),
    ] + (["--classification_head"] if classification_head else [])
    subprocess.run(args, check=True, capture_output=True)


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    st = SafetensorsFile(folder / "model.safetensors")
    return {n: st.tensor(n) for n in st.infos}


def test_seed_and_ours_hold_identical_tensors(tmp_path, converted):
    run_seed(tmp_path / "seed")
    theirs, ours = _tensors(tmp_path / "seed"), _tensors(converted["preln_heads"])
    # The seed assigns the fairseq LM bias to lm_head.decoder.bias only, leaving lm_head.bias at its zero init.
    # transformers 5 ties decoder.bias to lm_head.bias on load, so the seed's folder silently loses the LM bias.
    assert torch.equal(theirs.pop("lm_head.decoder.bias"), ours["lm_head.bias"])
    assert torch.count_nonzero(theirs["lm_head.bias"]) == 0 and torch.count_nonzero(ours["lm_head.bias"]) > 0
    theirs["lm_head.bias"] = ours["lm_head.bias"]
    assert set(theirs) == set(ours)
    for name in ours:
        assert torch.equal(theirs[name], ours[name]), name
    # ... but its config names the non-XL model type: the folder reloads as the wrong class.
    assert json.loads((tmp_path / "seed" / "config.json").read_text())["model_type"] == "xlm-roberta"
    assert json.loads((converted["preln_heads"] / "config.json").read_text())["model_type"] == "xlm-roberta-xl"
