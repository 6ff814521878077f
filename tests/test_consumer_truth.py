"""The proof is what users load: a folder that AutoModel*/AutoTokenizer load as something else than the checkpoint
never verifies, and `diff` sees every difference that changes what loads — the truth established in each test by
loading the folder with transformers (or safetensors) itself, not by our reader.

Each hostile folder is made from a good conversion of the pre-LN fixture; each was accepted (exit 0) before the
load view (sources/loaded.py), the library's header rules and the whole-vocabulary tokenizer check."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from conftest import fixture
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

SRC = "preln"
IDS = torch.tensor([[0, 10, 20, 30, 40, 2]])


def _copy(converted: dict[str, Path], tmp: Path, name: str) -> Path:
    folder = tmp / name
    shutil.copytree(converted[SRC], folder)
    return folder


def _config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | changes, indent=2))


def _wrong(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every matrix but the embeddings moved by 0.5: a model that computes something else."""
    return {k: v + 0.5 if v.dim() == 2 and "embeddings" not in k else v for k, v in tensors.items()}


def _logits(folder: Path) -> tuple[torch.Tensor, dict]:
    model, info = AutoModelForMaskedLM.from_pretrained(str(folder), output_loading_info=True, dtype=torch.float32)
    with torch.no_grad():
        return model.eval()(IDS).logits, info


def _loads_differently(good: Path, bad: Path) -> bool:
    """The truth, by transformers: the bad folder's logits are not the good one's."""
    ref, _ = _logits(good)
    got, _ = _logits(bad)
    return not torch.allclose(ref, got, atol=1e-4)


# ------------------------------------------------------------------------------------- folders that load wrongly


def _tie_off(folder: Path) -> None:
    _config(folder, tie_word_embeddings=False)  # no decoder in the files: transformers initialises it


def _index_beside_single(folder: Path) -> None:
    good = load_file(folder / "model.safetensors")
    save_file(good, folder / "model-00001-of-00001.safetensors", metadata={"format": "pt"})
    index = {"metadata": {"total_size": 0}, "weight_map": dict.fromkeys(good, "model-00001-of-00001.safetensors")}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    save_file(_wrong(good), folder / "model.safetensors", metadata={"format": "pt"})  # what transformers loads


def _config_names_other_file(folder: Path) -> None:
    save_file(_wrong(load_file(folder / "model.safetensors")), folder / "other.safetensors", metadata={"format": "pt"})
    _config(folder, transformers_weights="other.safetensors")


def _decoder_model(folder: Path) -> None:
    _config(folder, is_decoder=True)  # causal attention


def _layer_norm_eps(folder: Path) -> None:
    _config(folder, layer_norm_eps=1e-12)


def _activation(folder: Path) -> None:
    _config(folder, hidden_act="relu")


def _pad_id(folder: Path) -> None:
    _config(folder, pad_token_id=0)  # position ids are counted from the pad id


WRONG_LOADS = {
    "tie_word_embeddings false, no decoder": _tie_off,
    "index beside model.safetensors": _index_beside_single,
    "config.json names another weights file": _config_names_other_file,
    "is_decoder": _decoder_model,
    "layer_norm_eps": _layer_norm_eps,
    "hidden_act": _activation,
    "pad_token_id": _pad_id,
}


@pytest.mark.parametrize("case", list(WRONG_LOADS))
def test_a_folder_transformers_loads_wrongly_never_verifies(cli, converted, tmp_path, case):
    bad = _copy(converted, tmp_path, "bad")
    WRONG_LOADS[case](bad)
    assert _loads_differently(converted[SRC], bad)  # the truth, by transformers itself
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    assert not json.loads(r.stdout)["ok"]
    assert cli("diff", converted[SRC], bad).exit_code == 1  # HF vs HF
    assert cli("diff", fixture(SRC), bad).exit_code == 1  # the checkpoint vs HF


def test_tying_turned_off_is_named(cli, converted, tmp_path):
    bad = _copy(converted, tmp_path, "bad")
    _tie_off(bad)
    _, info = _logits(bad)
    assert info["missing_keys"] == {"lm_head.decoder.weight", "lm_head.decoder.bias"}
    r = cli("verify", fixture(SRC), bad, "--json")
    data = json.loads(r.stdout)
    assert data["load"]["missing"] == ["lm_head.decoder.weight", "lm_head.decoder.bias"]
    assert any("would initialise 2 tensor(s)" in f for f in data["failures"])
    row = next(c for c in data["config"] if c["item"] == "tie_word_embeddings")
    assert row["expected"] is True and row["actual"] is False and not row["ok"]


