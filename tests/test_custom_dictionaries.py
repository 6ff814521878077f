"""A user's own sentencepiece pretraining: dict.txt in corpus-frequency order (as fairseq-preprocess writes it),
complete or lacking the rare pieces. Checked against fairseq's own hub loader."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import error_lines, fixture, leftovers
from full_forward import fairseq_hub
from tokenizer_fuzz import DOCUMENTED, kind_of, texts_sample
from transformers import AutoModelForMaskedLM, AutoTokenizer

from xlmr_tools import convert, inspect_path, verify
from xlmr_tools.compare.texts import DEFAULT_TEXTS

# The kinds of text on which even transformers' stock tokenizer differs from fairseq (docs/reliability.md)


@pytest.mark.parametrize("verify_outputs", [True, False])
def test_frequency_ordered_dictionary_converts_exactly(tmp_path, verify_outputs):
    name = "cfg_frequency_dict"
    result = convert(fixture(name), tmp_path / "out", verify=verify_outputs)
    assert result.accepted == []
    hub = fairseq_hub(fixture(name))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    for text in list(DEFAULT_TEXTS)[:6] + texts_sample(1000, seed=1):
        if kind_of(text) not in DOCUMENTED:
            assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    assert tok.mask_token_id == hub.task.source_dictionary.index("<mask>")
    model, info = AutoModelForMaskedLM.from_pretrained(
        str(tmp_path / "out"), dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert {k: v for k, v in info.items() if v} == {}
    ids = hub.encode(DEFAULT_TEXTS[1])
    with torch.no_grad():
        want = hub.model(ids[None])[0]
        got = model.eval()(input_ids=ids[None]).logits
    assert (want - got).abs().max().item() <= 1e-5
    assert verify(fixture(name), tmp_path / "out").ok


@pytest.mark.parametrize("mode", ["--verify", "--no-verify"])
def test_missing_pieces_are_refused_without_the_flag(cli, tmp_path, mode):
    r = cli("convert", fixture("cfg_frequency_dict_missing"), tmp_path / "out", mode)
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "lacks 3 of the sentencepiece model's pieces" in lines[0]
    assert "--accept-missing-pieces" in lines[0] and not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_missing_pieces_accepted_are_reported_and_the_model_is_exact(cli, tmp_path):
    name = "cfg_frequency_dict_missing"
    texts = tmp_path / "texts.txt"
    texts.write_text("Hello world\nqTq 言\n")  # the second uses pieces dict.txt lacks
    r = cli("convert", fixture(name), tmp_path / "out", "--accept-missing-pieces", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["outputs"]["ok"] and data["tokenizer"]["mask_id"] == 240
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("Known difference, accepted" in card) == bool(data["accepted"])
    hub = fairseq_hub(fixture(name))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    assert tok("Hello world")["input_ids"] == hub.encode("Hello world").tolist()
    assert tok("qTq 言")["input_ids"] != hub.encode("qTq 言").tolist()  # fairseq: <unk> after segmenting
    assert 3 in hub.encode("qTq 言").tolist()
    r = cli("verify", fixture(name), tmp_path / "out", "--texts-file", texts, "-q")
    assert r.exit_code == 1 and "text 1 'qTq 言'" in r.stderr  # verify stays strict, and says where
    report = inspect_path(fixture(name))
    assert report.tokenizer["missing_pieces"] == 3 and report.tokenizer["order"] == "dictionary"
