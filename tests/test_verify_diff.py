"""`xlmr verify` and `xlmr diff`: pass on our conversions, point at what differs, fail the old script's config."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from conftest import ALL, fixture
from test_peer_seed import run_seed

from tests.helpers.full_forward import compare_outputs
from xlmr_tools import convert, verify
from xlmr_tools.sources.fairseq import open_checkpoint


def _perturb(src: Path, dest: Path, tensor: str, delta: float = 1e-3) -> None:
    """Copy an HF folder and add `delta` to one element of one tensor, in place in the safetensors bytes."""
    shutil.copytree(src, dest)
    path = dest / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    begin = 8 + n + header[tensor]["data_offsets"][0]
    (value,) = struct.unpack("<f", data[begin : begin + 4])
    data[begin : begin + 4] = struct.pack("<f", value + delta)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ALL)
def test_verify_passes_on_our_conversions(cli, converted, name):
    r = cli("verify", fixture(name), converted[name], "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ok"] and data["failures"] == []
    assert all(row["ok"] for row in data["config"])
    assert data["weights"]["ok"] and data["tokenizer"]["equal"]
    stages = [s["stage"] for s in data["outputs"]["stages"]]
    assert stages[:3] == ["embeddings", "layer 0", "layer 1"] and stages[-1] == "lm logits"


@pytest.mark.parametrize("head", ["mnli", "sentence_classification_head"])
def test_verify_passes_for_each_head(cli, converted, head):
    r = cli("verify", fixture("preln_heads"), converted[f"preln_heads:{head}"], "--head", head, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outputs"]["stages"][-1]["stage"] == f"head {head}"


def test_perturbed_layer_is_found(cli, converted, tmp_path):
    bad = tmp_path / "bad"
    tensor = "roberta.encoder.layer.1.intermediate.dense.weight"
    _perturb(converted["preln"], bad, tensor)
    r = cli("verify", fixture("preln"), bad, "--report", tmp_path / "report.json")
    assert r.exit_code == 1
    assert "weights differ in layer 1" in r.stderr
    data = json.loads((tmp_path / "report.json").read_text())
    bad_groups = [g for g in data["weights"]["groups"] if not g["ok"]]
    assert [g["group"] for g in bad_groups] == ["layer 1"] and bad_groups[0]["worst"] == tensor
    stages = {s["stage"]: s for s in data["outputs"]["stages"]}
    assert stages["layer 0"]["ok"] and not stages["layer 1"]["ok"]  # the outputs part ways exactly at layer 1
    r = cli("diff", converted["preln"], bad)
    assert r.exit_code == 1 and tensor in r.stdout


def test_old_script_folder_fails_on_model_type(cli, tmp_path):
    run_seed(tmp_path / "seed")
    r = cli("verify", fixture("preln_heads"), tmp_path / "seed", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    row = next(c for c in data["config"] if c["item"] == "model_type")
    assert not row["ok"] and row["actual"] == "xlm-roberta"
    assert "xlm-roberta-xl" in row["note"] and "wrong outputs without an error" in row["note"]
    # Its transformer weights are right; only the LM bias (left at zero, see test_peer_seed) differs.
    bad = [g["group"] for g in data["weights"]["groups"] if not g["ok"]]
    assert bad == ["lm head"]
    stages = {s["stage"]: s["ok"] for s in data["outputs"]["stages"]}
    assert stages["final norm"] and not stages["lm logits"]


def test_diff_fp32_vs_bf16(cli, converted, tmp_path):
    convert(fixture("preln"), tmp_path / "bf16", dtype="bfloat16")
    r = cli("diff", converted["preln"], tmp_path / "bf16", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    worst = max(t["max_abs"] for t in data["weights"]["tensors"])
    assert 0 < worst < 0.01  # bf16 rounding: bounded, non-zero
    assert cli("diff", converted["preln"], tmp_path / "bf16", "--tol", "0.01").exit_code == 0
    r = cli(
        "diff", converted["preln"], tmp_path / "bf16", "--tol", "0.01", "--outputs", "--output-tol", "0.1", "--json"
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outputs"]["stages"][0]["max_abs"] > 0


def test_diff_fairseq_against_hf_and_fairseq(cli, converted):
    assert cli("diff", fixture("preln"), converted["preln"], "--outputs").exit_code == 0
    r = cli("diff", fixture("preln"), fixture("preln_heads"), "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 1 and len(data["weights"]["extra"]) == 8


def test_streamed_outputs_equal_a_full_forward(converted, tmp_path):
    """The streaming glue is faithful: per-stage figures equal those of fairseq's and transformers' full forwards."""
    convert(fixture("preln"), tmp_path / "bf16", dtype="bfloat16")
    ckpt = open_checkpoint(fixture("preln"))
    _, full = compare_outputs(ckpt, tmp_path / "bf16", None, torch.float32, ["Hello world!", "Привет, мир! " * 20], 1.0)
    streamed = verify(
        fixture("preln"), tmp_path / "bf16", dtype="float32", texts=["Hello world!", "Привет, мир! " * 20], tol=1.0
    ).outputs
    assert [r.stage for r in full.rows] == [r.stage for r in streamed.rows]
    for f, s in zip(full.rows, streamed.rows):
        assert f.max_abs > 0
        assert abs(f.max_abs - s.max_abs) <= 1e-6 * max(1.0, f.max_abs), f.stage


def test_clear_errors(cli, converted, tmp_path):
    r = cli("verify", fixture("preln_heads"), converted["preln_heads:mnli"], "--head", "nope")
    assert r.exit_code == 2 and "mnli, sentence_classification_head" in r.stderr
    r = cli("verify", fixture("postln_legacy"), converted["preln"])
    assert r.exit_code == 2 and "families do not match" in r.stderr
    r = cli("diff", converted["postln_legacy"], converted["preln"])
    assert r.exit_code == 2 and "families do not match" in r.stderr
    sharded = tmp_path / "sharded"
    convert(fixture("preln"), sharded, max_shard_size="100KB")
    next(sharded.glob("model-00002-*.safetensors")).unlink()
    r = cli("verify", fixture("preln"), sharded)
    assert r.exit_code == 2 and "shard listed in model.safetensors.index.json is missing" in r.stderr
    if not torch.cuda.is_available():
        r = cli("verify", fixture("preln"), converted["preln"], "--device", "cuda")
        assert r.exit_code == 2 and "no CUDA device" in r.stderr


def test_verify_and_diff_choose_the_compared_head_in_one_place(cli, converted):
    """Which of the checkpoint's heads a folder is compared by is decided once (mapping.config.compared_head): the
    folder's classifier is the checkpoint's head named with --head; where the checkpoint has two heads and none is
    named, verify and diff refuse alike, naming the folder and the heads."""
    folder = converted["preln_heads:mnli"]
    for command in ("verify", "diff"):
        r = cli(command, fixture("preln_heads"), folder)
        assert r.exit_code == 2, (command, r.stderr)
        said = " ".join(r.stderr.split())
        assert f"{folder}: the folder holds a classifier; name the checkpoint's head with --head" in said, command
        assert "(heads: mnli, sentence_classification_head)" in said, command
        assert cli(command, fixture("preln_heads"), folder, "--head", "mnli", "-q").exit_code == 0, command


def test_auto_dtype_is_decided_in_one_place():
    """`--dtype auto` for every command (model.run_dtype): the one model's own dtype (convert's checkpoint, verify's
    folder as from_pretrained loads it, written or run as it is); two models' (diff) where they share one of the
    CLI's dtypes, else float32; a named dtype as named."""
    from xlmr_tools.errors import BadInput
    from xlmr_tools.model import run_dtype

    assert run_dtype("auto", torch.bfloat16) == torch.bfloat16
    assert run_dtype("auto", torch.float64) == torch.float64
    assert run_dtype("auto", torch.float16, torch.float16) == torch.float16
    assert run_dtype("auto", torch.float32, torch.bfloat16) == torch.float32
    assert run_dtype("auto", torch.float64, torch.float64) == torch.float32
    assert run_dtype("float16", torch.float32) == torch.float16
    with pytest.raises(BadInput, match="--dtype must be"):
        run_dtype("auto")
    with pytest.raises(BadInput, match="--dtype must be"):
        run_dtype("fp8", torch.float32)


