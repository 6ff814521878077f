"""The rest of fairseq's RoBERTa family: RoBERTa with GPT-2 BPE and CamemBERT-style dictionaries
(tests/fixtures/roberta_gpt2*, camembert, built by fairseq's own code; see make_fixtures.py).

Each is checked against fairseq's own hub loader (`RobertaModel.from_pretrained` with fairseq's GPT2BPE or
sentencepiece), not the tool's oracle: logits, head outputs and tokenizer ids; the folders load offline through
AutoModel*/AutoTokenizer/pipeline with no missing or unexpected keys.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import error_lines, fixture, leftovers
from transformers import AutoTokenizer, pipeline

from tests.helpers.full_forward import TEXTS, assert_head_matches, assert_mlm_matches, fairseq_hub, head_logits
from tests.helpers.tokenizer_fuzz import DOCUMENTED, compare, texts_sample
from xlmr_tools import convert, inspect_path, verify

# (fixture, model_type, masked-LM class, tokenizer class, fairseq's ids of <s> and </s>)
FAMILIES = {
    "roberta_gpt2": ("roberta", "RobertaForMaskedLM", "RobertaTokenizer", 0, 2),
    "roberta_gpt2_untied": ("roberta", "RobertaForMaskedLM", "RobertaTokenizer", 0, 2),
    "camembert": ("camembert", "CamembertForMaskedLM", "CamembertTokenizer", 5, 6),
}


@pytest.mark.parametrize("verify_outputs", [True, False])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_masked_lm_converts_and_matches_fairseq_hub(tmp_path, name, verify_outputs):
    model_type, cls, tok_cls, bos, eos = FAMILIES[name]
    out = tmp_path / "out"
    result = convert(fixture(name), out, verify=verify_outputs)
    assert result.model_class == cls and result.weights_equal
    if verify_outputs:
        assert all(r.max_abs <= 1e-5 for r in result.outputs.rows) and result.tokenizer.equal
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type and config["architectures"] == [cls]
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (bos, eos, 1)
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == tok_cls
    assert_mlm_matches(fairseq_hub(fixture(name)), out)


@pytest.mark.parametrize("name", ["roberta_gpt2", "camembert"])
def test_classification_head_converts_and_matches_fairseq_hub(tmp_path, name):
    out = tmp_path / "out"
    result = convert(fixture(name), out, head="mnli")
    assert result.model_class.endswith("ForSequenceClassification")
    assert all(r.max_abs <= 1e-5 for r in result.outputs.rows)
    assert_head_matches(*head_logits(fairseq_hub(fixture(name)), "mnli"), out)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_verify_diff_and_inspect(tmp_path, cli, name):
    out = tmp_path / "out"
    convert(fixture(name), out, verify=False)
    assert verify(fixture(name), out).ok
    assert cli("verify", fixture(name), out, "-q").exit_code == 0
    assert cli("diff", fixture(name), out, "-q").exit_code == 0
    model_type, cls, tok_cls, _, _ = FAMILIES[name]
    report = inspect_path(fixture(name))
    assert report.description["hf_model_type"] == model_type
    assert report.details["converts_to"].startswith(f"{cls} + {tok_cls}")
    assert inspect_path(out).description["vocabulary"] == report.description["vocabulary"]


def test_gpt2_folder_has_transformers_vocab_and_merges_files(tmp_path):
    """vocab.json (fairseq's ids) and merges.txt beside tokenizer.json, as roberta-base on the Hub: a
    RobertaTokenizer built from them alone gives the same ids; GPT-2's own encoder.json (GPT-2's ids) is not there."""
    from transformers import RobertaTokenizer

    out = tmp_path / "out"
    convert(fixture("roberta_gpt2"), out, verify=False)
    assert not (out / "encoder.json").exists() and not (out / "vocab.bpe").exists()
    files = RobertaTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"))
    auto = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = fairseq_hub(fixture("roberta_gpt2"))
    for text in TEXTS:
        assert files(text)["input_ids"] == auto(text)["input_ids"] == hub.encode(text).tolist()


@pytest.mark.parametrize("name", ["roberta_gpt2", "camembert", "xmod_base"])
def test_fill_mask_pipeline_predicts_what_fairseq_predicts(tmp_path, name):
    out = tmp_path / "out"
    convert(fixture(name), out, verify=False)
    hub = fairseq_hub(fixture(name))
    fill = pipeline("fill-mask", model=str(out), device="cpu", model_kwargs={"dtype": torch.float32})
    text = f"The quick brown fox {fill.tokenizer.mask_token} over the lazy dog."
    ids = fill.tokenizer(text, return_tensors="pt")["input_ids"]
    at = int((ids[0] == fill.tokenizer.mask_token_id).nonzero()[0, 0])
    extra = {"lang_id": ["en_XX"]} if name.startswith("xmod") else {}  # X-MOD: the folder's default_language
    with torch.no_grad():
        want = hub.model(ids, **extra)[0][0, at].topk(3).indices.tolist()
    assert [p["token"] for p in fill(text, top_k=3)] == want


@pytest.mark.parametrize("name", ["roberta_gpt2", "camembert"])
def test_fuzz_sample_differs_only_in_documented_kinds(tmp_path, name):
    """A seeded 3,000-text sample against fairseq's own encoder. GPT-2 BPE: only special-token strings typed in a
    text differ (fairseq spells them out; transformers takes them as the specials). CamemBERT: the kinds XLM-R's
    sentencepiece shows too (docs/reliability.md), and never where transformers' own CamemBERT conversion agrees."""
    out = tmp_path / "out"
    convert(fixture(name), out, verify=False)
    result = compare(fixture(name), out, texts_sample(3000, seed=1), tmp_path / "stock")
    kinds = set(k for k, n in result.ours.items() if n)
    if name == "roberta_gpt2":
        assert kinds <= {"special-token string", "NFKC-made special string"}, result.examples
    else:
        assert kinds <= DOCUMENTED, result.examples
        assert result.ours_not_stock == []


