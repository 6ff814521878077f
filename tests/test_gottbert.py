"""GottBERT-style RoBERTa: fairseq-train --bpe hf_byte_bpe (Hugging Face tokenizers' byte-level BPE, vocab.json +
merges.txt) -> transformers' Roberta* with a tokenizer whose ids are fairseq's (tests/fixtures/trained/gottbert*,
made by fairseq's own CLI: make_trained.py).

The truth is fairseq's own hub loader (`RobertaModel.from_pretrained(..., bpe="hf_byte_bpe", bpe_vocab=,
bpe_merges=)`) and its encoder, HuggingFaceByteLevelBPE (tokenizers' ByteLevelBPETokenizer); the folder is read by
transformers' AutoModelForMaskedLM / AutoTokenizer.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import error_lines, leftovers
from transformers import AutoTokenizer, RobertaTokenizer

from tests.helpers.full_forward import assert_logits_are_fairseqs, trained, trained_corpus, trained_hub
from tests.helpers.tokenizer_fuzz import completions, kind_of, texts_sample
from xlmr_tools import families, inspect_path
from xlmr_tools.model import GPT2
from xlmr_tools.sources.fairseq import open_checkpoint

BEST = "checkpoints/checkpoint_best.pt"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def hub_of(folder: Path, **overrides):
    """fairseq's hub loader on a fixture folder laid out as trained/gottbert* (a copy, perhaps edited)."""
    from fairseq.models.roberta import RobertaModel

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    bpe = {"bpe": "hf_byte_bpe", "bpe_vocab": str(folder / "vocab.json"), "bpe_merges": str(folder / "merges.txt")}
    with torch.serialization.safe_globals([argparse.Namespace]):
        hub = RobertaModel.from_pretrained(str(folder / "checkpoints"), checkpoint_file="checkpoint_best.pt",
                                           data_name_or_path=str(folder / "data-bin"), **bpe, **overrides)  # fmt: skip
    return hub.eval()


def edited(tmp_path: Path, name: str, edit) -> Path:
    """A copy of a trained fixture whose checkpoint_best.pt's recorded cfg is edited (as another fairseq-train
    command line would have recorded it; the weights stay)."""
    folder = shutil.copytree(trained(name), tmp_path / name)
    path = folder / BEST
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = torch.load(path, weights_only=True)
    edit(state["cfg"])
    torch.save(state, path)
    return folder


def symbol_texts(hub, alignment) -> list[str]:
    """A text for every dict.txt symbol some text encodes to, on which fairseq's hub encoder gives its id: the
    token's own text, or (where it splits a character) one of the texts holding its bytes."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    token_of = {str(i): t for t, i in json.loads(alignment.files["encoder.json"].read_text()).items()}
    d = hub.task.source_dictionary
    texts = []
    for symbol in alignment.symbols:
        if symbol in alignment.unreachable:
            continue
        piece = bytes(byte_of[c] for c in token_of[symbol])
        text = next(t for t in completions(piece) if d.index(symbol) in hub.encode(t).tolist())
        texts.append(text)
    assert len(texts) == len(alignment.symbols) - 18  # vocab.json's 5 specials, the 13 bytes UTF-8 never uses
    return texts


def test_converts_exactly_with_default_flags_and_verifies(cli, tmp_path):
    """The dictionary covers the vocabulary: no flag needed (vocab.json and merges.txt found where the checkpoint
    records them). RobertaForMaskedLM + RobertaTokenizer; ids equal fairseq's hub encoder's on the corpus and on
    texts of every dict.txt symbol it can emit, the specials at fairseq's ids; logits equal the hub's; verify and
    diff --outputs pass; inspect names the family."""
    src, out = trained("gottbert_srcdict") / BEST, tmp_path / "out"
    report = inspect_path(src)
    assert report.description["hf_family"] == "gottbert" and report.description["hf_model_type"] == "roberta"
    assert report.details["converts_to"].startswith("RobertaForMaskedLM + RobertaTokenizer")
    assert not report.warnings
    assert "post-ln → roberta (gottbert family)" in cli("inspect", src).stdout
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["model_class"] == "RobertaForMaskedLM" and data["accepted"] == [] and data["tokenizer"]["equal"]
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("roberta", ["RobertaForMaskedLM"])
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "RobertaTokenizer"
    hub = trained_hub("gottbert_srcdict")
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    d = hub.task.source_dictionary
    assert [tok.convert_tokens_to_ids(s) for s in SPECIALS] == [d.bos(), d.pad(), d.eos(), d.unk(), d.index("<mask>")]
    for text in trained_corpus() + symbol_texts(hub, open_checkpoint(src).alignment()):
        assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    assert_logits_are_fairseqs(hub, out, trained_corpus()[::20])
    assert cli("verify", src, out, "-q").exit_code == 0
    assert cli("diff", src, out, "--outputs", "-q").exit_code == 0
    folder = inspect_path(out)  # an HF folder of it is a plain RoBERTa folder
    assert (folder.description["hf_family"], folder.description["hf_model_type"]) == ("roberta", "roberta")


def test_the_oracle_encodes_with_fairseqs_hf_byte_bpe():
    """verify and convert compare against fairseq's own HuggingFaceByteLevelBPE (not GPT-2's encoder over the
    same files): the oracle's encoder is the hub loader's, id for id."""
    from fairseq.data.encoders.hf_byte_bpe import HuggingFaceByteLevelBPE

    from xlmr_tools.compare.oracle import FairseqOracle

    oracle = FairseqOracle(open_checkpoint(trained("gottbert_srcdict") / BEST), torch.float32, materialize=False)
    assert isinstance(oracle.bpe, HuggingFaceByteLevelBPE)
    hub = trained_hub("gottbert_srcdict")
    for text in trained_corpus()[::9]:
        assert oracle.encode(text).tolist() == hub.encode(text).tolist()


def test_fuzz_sample_differs_only_where_a_special_tokens_name_is_typed(tmp_path):
    """A seeded 3,000-text sample (every kind of character, whitespace, combining marks, emoji) against fairseq's
    hub encoder: only texts spelling <s>, <mask>, ... differ (fairseq encodes them as text; transformers takes them
    as the specials), as for RoBERTa's GPT-2 BPE."""
    out = tmp_path / "out"
    from xlmr_tools import convert

    convert(trained("gottbert_srcdict") / BEST, out, verify=False)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = trained_hub("gottbert_srcdict")
    texts = texts_sample(3000, seed=1)
    kinds = {kind_of(t) for t, ids in zip(texts, tok(texts)["input_ids"]) if ids != hub.encode(t).tolist()}
    assert kinds <= {"special-token string", "NFKC-made special string"}