def test_unused_pooler_is_not_a_defect_but_diff_lists_it(cli, converted, tmp_path):
    """Folders saved from XLMRobertaModel carry a pooler the MLM head never uses: verify passes, diff shows it."""
    from safetensors.torch import save_file

    from xlmr_tools.io.safetensors import SafetensorsFile

    folder = tmp_path / "with-pooler"
    shutil.copytree(converted["preln"], folder)
    st = SafetensorsFile(folder / "model.safetensors")
    tensors = {n: st.tensor(n).clone() for n in st.infos}
    tensors["roberta.pooler.dense.weight"] = torch.ones(64, 64)
    tensors["roberta.pooler.dense.bias"] = torch.ones(64)
    del st
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert cli("verify", fixture("preln"), folder, "-q").exit_code == 0
    r = cli("diff", converted["preln"], folder, "--json")
    assert r.exit_code == 1 and "roberta.pooler.dense.weight" in json.loads(r.stdout)["weights"]["extra"]


def test_folder_missing_a_tensor_fails_cleanly(cli, converted, tmp_path):
    from safetensors.torch import save_file

    from xlmr_tools.io.safetensors import SafetensorsFile

    folder = tmp_path / "missing"
    shutil.copytree(converted["preln"], folder)
    st = SafetensorsFile(folder / "model.safetensors")
    tensors = {
        n: st.tensor(n).clone()
        for n in st.infos
        if n != "roberta.encoder.layer.1.fc2.weight" and n != "roberta.encoder.layer.1.output.dense.weight"
    }
    del st
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    r = cli("verify", fixture("preln"), folder)
    assert r.exit_code == 1 and "would initialise 1 tensor" in r.stderr and "Traceback" not in r.output
    r = cli("diff", converted["preln"], folder, "--outputs", "--json")
    assert r.exit_code == 1 and any(f.startswith("only in") for f in json.loads(r.stdout)["failures"])
