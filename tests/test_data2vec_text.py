"""data2vec-text (fairseq's examples/data2vec `data2vec_text`, tests/fixtures/trained/data2vec_text: trained by
fairseq-hydra-train with data2vec's own config): the student encoder converts with default flags to transformers'
Data2VecTextModel, exact against fairseq's own Data2VecTextModel loaded by fairseq's own checkpoint_utils — every
layer, token by token — with the EMA teacher (a nested dict in the state dict) and the regression head left out
with a stated reason; a classification head converts to Data2VecTextForSequenceClassification."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
from conftest import error_lines
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from tests.helpers.full_forward import fairseq_encode, padded_batch, trained, trained_fairseq_model
from tests.helpers.tokenizer_fuzz import DOCUMENTED, kind_of
from xlmr_tools import inspect_path

BEST = "checkpoints/checkpoint_best.pt"
TEACHER = "encoder._ema"
REGRESSION_HEAD = [f"encoder.regression_head.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]


def corpus() -> list[str]:
    return [line for p in sorted(trained("corpus").glob("*.txt")) for line in p.read_text().splitlines() if line]


def load(path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, weights_only=True)


def assert_encoder_is_fairseqs(folder, model, task, bpe) -> None:
    """The folder as AutoModel loads it (the bare model, no pooler) against fairseq's own model on the corpus:
    the embeddings and every layer's output, token by token (pads excluded), and the tokenizer's ids."""
    hf, info = AutoModel.from_pretrained(
        str(folder), add_pooling_layer=False, dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert type(hf).__name__ == "Data2VecTextModel"
    assert {k: v for k, v in info.items() if v} == {}, info
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    texts = corpus()
    for text in texts:
        if kind_of(text) not in DOCUMENTED:
            assert tok(text)["input_ids"] == fairseq_encode(task, bpe, text).tolist(), text
    ids = [fairseq_encode(task, bpe, t)[:60] for t in texts[::10]]
    batch, mask = padded_batch(ids)
    with torch.no_grad():
        want, extra = model(batch, features_only=True, return_all_hiddens=True)
        got = hf.eval()(input_ids=batch, attention_mask=mask, output_hidden_states=True)
    stages = [s.transpose(0, 1) for s in extra["inner_states"]]  # fairseq's are time-major
    assert len(stages) == len(got.hidden_states) == 3 and torch.equal(stages[-1], want)
    for k, (a, b) in enumerate(zip(stages, got.hidden_states)):
        for i, t in enumerate(ids):
            assert (a[i, : len(t)] - b[i, : len(t)]).abs().max().item() <= 1e-5, (k, i)
    for i, t in enumerate(ids):
        assert (want[i, : len(t)] - got.last_hidden_state[i, : len(t)]).abs().max().item() <= 1e-5, i


def test_the_student_converts_by_default_to_the_bare_model_exact_against_fairseqs_own(cli, tmp_path):
    src, out = trained("data2vec_text") / BEST, tmp_path / "out"
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["model_class"] == "Data2VecTextModel" and data["tokenizer"]["equal"]
    assert "EMA teacher" in data["ignored"][TEACHER] and "unused at inference" in data["ignored"][TEACHER]
    assert all("regression head" in data["ignored"][k] for k in REGRESSION_HEAD)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "data2vec-text" and config["architectures"] == ["Data2VecTextModel"]
    assert (config["max_position_embeddings"], config["hidden_act"]) == (66, "gelu")
    assert "pipeline_tag: feature-extraction" in (out / "README.md").read_text()
    assert_encoder_is_fairseqs(out, *trained_fairseq_model("data2vec_text"))
    assert cli("verify", src, out, "-q").exit_code == 0
    assert cli("diff", src, out, "--outputs", "-q").exit_code == 0


def test_inspect_names_it_and_counts_the_student_alone(cli):
    src = trained("data2vec_text") / BEST
    r = cli("inspect", src)
    assert r.exit_code == 0, r.output  # the teacher, a nested dict, is no reason to stop
    report = inspect_path(src)
    assert report.description["hf_model_type"] == "data2vec-text"
    assert report.details["converts_to"].startswith("Data2VecTextModel + RobertaTokenizer")
    assert not report.warnings
    state = load(src)["model"]
    student = sum(t.numel() for k, t in state.items() if ".sentence_encoder." in k and not k.endswith(".version"))
    assert report.description["parameters"] == student


def test_a_state_dict_entry_no_family_leaves_out_is_still_refused(cli, tmp_path):
    """Only what the checkpoint's family leaves out may be no tensor: a RoBERTa checkpoint with a nested dict in
    its state dict is refused by name, and so is a data2vec one with a nested dict of another name."""
    for name, entry in (("preln_emb_ln_gpt2", "encoder._ema"), ("data2vec_text", "encoder.extra")):
        state = load(trained(name) / BEST)
        state["model"][entry] = {"weight": torch.zeros(2)}
        save_dir = tmp_path / name / "checkpoints"
        save_dir.mkdir(parents=True)
        torch.save(state, save_dir / "checkpoint_best.pt")
        r = cli("convert", save_dir / "checkpoint_best.pt", tmp_path / name / "out", "--no-verify")
        assert r.exit_code == 2
        (line,) = error_lines(r.stderr)
        assert f"state dict entry '{entry}' is not a tensor" in line


def test_the_glue_fine_tune_stays_a_roberta_checkpoint(cli, tmp_path):
    """data2vec's README fine-tunes with RoBERTa's GLUE config: the result is fairseq's `roberta` (an LM head
    fairseq inserted, the teacher dropped), which converts as RoBERTa, not as data2vec-text."""
    src, out = trained("data2vec_text_cls") / BEST, tmp_path / "out"
    assert inspect_path(src).description["hf_model_type"] == "roberta"
    r = cli("convert", src, out, "--head", "sentence_classification_head", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model_class"] == "RobertaForSequenceClassification"
    assert cli("verify", src, out, "--head", "sentence_classification_head", "-q").exit_code == 0


@pytest.fixture
def with_head(tmp_path):
    """A data2vec_text checkpoint holding a classification head, made with fairseq's own code: its own model
    registers the head (as the sentence_prediction task does before fine-tuning), and the head's tensors join the
    checkpoint's state dict, saved beside the fixture's data-bin and GPT-2 files."""
    model, _, _ = trained_fairseq_model("data2vec_text")
    torch.manual_seed(0)
    model.register_classification_head("cls", num_classes=3)
    folder = tmp_path / "data2vec_text"
    for sub in ("data-bin", "gpt2_bpe"):
        shutil.copytree(trained("data2vec_text") / sub, folder / sub)
    (folder / "checkpoints").mkdir()
    state = load(trained("data2vec_text") / BEST)
    state["model"].update({f"classification_heads.{k}": v for k, v in model.classification_heads.state_dict().items()})
    torch.save(state, folder / BEST)
    return folder / BEST


def test_a_classification_head_converts_to_sequence_classification(cli, tmp_path, with_head):
    out = tmp_path / "out"
    r = cli("convert", with_head, out)  # no masked-LM head: convert asks which, naming the head
    assert r.exit_code == 2 and "--head (cls)" in r.stderr and "--head none" in r.stderr and not out.exists()
    r = cli("convert", with_head, out, "--head", "cls", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model_class"] == "Data2VecTextForSequenceClassification"
    model, task, bpe = trained_fairseq_model("data2vec_text", with_head, load_checkpoint_heads=True)
    assert list(model.classification_heads) == ["cls"]
    ids = [fairseq_encode(task, bpe, t)[:60] for t in corpus()[::20]]
    batch, mask = padded_batch(ids)
    hf = AutoModelForSequenceClassification.from_pretrained(str(out), dtype=torch.float32, local_files_only=True)
    with torch.no_grad():
        want = model(batch, features_only=True, classification_head_name="cls")[0]
        got = hf.eval()(input_ids=batch, attention_mask=mask).logits
    assert want.shape == got.shape == (len(ids), 3)
    assert (want - got).abs().max().item() <= 1e-5
    assert cli("verify", with_head, out, "--head", "cls", "-q").exit_code == 0
    assert cli("diff", with_head, out, "--head", "cls", "--outputs", "-q").exit_code == 0


def test_the_oracle_is_fairseqs_own_model_as_its_loader_builds_it():
    """What convert/verify run as fairseq (compare.oracle, built on the meta device by the family's hook and given
    the file's tensors) is the model fairseq's own checkpoint_utils loads: same class, same tensors, same output."""
    from xlmr_tools.compare.oracle import FairseqOracle
    from xlmr_tools.sources.fairseq import open_checkpoint

    oracle = FairseqOracle(open_checkpoint(trained("data2vec_text") / BEST), torch.float32)
    model, task, bpe = trained_fairseq_model("data2vec_text")
    assert type(oracle.model) is type(model)
    want = {k: v for k, v in model.state_dict().items() if k != TEACHER}  # fairseq's loader restores the teacher
    got = oracle.model.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    ids = [fairseq_encode(task, bpe, t)[:60] for t in corpus()[::10]]
    assert all(torch.equal(oracle.encode(t)[:60], i) for t, i in zip(corpus()[::10], ids))
    batch, _ = padded_batch(ids)
    with torch.no_grad():
        assert torch.equal(oracle.model(batch, features_only=True)[0], model(batch, features_only=True)[0])


def test_a_bad_value_among_the_nested_arguments_is_bad_input(cli, tmp_path):
    """The flattened arguments are checked as a RoBERTa checkpoint's are: a nested value of the wrong type is
    refused by name (exit 2), not a crash where it is first used."""
    state = load(trained("data2vec_text") / BEST)
    state["cfg"]["model"]["transformer"]["dropout"] = "abc"
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / BEST)
    gpt2 = trained("data2vec_text") / "gpt2_bpe"
    r = cli("convert", tmp_path / BEST, tmp_path / "out", "--no-verify", "--dict", gpt2 / "dict.txt",
            "--encoder-json", gpt2 / "encoder.json", "--vocab-bpe", gpt2 / "vocab.bpe")  # fmt: skip
    assert r.exit_code == 2
    (line,) = error_lines(r.stderr)
    assert "fairseq argument dropout='abc' is not a number" in line


def train_variant(tmp_path, name: str, *overrides: str):
    """A data2vec_text pretraining run by fairseq-hydra-train with data2vec's own config (make_trained's, 4 updates)
    plus `overrides`, on the fixture's data; its save dir."""
    from tests.fixtures import make_trained

    folder = tmp_path / name
    for sub in ("data-bin", "gpt2_bpe"):
        shutil.copytree(trained("data2vec_text") / sub, folder / sub)
    settings = [o for o in make_trained.DATA2VEC_PRETRAIN if not o.startswith("optimization.max_update=")]
    config = make_trained.fairseq_config_dir("data2vec", "config", "text", "pretraining")
    make_trained.hydra_train(folder, config, "base", [*settings, "optimization.max_update=4", *overrides])
    return folder / "checkpoints"


