"""X-MOD (fairseq's xmod_base / xmod_large_prenorm: per-language adapters) -> transformers' Xmod*.

Checked against fairseq's own hub loader (`XMODModel.from_pretrained`) through every language's adapters; a folder
whose adapters are swapped between two languages must fail verification.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import error_lines, fixture
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from tests.helpers.full_forward import TEXTS, fairseq_hub, padded_batch
from xlmr_tools import convert, inspect_path, verify

LANGUAGES = {"xmod_base": ["en_XX", "de_DE", "fr_XX"], "xmod_large_prenorm": ["en_XX", "ru_RU", "zh_CN"]}


@pytest.mark.parametrize("name", list(LANGUAGES))
def test_every_language_matches_fairseq_hub(tmp_path, name):
    out = tmp_path / "out"
    result = convert(fixture(name), out)
    assert result.model_class == "XmodForMaskedLM"
    assert result.outputs.languages == LANGUAGES[name] and all(r.max_abs <= 1e-5 for r in result.outputs.rows)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "xmod" and config["languages"] == LANGUAGES[name]
    assert config["default_language"] == "en_XX" and config["pre_norm"] == (name == "xmod_large_prenorm")
    model, info = AutoModelForMaskedLM.from_pretrained(
        str(out), dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert {k: v for k, v in info.items() if v} == {}, info
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = fairseq_hub(fixture(name))
    ids = [hub.encode(t) for t in TEXTS]
    assert [tok(t)["input_ids"] for t in TEXTS] == [i.tolist() for i in ids]
    batch, mask = padded_batch(ids)
    outputs = {}
    for index, lang in enumerate(LANGUAGES[name]):
        with torch.no_grad():
            want = hub.model(batch, lang_id=[lang] * len(ids))[0]
            got = model.eval()(input_ids=batch, attention_mask=mask, lang_ids=torch.full((len(ids),), index)).logits
        for i, t in enumerate(ids):
            assert (want[i, : len(t)] - got[i, : len(t)]).abs().max().item() <= 1e-5, (lang, i)
        outputs[lang] = want
    first, second = (outputs[lang] for lang in LANGUAGES[name][:2])
    assert (first - second).abs().max().item() > 1e-3  # the adapters matter: a mix-up would show


def test_head_and_chosen_language(tmp_path, cli):
    out = tmp_path / "out"
    r = cli("convert", fixture("xmod_base"), out, "--head", "mnli", "--lang", "de_DE", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outputs"]["languages"] == ["de_DE"]
    assert json.loads((out / "config.json").read_text())["default_language"] == "de_DE"
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(out), dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert {k: v for k, v in info.items() if v} == {}, info
    hub = fairseq_hub(fixture("xmod_base"))
    ids = [hub.encode(t) for t in TEXTS]
    batch, mask = padded_batch(ids)
    with torch.no_grad():
        want = hub.model(batch, classification_head_name="mnli", lang_id=["de_DE"] * len(ids))[0]
        got = model.eval()(input_ids=batch, attention_mask=mask).logits  # default_language: de_DE
    assert (want - got).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", list(LANGUAGES))
def test_verify_diff_inspect(tmp_path, cli, name):
    out = tmp_path / "out"
    convert(fixture(name), out, verify=False)
    report = verify(fixture(name), out)
    assert report.ok and report.outputs.languages == LANGUAGES[name]
    assert any(r.item == "languages" and r.ok for r in report.config)
    assert cli("verify", fixture(name), out, "--lang", LANGUAGES[name][1], "-q").exit_code == 0
    assert cli("diff", fixture(name), out, "-q").exit_code == 0
    # outputs through every language's adapters: checkpoint vs folder, and folder vs folder (no fairseq side)
    assert cli("diff", fixture(name), out, "--outputs", "-q").exit_code == 0
    assert cli("diff", out, out, "--outputs", "-q").exit_code == 0
    desc = inspect_path(fixture(name)).description
    assert desc["hf_model_type"] == "xmod" and desc["adapters"]["languages"] == LANGUAGES[name]
    assert inspect_path(out).description["adapters"]["languages"] == LANGUAGES[name]


def test_swapped_adapters_fail_verification(tmp_path, cli):
    """Two languages' adapters exchanged in the folder: every weight still has its shape, only running each
    language's adapters shows it."""
    out = tmp_path / "out"
    convert(fixture("xmod_base"), out, verify=False)
    bad = shutil.copytree(out, tmp_path / "bad")
    tensors = load_file(bad / "model.safetensors")
    for name in [n for n in tensors if ".adapter_modules.de_DE." in n]:
        other = name.replace(".de_DE.", ".fr_XX.")
        tensors[name], tensors[other] = tensors[other], tensors[name]
    save_file(tensors, bad / "model.safetensors", metadata={"format": "pt"})
    r = cli("verify", fixture("xmod_base"), bad, "--lang", "en_XX", "-q")
    assert r.exit_code == 1  # the weights differ already
    report = verify(fixture("xmod_base"), bad)
    assert not report.ok and report.outputs is not None and not report.outputs.ok


@pytest.mark.parametrize("mode", ["--verify", "--no-verify"])
def test_lang_is_checked_before_anything_is_written(cli, tmp_path, mode):
    r = cli("convert", fixture("xmod_base"), tmp_path / "out", "--lang", "xx_YY", mode)
    assert r.exit_code == 2 and "en_XX, de_DE, fr_XX" in error_lines(r.stderr)[0]
    r = cli("convert", fixture("camembert"), tmp_path / "out", "--lang", "en_XX", mode)
    assert r.exit_code == 2 and "not an X-MOD model" in error_lines(r.stderr)[0]
    assert not (tmp_path / "out").exists()
