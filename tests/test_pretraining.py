"""A user's own fairseq pretraining, as fairseq's command-line pipeline leaves it (tests/fixtures/trained: a
sentencepiece model trained on the corpus, `fairseq-preprocess` dictionaries, `fairseq-train` save dirs): converts
with default flags and is exact — the tokenizer token by token and the model logit by logit against fairseq's own hub
loader — and verifies."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import error_lines
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.helpers.full_forward import assert_logits_are_fairseqs, padded_batch, trained, trained_corpus, trained_hub
from tests.helpers.tokenizer_fuzz import DOCUMENTED, kind_of
from xlmr_tools import inspect_path

BEST = "checkpoints/checkpoint_best.pt"
FACTS = json.loads((trained("") / "spm_dict.json").read_text())


def dictionary_probes() -> list[str]:
    """Texts fairseq encodes through dict.txt's own peculiarities: the raw runs sentencepiece emits for characters
    outside its coverage (ids of their own), the pieces the corpus never produced (<unk> after segmenting)."""
    return [*FACTS["raw_characters"], " ".join(FACTS["raw_characters"]), " ".join(FACTS["missing_pieces"]),
            "Hello 🦜 커피"]  # fmt: skip


def assert_tokenizer_is_fairseqs(folder, hub, probes: list[str] | None = None) -> None:
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    for text in trained_corpus() + (dictionary_probes() if probes is None else probes):
        if kind_of(text) not in DOCUMENTED:
            assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
    assert tok.mask_token_id == hub.task.source_dictionary.index("<mask>")


@pytest.mark.parametrize("name", ["spm_preprocess", "ema"])
def test_a_preprocess_dictionary_converts_exactly_with_default_flags(cli, tmp_path, name):
    """dict.txt from fairseq-preprocess lacks pieces and holds raw characters; found in data-bin/, the sentencepiece
    model found beside the save dir: no flag needed, and the tokenizer looks pieces up as fairseq does."""
    out = tmp_path / "out"
    r = cli("convert", trained(name) / BEST, out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["accepted"] == [] and data["tokenizer"]["equal"] and data["tokenizer"]["dictionary_texts"] > 0
    hub = trained_hub(name)
    assert_tokenizer_is_fairseqs(out, hub)
    assert_logits_are_fairseqs(hub, out, trained_corpus()[::25] + dictionary_probes())
    probes = tmp_path / "probes.txt"
    probes.write_text("\n".join(dictionary_probes()) + "\n")
    r = cli("verify", trained(name) / BEST, out, "--texts-file", probes, "--json")
    assert r.exit_code == 0, r.output
    assert all(row["ok"] for row in json.loads(r.stdout)["tokenizer"]["vocabulary"])


def test_inspect_tells_the_dictionary_as_it_is(tmp_path):
    report = inspect_path(trained("spm_preprocess") / BEST)
    tok = report.tokenizer
    assert tok["tokenizer_class"] == "BartphoTokenizer" and tok["raw_symbols"] == len(FACTS["raw_characters"])
    assert tok["missing_pieces"] == len(FACTS["missing_pieces"]) and tok["fillers"] == len(FACTS["fillers"])
    assert tok["dict.txt"].endswith("data-bin/dict.txt") and tok["sentencepiece.bpe.model"].endswith("spm.model")
    notes = " ".join(report.notes)
    assert "no sentencepiece piece" in notes and "which does the same" in notes
    assert "BartphoTokenizer" in report.details["converts_to"]


def test_a_save_dir_is_never_guessed_from(cli, tmp_path):
    """convert, verify and diff refuse a folder of several checkpoints, naming them; inspect lists them with how far
    training had got in each (epoch, updates, validation loss: what a user picks by) and says it describes the
    first, exit 0."""
    save_dir = trained("spm_preprocess") / "checkpoints"
    for command in (("convert", tmp_path / "out"), ("verify", tmp_path), ("diff", save_dir / BEST.split("/")[-1])):
        r = cli(command[0], save_dir, *command[1:])
        assert r.exit_code == 2, (command, r.output)
        (line,) = error_lines(r.stderr)
        assert "holds 3 checkpoints (checkpoint_best.pt, checkpoint_last.pt, checkpoint_1_8.pt)" in line
        assert "name the one to use" in line
        r = cli(command[0], trained("spm_preprocess"), *command[1:])
        assert r.exit_code == 2 and "checkpoints holds checkpoint_best.pt" in r.stderr
    assert not (tmp_path / "out").exists()
    for folder in (save_dir, trained("spm_preprocess")):
        r = cli("inspect", folder, "--json")
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert report["details"]["checkpoints"] == {
            "checkpoint_best.pt": "epoch 1, 10 updates, val_loss 9.99",
            "checkpoint_last.pt": "epoch 1, 10 updates, val_loss 9.99",
            "checkpoint_1_8.pt": "epoch 1, 8 updates, val_loss 9.996",
        }
        assert report["path"].endswith("checkpoint_best.pt")
        assert any("holds 3 checkpoints" in w and "take the one named" in w for w in report["warnings"])


def test_an_interval_checkpoint_converts_and_verifies(cli, tmp_path):
    src = trained("spm_preprocess") / "checkpoints" / "checkpoint_1_8.pt"
    assert cli("convert", src, tmp_path / "out", "-q").exit_code == 0
    assert cli("verify", src, tmp_path / "out", "-q").exit_code == 0
    assert cli("verify", trained("spm_preprocess") / BEST, tmp_path / "out", "-q").exit_code == 1  # another update


def test_ema_weights_are_fairseqs_own_export(cli, tmp_path):
    """--ema converts the averaged model a --store-ema training kept: what fairseq's save_ema_as_checkpoint
    exports (ema.pt, loaded by fairseq's hub loader), not the live weights."""
    src = trained("ema") / BEST
    assert "--store-ema" in inspect_path(src).details["ema_weights"]
    r = cli("convert", src, tmp_path / "ema", "--ema", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["weights"] == "ema"
    assert "exponential moving average" in (tmp_path / "ema" / "README.md").read_text()
    assert_logits_are_fairseqs(
        trained_hub("ema", "ema.pt"), tmp_path / "ema", trained_corpus()[::25] + dictionary_probes()
    )
    assert cli("verify", src, tmp_path / "ema", "--ema", "-q").exit_code == 0
    assert cli("verify", src, tmp_path / "ema", "-q").exit_code == 1  # the live weights are another model
    r = cli("convert", trained("spm_preprocess") / BEST, tmp_path / "none", "--ema")
    assert r.exit_code == 2 and "did not use --store-ema" in r.stderr


def test_diff_compares_a_checkpoints_ema_weights_with_ema(cli, tmp_path):
    """diff had no --ema: a folder converted with --ema could only be diffed against the checkpoint's live weights
    ("models differ"). With it the fairseq side's weights are the EMA model's, tensors and outputs equal to the
    folder's; the live folder differs; an option with no fairseq side to apply to is refused by name."""
    src = trained("ema") / BEST
    assert cli("convert", src, tmp_path / "ema", "--ema", "-q").exit_code == 0
    assert cli("convert", src, tmp_path / "live", "-q").exit_code == 0
    r = cli("diff", src, tmp_path / "ema", "--ema", "--outputs", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"]
    assert cli("diff", src, tmp_path / "live", "--ema", "-q").exit_code == 1
    assert cli("diff", src, tmp_path / "ema", "-q").exit_code == 1  # without it: the live weights
    r = cli("diff", tmp_path / "ema", tmp_path / "live", "--ema")
    assert r.exit_code == 2
    (line,) = error_lines(r.stderr)
    assert "--ema selects a fairseq checkpoint's EMA weights, and neither side is one" in line


def test_a_sentence_prediction_fine_tune_finds_its_label_dictionary(cli, tmp_path):
    """input0/dict.txt and label/dict.txt where fairseq-preprocess put them for the task; the head's classes named
    by label/dict.txt, logits equal fairseq's head."""
    name, head = "sentence_prediction", "script_head"
    r = cli("convert", trained(name) / BEST, tmp_path / "out", "--head", head, "--json")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    labels = [line.split()[0] for line in (trained(name) / "data-bin/label/dict.txt").read_text().splitlines()]
    assert [config["id2label"][str(i)] for i in range(6)] == labels[:6]
    hub = trained_hub(name)
    ids = [hub.encode(t)[:60] for t in trained_corpus()[::40]]
    batch, mask = padded_batch(ids)
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out"), dtype=torch.float32).eval()
    with torch.no_grad():
        want = hub.model(batch, features_only=True, classification_head_name=head)[0]
        got = model(input_ids=batch, attention_mask=mask).logits
    assert (want - got).abs().max().item() <= 1e-5
    assert cli("verify", trained(name) / BEST, tmp_path / "out", "--head", head, "-q").exit_code == 0


@pytest.mark.parametrize("name", ["preln_emb_ln", "preln_emb_ln_gpt2"])
def test_pre_ln_roberta_with_an_embedding_norm_is_roberta_prelayernorm(cli, tmp_path, name):
    """--encoder-normalize-before on roberta_base keeps the embedding LayerNorm and adds a final one: transformers'
    RobertaPreLayerNorm, for a sentencepiece and a GPT-2 BPE dictionary, by default."""
    src, out = trained(name) / BEST, tmp_path / "out"
    assert "RobertaPreLayerNormForMaskedLM" in inspect_path(src).details["converts_to"]
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model_class"] == "RobertaPreLayerNormForMaskedLM"
    assert json.loads((out / "config.json").read_text())["model_type"] == "roberta-prelayernorm"
    hub = trained_hub(name)
    assert_tokenizer_is_fairseqs(out, hub)
    assert_logits_are_fairseqs(hub, out, trained_corpus()[::25] + dictionary_probes())
    assert cli("verify", src, out, "-q").exit_code == 0
    assert cli("diff", src, out, "--outputs", "-q").exit_code == 0


@pytest.mark.parametrize(("name", "head"), [("relu_head", None), ("relu_pooler", "sentence_classification_head")])
def test_the_encoder_alone_where_the_head_cannot_be_represented(cli, tmp_path, name, head):
    """A relu masked-LM head or a relu pooler has no transformers equivalent: the refusal offers the encoder alone
    (--head none), which converts exactly for AutoModel (feature extraction)."""
    from transformers import AutoModel

    src, out = trained(name) / BEST, tmp_path / "out"
    r = cli("convert", src, out, *(["--head", head] if head else []))
    assert r.exit_code == 2 and "--head none" in r.stderr and not out.exists()
    r = cli("convert", src, out, "--head", "none", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model_class"] == "XLMRobertaModel"
    assert "pipeline_tag: feature-extraction" in (out / "README.md").read_text()
    model, info = AutoModel.from_pretrained(str(out), add_pooling_layer=False, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}, info
    _, plain = AutoModel.from_pretrained(str(out), output_loading_info=True)  # the model card's warning, true
    assert plain["missing_keys"] == {"pooler.dense.weight", "pooler.dense.bias"}
    hub = trained_hub(name)
    ids = [hub.encode(t)[:60] for t in trained_corpus()[::25]]
    batch, mask = padded_batch(ids)
    with torch.no_grad():
        want = hub.model(batch, features_only=True)[0]
        got = model.eval()(input_ids=batch, attention_mask=mask).last_hidden_state
    for i, t in enumerate(ids):
        assert (want[i, : len(t)] - got[i, : len(t)]).abs().max().item() <= 1e-5, i
    assert cli("verify", src, out, "-q").exit_code == 0  # the bare model's folder: the encoder is compared
    assert cli("diff", src, out, "--outputs", "-q").exit_code == 0


@pytest.mark.parametrize("name", ["relu_head", "relu_pooler", "../cfg_scaled_embedding", "spm_preprocess"])
def test_inspect_says_what_convert_writes_with_default_flags(cli, tmp_path, name):
    """inspect's "converts to" named XLMRobertaForMaskedLM for checkpoints convert refuses with default flags (a
    relu masked-LM head, a scaled embedding): it now says what convert writes — the classes, nothing, or nothing by
    default and what --head none writes — and convert agrees."""
    src = trained(name) / BEST if (trained(name) / BEST).is_file() else trained(name) / "model.pt"
    said = inspect_path(src).details["converts_to"]
    r = cli("convert", src, tmp_path / "out", "--no-verify")
    if r.exit_code == 0:
        config = json.loads((tmp_path / "out" / "config.json").read_text())
        assert said.startswith(f"{config['architectures'][0]} + "), said
        return
    assert r.exit_code == 2 and said.startswith("nothing"), (said, r.output)
    if "--head none:" not in said:
        assert said == "nothing: convert refuses this model (see the warnings)"
        assert cli("convert", src, tmp_path / "none", "--head", "none", "--no-verify").exit_code == 2
        return
    written = said.split("--head none: ")[1].split(" + ")[0]
    assert cli("convert", src, tmp_path / "none", "--head", "none", "--no-verify").exit_code == 0
    assert json.loads((tmp_path / "none" / "config.json").read_text())["architectures"] == [written]


# ---------------------------------------------------------------- sentencepiece models the fast tokenizer misreads

# sentencepiece trainer options users train with whose models transformers' XLM-R conversion (a tokenizers Unigram
# over the pieces' scores) segments otherwise than sentencepiece: measured on fairseq-train checkpoints whose dict.txt
# is the model's vocabulary (XLM-R's recipe), each gave other ids than fairseq on ordinary text and convert exit 1.
SPM_TRAITS = {
    "byte_fallback": {"byte_fallback": True},
    "model_type=bpe": {"model_type": "bpe"},
    "3 user_defined_symbols ('<sep>', '@@', 'XYZ')": {"user_defined_symbols": ["<sep>", "@@", "XYZ"]},
    "add_dummy_prefix=false": {"add_dummy_prefix": False},
    "remove_extra_whitespaces=false": {"remove_extra_whitespaces": False},
    "split_by_whitespace=false": {"split_by_whitespace": False},
    "treat_whitespace_as_suffix=true": {"treat_whitespace_as_suffix": True},
    "unk_id=3, bos_id=0, eos_id=1, pad_id=-1": {"unk_id": 3, "bos_id": 0, "eos_id": 1},
    "unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1": {"bos_id": -1, "eos_id": -1},
}


def vocabulary_dictionary_run(folder, **trainer):
    """A training run as XLM-R's recipe makes one: a sentencepiece model trained on the corpus with `trainer`'s
    options (1,024 pieces), dict.txt its vocabulary (all but its specials) in its order (fairseq's Dictionary, padded
    to a multiple of 8: 1,028 symbols, the rows of spm_preprocess's checkpoint, which stands in for the model trained
    on it: the tokenizer, not the weights, is under test; fairseq's hub loader given these files is the truth either
    way)."""
    import shutil

    import sentencepiece as spm
    from fairseq.data import Dictionary

    (folder / "checkpoints").mkdir(parents=True)
    (folder / "data-bin").mkdir()
    shutil.copy(trained("spm_preprocess") / BEST, folder / BEST)  # records data-bin as its data
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(trained_corpus()), model_prefix=str(folder / "spm"), vocab_size=1024,
        character_coverage=0.995, num_threads=1, shuffle_input_sentence=False, minloglevel=2,
        **{"model_type": "unigram", **trainer},
    )  # fmt: skip
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    d = Dictionary()
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            d.add_symbol(sp.id_to_piece(i), n=1)
    d.finalize(threshold=-1, nwords=-1, padding_factor=8)
    d.save(str(folder / "data-bin" / "dict.txt"))
    assert len(d) == 4 + 1028
    return folder / BEST


@pytest.mark.parametrize("trait", list(SPM_TRAITS))
def test_sentencepiece_models_the_fast_tokenizer_misreads_take_the_lookup_route(cli, tmp_path, trait):
    """A dict.txt holding every piece of a byte-fallback, bpe-type or user-defined-symbol sentencepiece model:
    the fast tokenizer gave other ids than fairseq (convert exit 1 before); sentencepiece itself segmenting
    (BartphoTokenizer) gives fairseq's ids, by default, and inspect says why."""
    import argparse

    from fairseq.models.roberta import RobertaModel

    src = vocabulary_dictionary_run(tmp_path / "run", **SPM_TRAITS[trait])
    out = tmp_path / "out"
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokenizer"]["equal"]
    with torch.serialization.safe_globals([argparse.Namespace]):
        hub = RobertaModel.from_pretrained(
            str(src.parent), checkpoint_file=src.name, data_name_or_path=str(tmp_path / "run" / "data-bin"),
            bpe="sentencepiece", sentencepiece_model=str(tmp_path / "run" / "spm.model"),
        ).eval()  # fmt: skip
    probes = ["a <sep> b @@ c XYZxyz", "Hello 🦜 커피 Ґ 12345", "مرحبا بالعالم! هذه جملة عربية.",
              "  two  spaces,\ta tab ", "Привет, мир! Это маленький корпус."]  # fmt: skip
    assert_tokenizer_is_fairseqs(out, hub, probes)
    assert_logits_are_fairseqs(hub, out, trained_corpus()[::25] + probes)
    tok = inspect_path(src).tokenizer
    assert tok["missing_pieces"] == 0 and tok["sentencepiece_traits"] == [trait]
    assert tok["tokenizer_class"] == "BartphoTokenizer"


@pytest.mark.parametrize("rule", ["nfkc", "identity"])
def test_a_normalization_that_leaves_whitespace_in_pieces_is_refused_by_name(cli, tmp_path, rule):
    """Under nfkc or identity normalization sentencepiece emits pieces of tabs and newlines, which fairseq drops when
    it looks pieces up (Dictionary.encode_line splits on whitespace) and no tokenizer AutoTokenizer loads drops:
    refused by name, where before convert published a fast tokenizer (exit 0) that gave a tab an id of its own."""
    src = vocabulary_dictionary_run(tmp_path / "run", normalization_rule_name=rule)
    r = cli("convert", src, tmp_path / "out")
    assert r.exit_code == 2, r.output
    (line,) = error_lines(r.stderr)
    assert f"normalization_rule_name={rule}" in line and "--accept-missing-pieces" in line
    assert not (tmp_path / "out").exists()
    assert any(f"normalization_rule_name={rule}" in w for w in inspect_path(src).warnings)


@pytest.mark.parametrize("name", ["spm_preprocess", "preln_emb_ln", "preln_emb_ln_gpt2", "gottbert_srcdict"])
def test_every_layer_is_fairseqs_hub_models(cli, tmp_path, name):
    """Layer by layer: each trained run converted with default flags gives, as AutoModelForMaskedLM loads it, fairseq's
    hub model's embeddings, every layer's output, the final norm (pre-LN) and the logits, on the hub's own ids."""
    from transformers import AutoModelForMaskedLM

    from tests.helpers.full_forward import fairseq_stages, hf_stages

    out = tmp_path / "out"
    assert cli("convert", trained(name) / BEST, out, "-q").exit_code == 0
    hub = trained_hub(name)
    model = AutoModelForMaskedLM.from_pretrained(str(out), dtype=torch.float32, local_files_only=True).eval()
    for text in trained_corpus()[::40]:
        tokens = hub.encode(text)[:60][None]
        want, got = fairseq_stages(hub.model, tokens, None), hf_stages(model, tokens, 1, None)
        assert list(got) == list(want) and len(want) >= 4, (list(got), list(want))
        for stage, x in want.items():
            assert (x - got[stage]).abs().max().item() <= 1e-5, (text, stage)


def test_a_regression_fine_tune_says_so_in_its_config(cli, tmp_path):
    """fairseq's --regression-target (STS-B's recipe): a one-output head whose value fairseq returns as is.
    transformers' text-classification pipeline applies a sigmoid to a one-label head unless config.json says
    problem_type "regression": convert wrote no problem_type, so the pipeline's score was sigmoid(fairseq's value).
    Fine-tuned here by fairseq-train itself from the spm_preprocess checkpoint, on the corpus with a float label per
    line (label/<split>.label, as the task reads regression targets)."""
    from transformers import pipeline

    from tests.fixtures import make_trained

    folder = tmp_path / "stsb"
    shutil.copytree(trained("sentence_prediction") / "data-bin" / "input0", folder / "data-bin" / "input0")
    for name in ("spm.model", "spm.vocab"):
        shutil.copy(trained("sentence_prediction") / name, folder / name)
    rows = make_trained.corpus()
    for part in ("train", "valid"):
        scores = "".join(f"{len(line) % 50 / 10:.1f}\n" for line, _ in make_trained.split(rows, part))
        (folder / "data-bin" / "label" / f"{part}.label").parent.mkdir(exist_ok=True)
        (folder / "data-bin" / "label" / f"{part}.label").write_text(scores)
    accuracy = ("--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric")
    finetune = [a for a in make_trained.FINETUNE if a not in accuracy]
    make_trained.fairseq_train(folder, "data-bin", "--arch", "roberta_base", *make_trained.TINY, *finetune,
                               "--num-classes", "1", "--regression-target", "--restore-file",
                               str(trained("spm_preprocess") / BEST))  # fmt: skip
    head, out = "sentence_classification_head", tmp_path / "out"
    r = cli("convert", folder / BEST, out, "--head", head)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"
    hub = trained_hub(str(folder))
    classify = pipeline("text-classification", model=str(out), dtype=torch.float32)
    for text in trained_corpus()[::60]:
        with torch.no_grad():
            want = hub.predict(head, hub.encode(text), return_logits=True)[0, 0].item()
        (got,) = classify(text)
        assert abs(got["score"] - want) <= 1e-5, (text, got, want)
    assert cli("verify", folder / BEST, out, "--head", head, "-q").exit_code == 0