@pytest.mark.parametrize(
    ("override", "placement"),
    [
        ("model.transformer.encoder.normalize_before=true", "pre-LN layers and a final LayerNorm, an embedding"),
        ("model.transformer.layernorm_embedding=false", "post-LN layers, no embedding LayerNorm"),
    ],
)
def test_a_layout_data2vec_text_has_no_class_for_is_refused_naming_data2vec(cli, tmp_path, override, placement):
    """data2vec's encoder is fairseq's TransformerEncoder, whose norms its config places: a pre-LN student (or one
    without the embedding LayerNorm) has no Data2VecText class. Refused by name (data2vec-text, the options), exit
    2 — not described as another family (RobertaPreLayerNorm's layout fits a pre-LN one's tensors but not its
    nested arguments: it failed on 'encoder_attention_heads=None'), and inspect says why convert refuses and shows
    the norm placement the tensors have."""
    save_dir = train_variant(tmp_path, "variant", override)
    r = cli("convert", save_dir / "checkpoint_best.pt", tmp_path / "out", "--no-verify")
    assert r.exit_code == 2, r.output
    (line,) = error_lines(r.stderr)
    assert "data2vec-text (fairseq arch 'data2vec_text')" in line and placement in line, line
    assert "transformers' Data2VecText classes have post-LN layers, an embedding LayerNorm only" in line
    assert not (tmp_path / "out").exists()
    r = cli("inspect", save_dir / "checkpoint_best.pt")
    assert r.exit_code == 0 and "convert refuses this model" in r.stderr and placement in r.stderr, r.output
    # the placement inspect shows is the tensors' (it showed data2vec-text's own, post-ln, for a pre-LN student)
    want = "pre-ln" if placement.startswith("pre-LN") else "post-ln"
    assert inspect_path(save_dir / "checkpoint_best.pt").description["family"] == want