def test_camembert_specials_are_fairseqs_ids(tmp_path):
    """CamemBERT's dict.txt lists the model's own <unk>, <s>, </s> (#fairseq:overwrite): fairseq writes <s>/</s> into
    the text and looks them up (5, 6); an unknown character is the dictionary's <unk> (3)."""
    out = tmp_path / "out"
    convert(fixture("camembert"), out, verify=False)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = fairseq_hub(fixture("camembert"))
    for text in ["Bonjour le monde", "日本 \u2603 unknown", ""]:
        assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, tok.pad_token_id) == (5, 6, 3, 1)
    assert tok.convert_ids_to_tokens([0, 2, 4]) == ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"]


@pytest.mark.parametrize("mode", ["--verify", "--no-verify"])
def test_gpt2_dictionary_missing_tokens_refused_unless_accepted(cli, tmp_path, mode):
    r = cli("convert", fixture("roberta_gpt2_missing"), tmp_path / "out", mode)
    assert r.exit_code == 2
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "GPT-2 BPE tokens" in lines[0] and "--accept-missing-pieces" in lines[0]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    r = cli("convert", fixture("roberta_gpt2_missing"), tmp_path / "out", mode, "--accept-missing-pieces", "--json")
    assert r.exit_code == 0, r.output
    accepted = json.loads(r.stdout)["accepted"]
    assert (len(accepted) == 1) == (mode == "--verify")


def test_gpt2_files_are_named_when_missing_and_taken_from_flags(cli, tmp_path):
    folder = shutil.copytree(fixture("roberta_gpt2"), tmp_path / "ckpt")
    elsewhere = tmp_path / "bpe"
    elsewhere.mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        shutil.move(folder / name, elsewhere / name)
    r = cli("convert", folder, tmp_path / "out", "--no-verify")
    assert r.exit_code == 2
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "encoder.json" in lines[0] and "--encoder-json" in lines[0]
    assert not (tmp_path / "out").exists()
    flags = ["--encoder-json", elsewhere / "encoder.json", "--vocab-bpe", elsewhere / "vocab.bpe"]
    r = cli("convert", folder, tmp_path / "out", *flags, "-q")
    assert r.exit_code == 0, r.output
    assert cli("verify", folder, tmp_path / "out", *flags, "-q").exit_code == 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_verifies(tmp_path, dtype):
    result = convert(fixture("roberta_gpt2"), tmp_path / "out", dtype=dtype)
    assert result.dtype == dtype and result.outputs is not None and result.outputs.worst is None


def test_convert_takes_the_users_texts(cli, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("one text\nand another one\n")
    r = cli("convert", fixture("roberta_gpt2"), tmp_path / "out", "--texts-file", texts, "--text", "a third", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["outputs"]["texts"] == 3 and result["tokenizer"]["texts"] == 3