def test_the_file_transformers_selects_is_the_one_compared(cli, converted, tmp_path):
    """The reverse too: good values where transformers looks and wrong ones where it does not look verify."""
    folder = _copy(converted, tmp_path, "ok")
    good = load_file(folder / "model.safetensors")
    save_file(_wrong(good), folder / "model-00001-of-00001.safetensors", metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": dict.fromkeys(good, "model-00001-of-00001.safetensors")}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    save_file(_wrong(good), folder / "unused.safetensors", metadata={"format": "pt"})
    assert not _loads_differently(converted[SRC], folder)
    r = cli("verify", fixture(SRC), folder)
    assert r.exit_code == 0, r.output
    assert "transformers loads model.safetensors and ignores it" in cli("inspect", folder).output


def test_legacy_layer_norm_names_load_and_verify(cli, converted, tmp_path):
    """transformers renames `LayerNorm.gamma/beta` when it loads (its own rename rules): such a folder loads the same
    model, and verifies."""
    folder = _copy(converted, tmp_path, "gamma")
    tensors = load_file(folder / "model.safetensors")
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in tensors.items()}  # fmt: skip
    assert renamed.keys() != tensors.keys()
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    ref, _ = _logits(converted[SRC])
    got, info = _logits(folder)
    assert not info["missing_keys"] and torch.equal(ref, got)
    assert cli("verify", fixture(SRC), folder).exit_code == 0


def test_absurd_layer_count_fails_fast_without_building_it(cli, converted, tmp_path):
    bad = _copy(converted, tmp_path, "bad")
    _config(bad, num_hidden_layers=10_000_000)
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1
    assert any("num_hidden_layers=10000000 but the weights have 2" in f for f in json.loads(r.stdout)["failures"])


# ------------------------------------------------------------------------ headers the safetensors library refuses


def _edit_header(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n :])


def _first(header: dict) -> str:
    return min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def _float_shape(h: dict) -> None:
    h[_first(h)]["shape"] = [float(d) for d in h[_first(h)]["shape"]]


def _string_offsets(h: dict) -> None:
    h[_first(h)]["data_offsets"] = [str(o) for o in h[_first(h)]["data_offsets"]]


def _gap(h: dict) -> None:
    second = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])[1]
    del h[second]  # its bytes become a hole between two tensors


def _metadata_list(h: dict) -> None:
    h["__metadata__"] = ["format", "pt"]


@pytest.mark.parametrize("edit", [_float_shape, _string_offsets, _gap, _metadata_list], ids=lambda f: f.__name__[1:])
def test_a_header_the_library_refuses_never_verifies(cli, converted, tmp_path, edit):
    bad = _copy(converted, tmp_path, "bad")
    _edit_header(bad, edit)
    with pytest.raises(Exception, match="Error while deserializing header"):  # the truth: the library refuses it
        safe_open(str(bad / "model.safetensors"), framework="pt")
    for argv in (("verify", fixture(SRC), bad), ("diff", converted[SRC], bad), ("inspect", bad)):
        r = cli(*argv)
        assert r.exit_code == 2, (argv, r.output)
        assert "the safetensors library refuses this file" in r.stderr and "Traceback" not in r.output


# --------------------------------------------------------------------------------------- the whole vocabulary


def test_two_swapped_ids_no_sample_text_uses_are_found(cli, converted, tmp_path):
    from xlmr_tools.compare.texts import DEFAULT_TEXTS

    bad = _copy(converted, tmp_path, "bad")
    tok = json.loads((bad / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    good = AutoTokenizer.from_pretrained(str(converted[SRC]))
    used = {i for text in DEFAULT_TEXTS for i in good(text)["input_ids"]}
    a, b = [i for i in range(4, len(vocab) - 1) if i not in used and not vocab[i][0].endswith("\u2581")][:2]
    vocab[a][0], vocab[b][0] = vocab[b][0], vocab[a][0]
    (bad / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    swapped = AutoTokenizer.from_pretrained(str(bad))
    word = good.convert_ids_to_tokens(a).replace("\u2581", " ")
    assert swapped(word)["input_ids"] != good(word)["input_ids"]  # the truth: AutoTokenizer gives other ids
    assert all(swapped(t)["input_ids"] == good(t)["input_ids"] for t in DEFAULT_TEXTS)  # the samples cannot tell
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]["vocabulary"]}
    assert not rows["vocabulary"]["ok"] and f"id {a}" in rows["vocabulary"]["note"]
    r = cli("diff", converted[SRC], bad, "--json")
    assert r.exit_code == 1 and any("tokenizer vocabulary" in f for f in json.loads(r.stdout)["failures"])


def test_a_tokenizer_pipeline_written_otherwise_is_judged_by_its_ids(cli, converted, tmp_path):
    """An equivalent pipeline in another form passes (same ids on the probe corpus); a changed one fails."""
    same = _copy(converted, tmp_path, "same")
    tok = json.loads((same / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [tok["pre_tokenizer"]]}  # a no-op wrapper
    (same / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    r = cli("verify", fixture(SRC), same, "--json")
    assert r.exit_code == 0, r.output
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]["vocabulary"]}
    assert rows["pipeline"]["ok"] and "written differently" in rows["pipeline"]["note"]
    lower = _copy(converted, tmp_path, "lower")
    tok = json.loads((lower / "tokenizer.json").read_text())
    tok["normalizer"] = {"type": "Sequence", "normalizers": [tok["normalizer"], {"type": "Lowercase"}]}
    (lower / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    r = cli("verify", fixture(SRC), lower, "--json")
    assert r.exit_code == 1
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]["vocabulary"]}
    assert not rows["pipeline"]["ok"] and "normalizer" in rows["pipeline"]["note"]