def test_variants_of_training_options_convert_exact_against_fairseqs_own(cli, tmp_path):
    """Options that only shape data2vec's training target or its regression head (--head-layers 3, --loss-beta 0,
    instance-norm targets, --average-top-k-layers 1), saved mid-training as checkpoint_E_U.pt: the student converts
    with default flags to Data2VecTextModel, every layer equal to fairseq's own Data2VecTextModel's."""
    save_dir = train_variant(
        tmp_path, "variant", "model.head_layers=3", "model.loss_beta=0", "model.layer_norm_target_layer=false",
        "+model.instance_norm_target_layer=true", "model.average_top_k_layers=1",
        "checkpoint.save_interval_updates=2", "checkpoint.keep_interval_updates=1",
    )  # fmt: skip
    (src,) = save_dir.glob("checkpoint_*_*.pt")
    out = tmp_path / "out"
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    ignored = json.loads(r.stdout)["ignored"]
    assert [k for k in ignored if k.startswith("encoder.regression_head.")] == [
        f"encoder.regression_head.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")
    ]
    assert_encoder_is_fairseqs(out, *trained_fairseq_model("data2vec_text", src))


def test_a_masked_lm_folder_against_a_checkpoint_without_that_head_is_refused_naming_the_folder(cli, tmp_path):
    """data2vec's student has no masked-LM head: verified or diffed against a folder holding one (a RoBERTa
    *ForMaskedLM, the same post-LN placement), the refusal said "checkpoint lacks 5 tensor(s) the data2vec-text layout
    needs, first: encoder.lm_head.bias", blaming the checkpoint for a head its family never has. It names the folder's
    head and --head none, which then compares the encoder."""
    folder = tmp_path / "roberta"
    assert cli("convert", trained("gottbert_srcdict") / BEST, folder, "--no-verify", "-q").exit_code == 0
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["RobertaForMaskedLM"]
    src = trained("data2vec_text") / BEST
    for command in ("verify", "diff"):
        r = cli(command, src, folder)
        assert r.exit_code == 2, r.output
        (line,) = error_lines(r.stderr)
        assert "the folder holds a masked-LM head and the checkpoint has none" in line and "--head none" in line
    r = cli("verify", src, folder, "--head", "none")
    assert r.exit_code == 1 and "config.json says model_type 'roberta'" in r.stderr  # compared: another model


