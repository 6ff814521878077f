"""A second outside pass of hostile folders (issue 20): folders that load, through transformers' own rules, as
something else than the checkpoint although every tensor and every text's ids are right — config.json's dtype and
return_dict, the tokenizer's settings and its decoding, a pad id that shortens the position table. Each test
establishes the truth by loading the folder with transformers itself; each was verified, or called equal by `diff`, or
ended as an internal error (exit 70), before.

The hostile folders are made from a good conversion of the pre-LN fixture (tests/test_consumer_truth.py has the
first pass)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import fixture
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

SRC = "preln"
TEXTS = ["Hello world! cécé herlolip", "Bonjour le monde ! Les élèves étudient à l'école près de la forêt."]


def _copy(converted: dict[str, Path], tmp: Path, name: str) -> Path:
    return _copy_of(converted[SRC], tmp / name)


def _copy_of(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | changes, indent=2, ensure_ascii=False))


def _model(folder: Path):
    return AutoModelForMaskedLM.from_pretrained(str(folder)).eval()  # as a user loads it: dtype "auto"


def _failures(r) -> list[str]:
    return json.loads(r.stdout)["failures"]


# ------------------------------------------------------------------------------------------------- config.json


def test_a_dtype_in_config_json_loads_another_model_and_diff_sees_it(cli, converted, tmp_path):
    """`"dtype": "bfloat16"` over float32 files: from_pretrained loads a bfloat16 model (other logits), so `diff`
    compares the tensors as loaded — the same difference as a folder whose files are bfloat16."""
    bad = _copy(converted, tmp_path, "bad")
    _edit(bad / "config.json", dtype="bfloat16")
    good_model, bad_model = _model(converted[SRC]), _model(bad)
    assert bad_model.dtype == torch.bfloat16  # the truth: transformers loads another precision
    ids = AutoTokenizer.from_pretrained(str(bad))(TEXTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert (good_model(ids).logits - bad_model(ids).logits.float()).abs().max() > 1e-3
    r = cli("diff", converted[SRC], bad, "--json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["only_a_cast"].startswith("B is A cast to bfloat16")
    assert cli("diff", fixture(SRC), bad).exit_code == 1
    assert cli("diff", converted[SRC], bad, "--tol", "0.01").exit_code == 0  # as for bfloat16 files


def test_return_dict_false_is_a_config_difference(cli, converted, tmp_path):
    """`"return_dict": false`: the loaded model returns a tuple; `.logits` and the fill-mask pipeline fail on it."""
    bad = _copy(converted, tmp_path, "bad")
    _edit(bad / "config.json", return_dict=False)
    with torch.no_grad():
        assert isinstance(_model(bad)(torch.tensor([[0, 10, 2]])), tuple)  # the truth
    with pytest.raises(TypeError):
        pipeline("fill-mask", model=str(bad))("Hello <mask>.")
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    assert "config return_dict: expected True, found False" in _failures(r)
    for a in (converted[SRC], fixture(SRC)):
        r = cli("diff", a, bad, "--json")
        assert r.exit_code == 1 and "config return_dict: True vs False" in _failures(r)


def test_a_pad_id_that_shortens_the_position_table_is_a_failure_not_a_bug(cli, converted, tmp_path):
    """transformers numbers positions from the pad id on: with `pad_token_id: 3` the 514-row table takes 510 tokens,
    and a 512-token input (which the checkpoint takes) fails. verify and `diff --outputs` said "internal error"."""
    bad = _copy(converted, tmp_path, "bad")
    _edit(bad / "config.json", pad_token_id=3)
    long = torch.tensor([[0] + [10] * 510 + [2]])
    with torch.no_grad():
        _model(converted[SRC])(long)
        with pytest.raises(RuntimeError, match="out of bounds"):  # the truth
            _model(bad)(long)
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    row = next(c for c in data["config"] if c["item"] == "longest input")
    assert (row["expected"], row["actual"], row["ok"]) == (512, 510, False)
    assert any("outputs: config longest input" in s for s in data["skipped"])
    for a in (converted[SRC], fixture(SRC)):
        r = cli("diff", a, bad, "--outputs", "--json")
        assert r.exit_code == 1, r.output
        assert any(f.startswith("config longest input") for f in _failures(r))
        assert json.loads(r.stdout)["outputs"] is not None  # run on the inputs both take


# ---------------------------------------------------------------------------------------------------- tokenizer


def _no_attention_mask(folder: Path) -> None:
    _edit(folder / "tokenizer_config.json", model_input_names=["input_ids"])


def _split_special_tokens(folder: Path) -> None:
    _edit(folder / "tokenizer_config.json", split_special_tokens=True)


def _truncation_left(folder: Path) -> None:
    _edit(folder / "tokenizer_config.json", truncation_side="left")


def _batch_outputs_differ(good: Path, bad: Path) -> bool:
    """A padded batch, as tokenizer and model hand it on: the shorter text's logits."""
    outs = []
    for folder in (good, bad):
        enc = AutoTokenizer.from_pretrained(str(folder))(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            outs.append(_model(folder)(**enc).logits[0])
    n = int(AutoTokenizer.from_pretrained(str(good))(TEXTS[0], return_tensors="pt")["input_ids"].shape[1])
    return bool((outs[0][:n] - outs[1][:n]).abs().max() > 1e-3)


def _mask_text_ids_differ(good: Path, bad: Path) -> bool:
    """What the fill-mask pipeline tokenizes: `split_special_tokens` keeps `<mask>` but not the space it absorbs."""
    text = "Hello <mask> world."
    ids = [AutoTokenizer.from_pretrained(str(f))(text)["input_ids"] for f in (good, bad)]
    return ids[0] != ids[1]


def _other_end_kept(good: Path, bad: Path) -> bool:
    long = " ".join(TEXTS * 10)
    toks = [AutoTokenizer.from_pretrained(str(f)) for f in (good, bad)]
    ids = [tok(long, truncation=True, max_length=16)["input_ids"] for tok in toks]
    return ids[0] != ids[1]


SETTINGS = {
    "model_input_names": (_no_attention_mask, _batch_outputs_differ),
    "split_special_tokens": (_split_special_tokens, _mask_text_ids_differ),
    "truncation_side": (_truncation_left, _other_end_kept),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_tokenizer_settings_that_change_what_the_model_gets_are_compared(cli, converted, tmp_path, setting):
    """Every text's ids are the same; what `tok(...)` hands the model is not."""
    bad = _copy(converted, tmp_path, "bad")
    edit, differs = SETTINGS[setting]
    edit(bad)
    assert differs(converted[SRC], bad)  # the truth, by transformers
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    r = cli("diff", converted[SRC], bad, "--json")
    assert r.exit_code == 1, r.output
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]}
    assert not rows["settings"]["ok"] and setting in rows["settings"]["note"]


