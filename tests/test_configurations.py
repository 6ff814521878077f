"""Checkpoints from real training configurations (tests/fixtures/cfg_*, built by fairseq's own code).

Each either converts exactly — checked against fairseq's own hub loader (`RobertaModel.from_pretrained`), not the
tool's oracle — or is refused by name: exit 2, one stderr line naming the fairseq option, nothing written, with
and without --no-verify.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import error_lines, fixture, leftovers

from tests.helpers.full_forward import (
    TEXTS,
    assert_head_matches,
    assert_mlm_matches,
    fairseq_hub,
    full_unpickling,
    head_logits,
)
from xlmr_tools import convert, inspect_path, verify


def hub(folder: Path, trust: bool = False):
    return fairseq_hub(folder, trust)


def hub_without_heads(folder: Path, tmp: Path):
    """fairseq's hub loader on a copy of the checkpoint without its classification heads (fairseq cannot reload
    its own spectral-norm heads: see test_spectral_norm_head_is_folded_as_torch_computes_it)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = torch.load(folder / "model.pt", weights_only=True)
    copy = shutil.copytree(folder, tmp / "without-heads")
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("classification_heads.")}
    torch.save(state, copy / "model.pt")
    return hub(copy)


@pytest.mark.parametrize("verify_outputs", [True, False])
@pytest.mark.parametrize(
    "name,trust",
    [
        ("cfg_in_proj", False),
        ("cfg_layers_to_keep", False),
        ("cfg_dictconfig", False),
        ("cfg_dictconfig", True),
        ("cfg_spectral_norm", False),
        ("cfg_sentence_prediction", False),
    ],
)
def test_masked_lm_converts_and_matches_fairseq_hub(tmp_path, name, trust, verify_outputs):
    result = convert(fixture(name), tmp_path / "out", verify=verify_outputs, trust=trust)
    assert result.weights_equal and (result.outputs is None) != verify_outputs
    if verify_outputs:
        assert all(r.max_abs <= 1e-5 for r in result.outputs.rows)
    reference = (
        hub_without_heads(fixture(name), tmp_path)
        if name == "cfg_spectral_norm"
        else hub(fixture(name), trust=name == "cfg_dictconfig")
    )  # fairseq itself unpickles it fully
    assert_mlm_matches(reference, tmp_path / "out")


@pytest.mark.parametrize("verify_outputs", [True, False])
@pytest.mark.parametrize(
    "name,hidden_act", [("cfg_gelu_accurate", "gelu_new"), ("cfg_tanh", "tanh"), ("cfg_linear", "linear")]
)
def test_activations_map_to_the_same_formula(tmp_path, name, hidden_act, verify_outputs):
    convert(fixture(name), tmp_path / "out", head="mnli", verify=verify_outputs)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["hidden_act"] == hidden_act
    assert_head_matches(*head_logits(hub(fixture(name)), "mnli"), tmp_path / "out")
    assert verify(fixture(name), tmp_path / "out").ok