def test_a_bare_folder_labelled_roberta_loads_the_same_and_verify_says_so(cli, tmp_path):
    """A bare Data2VecTextModel folder whose config.json says model_type 'roberta': transformers builds RobertaModel,
    loads every weight (the bare models share their names) and computes the same outputs. verify still fails the
    model_type row (the folder publishes another model) but its note said "transformers reports missing/unexpected
    norm weights and returns wrong outputs without an error", which transformers' own loading disproves."""
    out = tmp_path / "out"
    assert cli("convert", trained("data2vec_text") / BEST, out, "--no-verify", "-q").exit_code == 0
    right = AutoModel.from_pretrained(str(out), add_pooling_layer=False, dtype=torch.float32)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model_type": "roberta", "architectures": ["RobertaModel"]}))
    relabelled, info = AutoModel.from_pretrained(
        str(out), add_pooling_layer=False, dtype=torch.float32, output_loading_info=True
    )
    assert type(relabelled).__name__ == "RobertaModel" and {k: v for k, v in info.items() if v} == {}, info
    ids = torch.tensor([[0, 100, 200, 300, 400, 2]])
    with torch.no_grad():
        assert torch.equal(relabelled(ids).last_hidden_state, right(ids).last_hidden_state)
    r = cli("verify", trained("data2vec_text") / BEST, out, "--json")
    assert r.exit_code == 1
    (row,) = [row for row in json.loads(r.stdout)["config"] if row["item"] == "model_type"]
    assert "loads these weights and computes the same outputs" in row["note"], row["note"]
    assert "wrong outputs" not in row["note"]


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("model.transformer.no_scale_embedding=false", "no_scale_embedding=False): transformers' Data2VecText* does"),
        ("model.transformer.encoder.learned_pos=false", "encoder_learned_pos=False): transformers' Data2VecText* has"),
    ],
)
def test_an_embedding_option_data2vec_text_lacks_is_refused_naming_its_classes(cli, tmp_path, override, said):
    """Scaled embeddings or sinusoidal positions in a data2vec-text student: refused by name (exit 2), the refusal
    naming the classes it converts to (it said "transformers' XLM-R" for a data2vec-text checkpoint)."""
    save_dir = train_variant(tmp_path, "variant", override)
    r = cli("convert", save_dir / "checkpoint_best.pt", tmp_path / "out", "--no-verify")
    assert r.exit_code == 2, r.output
    (line,) = error_lines(r.stderr)
    assert said in line and "XLM-R" not in line, line