@pytest.mark.parametrize("prefix_space", [False, True])
def test_fairseqs_byte_level_bpe_and_robertas_tokenizer_make_the_same_pieces(prefix_space):
    """The two libraries' byte-level BPEs over the same vocab.json + merges.txt (GPT-2's ids, before any
    dictionary): tokenizers' ByteLevelBPETokenizer as fairseq builds it and transformers' RobertaTokenizer give the
    same pieces, with and without the prefix space, on every text the specials' names are not typed in."""
    from fairseq.data.encoders.hf_byte_bpe import HuggingFaceByteLevelBPE, HuggingFaceByteLevelBPEConfig

    home = trained("gottbert_srcdict")
    files = {"bpe_vocab": str(home / "vocab.json"), "bpe_merges": str(home / "merges.txt")}
    fairseq_bpe = HuggingFaceByteLevelBPE(HuggingFaceByteLevelBPEConfig(**files, bpe_add_prefix_space=prefix_space))
    roberta = RobertaTokenizer(vocab=str(home / "vocab.json"), merges=str(home / "merges.txt"),
                               add_prefix_space=prefix_space)  # fmt: skip
    texts = [t for t in trained_corpus() + texts_sample(1000, seed=2) if kind_of(t) == "other"]
    for text in texts:
        assert roberta.tokenize(text) == fairseq_bpe.bpe.encode(text).tokens, text
    assert roberta.tokenize("Hallo")[0].startswith("Ġ") == prefix_space