def _no_decoder(folder: Path) -> None:
    _edit(folder / "tokenizer.json", decoder=None)


def _clean_up_spaces(folder: Path) -> None:
    _edit(folder / "tokenizer_config.json", clean_up_tokenization_spaces=True)


@pytest.mark.parametrize("edit", [_no_decoder, _clean_up_spaces], ids=lambda f: f.__name__[1:])
def test_a_tokenizer_that_decodes_otherwise_never_verifies(cli, converted, tmp_path, edit):
    """The same ids, other text back (what the fill-mask pipeline shows): the decoding is compared."""
    bad = _copy(converted, tmp_path, "bad")
    edit(bad)
    good_tok, bad_tok = (AutoTokenizer.from_pretrained(str(f)) for f in (converted[SRC], bad))
    ids = [good_tok(t)["input_ids"] for t in TEXTS]
    assert [bad_tok(t)["input_ids"] for t in TEXTS] == ids
    assert bad_tok.batch_decode(ids) != good_tok.batch_decode(ids)  # the truth
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]["vocabulary"]}
    assert not rows["decoding"]["ok"] and "decodes to" in rows["decoding"]["note"]
    r = cli("diff", converted[SRC], bad, "--json")
    assert r.exit_code == 1 and any(f.startswith("tokenizer decoding") for f in _failures(r))


def test_how_a_text_s_mask_is_matched_is_compared(cli, converted, tmp_path):
    """`<mask>` made single_word in tokenizer.json: the fill-mask text `a<mask>b` gets other ids, though no sample,
    dictionary or codepoint text (none holds a special-token string) changes."""
    from xlmr_tools.compare.texts import DEFAULT_TEXTS

    bad = _copy(converted, tmp_path, "bad")
    tok = json.loads((bad / "tokenizer.json").read_text())
    next(a for a in tok["added_tokens"] if a["content"] == "<mask>")["single_word"] = True
    (bad / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    good_tok, bad_tok = (AutoTokenizer.from_pretrained(str(f)) for f in (converted[SRC], bad))
    assert bad_tok("a<mask>b")["input_ids"] != good_tok("a<mask>b")["input_ids"]  # the truth
    assert all(bad_tok(t)["input_ids"] == good_tok(t)["input_ids"] for t in DEFAULT_TEXTS)
    r = cli("verify", fixture(SRC), bad, "--json")
    assert r.exit_code == 1, r.output
    rows = {row["item"]: row for row in json.loads(r.stdout)["tokenizer"]["vocabulary"]}
    assert not rows["pipeline"]["ok"] and "<mask>" in rows["pipeline"]["note"]
    assert cli("diff", converted[SRC], bad).exit_code == 1


# -------------------------------------------------------------------------------------------------- classifiers


def test_class_names_are_what_the_pipeline_answers(cli, converted, tmp_path):
    """id2label without a name for class 1 (ids 0, 2, 5): the text-classification pipeline fails when it predicts
    it, so verify fails; renamed classes load the same model with other answers: verify cannot know the names
    without fairseq's label dictionary (they are the user's), diff of two folders shows them."""
    good = converted[f"{SRC}_heads:mnli"]
    gaps, renamed = _copy_of(good, tmp_path / "gaps"), _copy_of(good, tmp_path / "renamed")
    _edit(gaps / "config.json", id2label={"0": "a", "2": "b", "5": "c"}, label2id={"a": 0, "b": 2, "c": 5})
    _edit(renamed / "config.json", id2label={"0": "x", "1": "y", "2": "z"}, label2id={"x": 0, "y": 1, "z": 2})
    model = AutoModelForSequenceClassification.from_pretrained(str(gaps))
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(gaps)))
    with pytest.raises(KeyError):  # the truth: the fill-in class 1 has no name
        for text in ("Hello world", "x y z", "Bonjour le monde", "a b"):
            classify(text, top_k=None)
    r = cli("verify", fixture(f"{SRC}_heads"), gaps, "--head", "mnli", "--json")
    assert r.exit_code == 1, r.output
    assert any(f.startswith("config id2label: no name for class 1") for f in _failures(r))
    assert cli("verify", fixture(f"{SRC}_heads"), renamed, "--head", "mnli").exit_code == 0
    r = cli("diff", good, renamed, "--json")
    assert r.exit_code == 1 and any(f.startswith("config id2label") for f in _failures(r))