def test_sentence_prediction_labels_from_the_label_dictionary(tmp_path, cli):
    out = tmp_path / "out"
    convert(fixture("cfg_sentence_prediction"), out, head="sentence_classification_head")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}
    assert cfg["label2id"] == {"entailment": 0, "neutral": 1, "contradiction": 2}
    model = hub(fixture("cfg_sentence_prediction"))
    assert model.task.label_dictionary.string([4, 5, 6]) == "entailment neutral contradiction"  # fairseq's order
    assert_head_matches(*head_logits(model, "sentence_classification_head"), out)
    report = verify(fixture("cfg_sentence_prediction"), out)
    assert report.ok and any(r.item == "id2label" and r.ok for r in report.config)
    other = tmp_path / "labels.txt"
    other.write_text("contradiction 5\nentailment 4\nneutral 3\n")
    r = cli("verify", fixture("cfg_sentence_prediction"), out, "--labels", other, "-q")
    assert r.exit_code == 1 and "id2label" in r.stderr
    r = cli(
        "convert",
        fixture("cfg_sentence_prediction"),
        tmp_path / "b",
        "--head",
        "sentence_classification_head",
        "--labels",
        other,
        "--no-verify",
        "-q",
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b" / "config.json").read_text())["id2label"]["0"] == "contradiction"


def test_spectral_norm_head_is_folded_as_torch_computes_it(tmp_path):
    """fairseq's hub loader itself cannot reload a --spectral-norm-classification-head checkpoint (its
    upgrade_state_dict_named reads out_proj.weight, which spectral norm stores as weight_orig). The body is checked
    through the hub loader on a copy without the head, the head through fairseq's own RobertaClassificationHead
    given the file's tensors."""
    folder = fixture("cfg_spectral_norm")
    with pytest.raises(KeyError, match=r"out_proj\.weight"):
        hub(folder)
    convert(folder, tmp_path / "out", head="mnli")
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = torch.load(folder / "model.pt", weights_only=True)
    head_state = {
        k[len("classification_heads.mnli.") :]: v
        for k, v in state["model"].items()
        if k.startswith("classification_heads.mnli.")
    }
    body = hub_without_heads(folder, tmp_path)
    body.model.register_classification_head("mnli", num_classes=3)  # spectral norm, from the checkpoint's args
    body.model.classification_heads["mnli"].load_state_dict(head_state)
    body.eval()
    assert_head_matches(*head_logits(body, "mnli"), tmp_path / "out")


def test_layers_to_keep_is_pruned_as_fairseq_prunes(tmp_path):
    folder = fixture("cfg_layers_to_keep")
    assert len(hub(folder).model.encoder.sentence_encoder.layers) == 2
    result = convert(folder, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_hidden_layers"] == 2
    assert [r.stage for r in result.outputs.rows][:3] == ["embeddings", "layer 0", "layer 1"]
    assert any("pruned by encoder_layers_to_keep=0,2" in why for why in result.ignored.values())
    report = inspect_path(folder)
    assert report.description["layers"] == 2 and report.details["layers_in_file"] == 4
    assert report.details["fairseq"]["encoder_layers_to_keep"] == "0,2"
    assert any("drops layers 1, 3" in n for n in report.notes)  # convert handles it: a note


def test_in_proj_layout_verifies_and_diffs_equal(tmp_path, cli):
    out = tmp_path / "out"
    convert(fixture("cfg_in_proj"), out, verify=False)
    assert cli("verify", fixture("cfg_in_proj"), out, "-q").exit_code == 0
    assert cli("diff", fixture("cfg_in_proj"), out, "-q").exit_code == 0


def test_spectral_norm_heads_are_reported(cli):
    report = inspect_path(fixture("cfg_spectral_norm"))
    assert report.description["classification_heads"] == {"mnli": 3}
    assert report.details["fairseq"]["spectral_norm_classification_head"] is True


REFUSED = [
    ("cfg_head_inner_dim", ["--head", "mnli"], "inner_dim 16"),
    ("cfg_scaled_embedding", [], "no_scale_embedding=False"),
    ("cfg_sinusoidal", [], "encoder_learned_pos=False"),
    ("cfg_no_positions", [], "no_token_positional_embeddings=True"),
    ("cfg_position_rows", [], "max_positions=512"),
    ("cfg_gelu_accurate", [], "activation_fn='gelu_accurate'"),
    ("cfg_tanh", [], "activation_fn='tanh'"),
    ("cfg_linear", [], "activation_fn='linear'"),
]


@pytest.mark.parametrize("mode", ["--verify", "--no-verify"])
@pytest.mark.parametrize("name,args,named", REFUSED)
def test_unrepresentable_configurations_are_refused_by_name(cli, tmp_path, name, args, named, mode):
    r = cli("convert", fixture(name), tmp_path / "out", *args, mode)
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and named in lines[0] and "unexpected" not in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["cfg_scaled_embedding", "cfg_sinusoidal", "cfg_no_positions"])
def test_refused_configurations_are_real_fairseq_models(name):
    """fairseq runs them (what it computes is what transformers cannot), and inspect says why convert refuses."""
    model = hub(fixture(name))
    with torch.no_grad():
        assert torch.isfinite(model.model(model.encode(TEXTS[0])[None])[0]).all()
    report = inspect_path(fixture(name))
    assert any(w.startswith("convert refuses this model") for w in report.warnings)


def test_verify_refuses_an_unrepresentable_source_by_name(cli, tmp_path, converted):
    r = cli("verify", fixture("cfg_scaled_embedding"), converted["postln_untied"], "-q")
    assert r.exit_code == 2 and "no_scale_embedding=False" in r.stderr


def test_dictconfig_cfg_is_read_without_running_its_pickle(cli, tmp_path):
    """fairseq 0.10's DictConfig cfg is read through inert stand-ins (no --trust-checkpoint); a payload hidden
    beside it is still refused by name and never runs."""
    from test_safety import Payload

    report = inspect_path(fixture("cfg_dictconfig"))
    assert report.details["fairseq"]["arch"] == "roberta_prenorm" and report.description["family"] == "pre-ln"
    folder = shutil.copytree(fixture("cfg_dictconfig"), tmp_path / "hostile")
    marker = tmp_path / "pwned"
    with full_unpickling():
        state = torch.load(folder / "model.pt")
    state["extra_state"] = {"x": Payload(marker)}
    torch.save(state, folder / "model.pt")
    r = cli("convert", folder, tmp_path / "out")
    assert r.exit_code == 2 and "posix.system" in r.stderr and not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_another_fairseq_model_is_refused_naming_what_it_is(cli, tmp_path, command):
    args = [fixture("other_transformer_lm")] + ([tmp_path / "out", "--no-verify"] if command == "convert" else [])
    r = cli(command, *args)
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "'transformer_lm'" in lines[0] and "decoder only" in lines[0]
    assert not (tmp_path / "out").exists()