def test_a_recorded_prefix_space_is_honoured(cli, tmp_path):
    """--bpe-add-prefix-space: fairseq reads every text with a space before it; so does the folder's tokenizer
    (add_prefix_space in tokenizer.json and tokenizer_config.json), and verification encodes with it."""
    folder = edited(tmp_path, "gottbert_srcdict", lambda cfg: cfg["bpe"].update(bpe_add_prefix_space=True))
    out = tmp_path / "out"
    r = cli("convert", folder / BEST, out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tokenizer_config.json").read_text())["add_prefix_space"] is True
    hub = hub_of(folder, bpe_add_prefix_space=True)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    for text in trained_corpus()[::5]:
        assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    assert hub.encode("Hallo").tolist() != hub_of(folder, bpe_add_prefix_space=False).encode("Hallo").tolist()
    assert cli("verify", folder / BEST, out, "-q").exit_code == 0
    plain = tmp_path / "plain"
    assert cli("convert", trained("gottbert_srcdict") / BEST, plain, "--no-verify").exit_code == 0
    assert cli("verify", folder / BEST, plain, "-q").exit_code == 1  # a folder without it gets other ids


def test_told_by_its_files_where_the_checkpoint_records_no_bpe(cli, tmp_path):
    """fairseq-train needs no --bpe on binarized data, and then records none: vocab.json + merges.txt near the
    checkpoint tell the family (and the files), exact with default flags."""
    folder = edited(tmp_path, "gottbert_srcdict", lambda cfg: cfg.update(bpe=None))
    assert inspect_path(folder / BEST).description["hf_family"] == "gottbert"
    out = tmp_path / "out"
    r = cli("convert", folder / BEST, out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokenizer"]["equal"]
    assert_logits_are_fairseqs(hub_of(folder), out, trained_corpus()[::20])


@pytest.mark.parametrize(
    ("bpe", "files", "family"),
    [
        ("hf_byte_bpe", set(), "gottbert"),
        (None, {"vocab.json", "merges.txt"}, "gottbert"),
        (None, {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe"}, "roberta"),  # GPT-2's files there too
        ("gpt2", {"vocab.json", "merges.txt"}, "roberta"),  # fairseq would encode with GPT-2's encoder
        (None, set(), "roberta"),
    ],
)
def test_which_byte_level_bpe_a_checkpoint_was_trained_with(bpe, files, family):
    e = families.Evidence("roberta_base", True, False, False, False, GPT2, bpe, frozenset(files))
    assert families.detect(e) is families.get(family)


def test_a_dictionary_lacking_tokens_is_refused_unless_accepted(cli, tmp_path):
    """fairseq-preprocess counted dict.txt on the tiny corpus: it lacks tokens fairseq's encoder emits (they become
    <unk>), which no tokenizer.json can reproduce. Refused in one line naming them (not vocab.json's <s>, <mask>:
    no text encodes to those), with no flag to name the files; --accept-missing-pieces converts, the difference
    reported, the model itself exact."""
    src, out = trained("gottbert") / BEST, tmp_path / "out"
    r = cli("convert", src, out)
    assert r.exit_code == 2
    (line,) = error_lines(r.stderr)
    assert "lacks 88 of the GPT-2 BPE tokens" in line and "--accept-missing-pieces" in line and "'<s>'" not in line
    assert not out.exists() and leftovers(tmp_path) == []
    r = cli("convert", src, out, "--accept-missing-pieces", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["accepted"]) == 1
    assert_logits_are_fairseqs(trained_hub("gottbert"), out, trained_corpus()[::20])


def test_the_files_are_named_as_the_family_names_them(cli, tmp_path):
    """vocab.json missing: the message names vocab.json (and the flag that gives it), not GPT-2's encoder.json; given
    by the flag from elsewhere, it converts."""
    folder = shutil.copytree(trained("gottbert_srcdict"), tmp_path / "ckpt")
    elsewhere = tmp_path / "bpe"
    elsewhere.mkdir()
    shutil.move(folder / "vocab.json", elsewhere / "vocab.json")
    r = cli("convert", folder / BEST, tmp_path / "out", "--no-verify")
    assert r.exit_code == 2
    (line,) = error_lines(r.stderr)
    assert "vocab.json is needed beside the checkpoint" in line and "--encoder-json" in line
    r = cli("convert", folder / BEST, tmp_path / "out", "--encoder-json", elsewhere / "vocab.json")
    assert r.exit_code == 0, r.output


def _recording_bpe(src: Path, dst: Path, bpe: dict) -> Path:
    """A copy of a trained save dir whose checkpoint records another BPE (as fairseq-train --bpe would write it)."""
    shutil.copytree(src, dst)
    ckpt = dst / "checkpoints" / "checkpoint_best.pt"
    state = torch.load(ckpt, weights_only=False)
    state["cfg"]["bpe"] = bpe
    torch.save(state, ckpt)
    (dst / "checkpoints" / "checkpoint_last.pt").unlink()
    return ckpt


@pytest.mark.parametrize(
    ("fixture_name", "bpe", "said"),
    [
        ("preln_emb_ln_gpt2", {"_name": "hf_byte_bpe", "bpe_add_prefix_space": True}, "(it is converted for: gottbert"),
        ("spm_preprocess", {"_name": "fastbpe"}, "encoder for it\n"),
    ],
    ids=["pre-LN hf_byte_bpe", "post-LN fastbpe"],
)
def test_a_bpe_no_family_reproduces_for_the_model_is_refused_by_name(cli, tmp_path, fixture_name, bpe, said):
    """Only GottBERT's family encodes with fairseq's HuggingFaceByteLevelBPE, and it is post-LN: a pre-LN model
    trained with it (or any model trained with an encoder no family has) would otherwise be taken by a family
    that encodes with GPT-2's or sentencepiece's encoder — the proof and the tokenizer both another encoder than
    training used. Refused by name, before anything is written, with --no-verify too."""
    ckpt = _recording_bpe(trained(fixture_name), tmp_path / "src", bpe)
    for extra in ([], ["--no-verify"]):
        r = cli("convert", ckpt, tmp_path / "out", *extra)
        assert r.exit_code == 2, r.output
        lines = error_lines(r.stderr)
        assert len(lines) == 1 and f"trained with fairseq --bpe {bpe['_name']}" in lines[0], lines
        assert said in lines[0] + "\n", lines
        assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    r = cli("inspect", ckpt)
    assert f"--bpe {bpe['_name']}" in r.output, r.output
