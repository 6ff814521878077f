"""A user's own sentencepiece pretraining: dict.txt in corpus-frequency order (as fairseq-preprocess writes it),
complete or lacking the rare pieces. Checked against fairseq's own hub loader."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import error_lines, fixture, leftovers
from transformers import AutoModelForMaskedLM, AutoTokenizer

from tests.helpers.full_forward import fairseq_hub
from tests.helpers.tokenizer_fuzz import DOCUMENTED, kind_of, texts_sample
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
def test_missing_pieces_convert_exactly_by_default(cli, tmp_path, mode):
    """dict.txt lacking pieces (as fairseq-preprocess leaves it): no flag, a tokenizer that maps them to <unk> after
    segmenting, exactly as fairseq's hub encoder does."""
    name = "cfg_frequency_dict_missing"
    r = cli("convert", fixture(name), tmp_path / "out", mode, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["accepted"] == [] and data["tokenizer"] is None) or data["tokenizer"]["equal"]
    hub = fairseq_hub(fixture(name))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    assert type(tok).__name__ == "BartphoTokenizer"  # what AutoTokenizer loads, through tokenizer_config.json
    assert tok("qTq 言")["input_ids"] == hub.encode("qTq 言").tolist() and 3 in hub.encode("qTq 言").tolist()
    for text in list(DEFAULT_TEXTS)[:6] + texts_sample(1000, seed=1):
        if kind_of(text) not in DOCUMENTED:
            assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    texts = tmp_path / "texts.txt"
    texts.write_text("Hello world\nqTq 言\n")  # the second uses pieces dict.txt lacks
    assert cli("verify", fixture(name), tmp_path / "out", "--texts-file", texts, "-q").exit_code == 0
    report = inspect_path(fixture(name))
    assert report.tokenizer["missing_pieces"] == 3 and report.tokenizer["order"] == "dictionary"
    assert report.tokenizer["tokenizer_class"] == "BartphoTokenizer"


def test_autotokenizer_ignores_the_tokenizer_class_of_an_xl_folder(converted, tmp_path):
    """transformers' own rule behind Family.autotokenizer_honours_class: AutoTokenizer loads an xlm-roberta-xl folder
    through tokenizer.json whatever tokenizer_config.json names, while it honours the named class for the others."""
    from xlmr_tools import families
    from xlmr_tools.mapping.tokenizer import align, write_hf_tokenizer
    from xlmr_tools.sources.fairseq import open_checkpoint

    ckpt = open_checkpoint(fixture("cfg_frequency_dict_missing"))
    dict_path, files = ckpt.tokenizer_files()
    fast_only = {t for t in families.model_types() if not families.for_model_type(t).autotokenizer_honours_class}
    assert fast_only  # (one at least: xlm-roberta-xl)
    for model_type in sorted(families.model_types()):
        folder = tmp_path / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        write_hf_tokenizer(folder, align(dict_path, files, ckpt.description.vocab_rows), 512)  # the lookup one
        try:
            loaded = type(AutoTokenizer.from_pretrained(str(folder), local_files_only=True)).__name__
        except ValueError:  # no tokenizer.json to fall back to
            loaded = "TokenizersBackend"
        assert (loaded != "BartphoTokenizer") == (model_type in fast_only), model_type


def test_an_xl_model_with_missing_pieces_is_refused_and_accepted_by_flag(cli, tmp_path):
    """Where AutoTokenizer cannot load the lookup tokenizer (XL), no exact tokenizer exists: refused by name unless
    --accept-missing-pieces, which publishes the fast one and reports the differences."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(fixture("preln"), src)
    lines = (src / "dict.txt").read_text().splitlines()
    (src / "dict.txt").write_text("\n".join(["notapiece " + lines[0].split()[-1], *lines[1:]]) + "\n")
    r = cli("convert", src, tmp_path / "out")
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "AutoTokenizer loads every xlm-roberta-xl folder through tokenizer.json" in lines[0]
    assert "--accept-missing-pieces" in lines[0] and not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    r = cli("convert", src, tmp_path / "out", "--accept-missing-pieces", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["outputs"]["ok"]
    # each count against the texts of its kind: never "14 of 7 texts"
    counts = re.findall(r"(\d+) of (\d+) (?:sample texts|texts made of)", " ".join(data["accepted"]))
    assert bool(counts) == bool(data["accepted"])
    assert all(0 < int(wrong) <= int(total) for wrong, total in counts), data["accepted"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("Known difference, accepted" in card) == bool(data["accepted"])


@pytest.mark.parametrize("name", ["preln", "roberta_gpt2"])
def test_the_dictionary_texts_hold_runs_of_whitespace(name):
    """A tokenizer that treats runs of spaces and tabs otherwise than fairseq (sentencepiece's
    remove_extra_whitespaces=false read by the fast tokenizer) passed convert's own check: no sample or dictionary
    text held a run of whitespace. The dictionary's symbols are also given with leading runs, spaces and tabs."""
    from xlmr_tools.compare.texts import dictionary_texts
    from xlmr_tools.sources.fairseq import open_checkpoint

    texts = dictionary_texts(open_checkpoint(fixture(name)).alignment())
    spaced = [t for t in texts if t.startswith("  ")]
    assert len(spaced) == 1 and "\t" in spaced[0] and "   " in spaced[0] and len(spaced[0].split()) >= 8


def test_the_model_card_counts_every_text_the_tokenizer_was_proved_on(cli, tmp_path):
    """The card said "ids equal fairseq's on 7 texts" where convert also proved the texts made of dict.txt's symbols."""
    r = cli("convert", fixture("preln"), tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    tok = json.loads(r.stdout)["tokenizer"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert tok["dictionary_texts"] > 0
    assert f"on {tok['texts']} sample texts and {tok['dictionary_texts']} texts made of dict.txt's symbols: yes" in card
