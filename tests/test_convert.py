"""`xlmr convert` end to end: every family and head, checked against fairseq's own committed outputs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ALL, fixture, leftovers, reference
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

from xlmr_tools import convert
from xlmr_tools.io.safetensors import SafetensorsFile


def _load(folder, cls=AutoModelForMaskedLM, dtype=torch.float32):
    model, info = cls.from_pretrained(str(folder), dtype=dtype, local_files_only=True, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}, info
    return model.eval()


def _batch(ref):
    ids = torch.nn.utils.rnn.pad_sequence(ref["token_ids"], batch_first=True, padding_value=1)
    return ids, (ids != 1).long()


@pytest.mark.parametrize("name", ALL)
def test_masked_lm_matches_fairseq_reference(converted, name):
    ref = reference(name)
    half = name == "preln_fp16"
    model = _load(converted[name], dtype=torch.float16 if half else torch.float32)
    expected_class = "XLMRobertaXLForMaskedLM" if name.startswith("preln") else "XLMRobertaForMaskedLM"
    assert type(model).__name__ == expected_class
    ids, mask = _batch(ref)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    tol = 2e-2 if half else 1e-5
    for i, expected in enumerate(ref["logits"]):
        got = logits[i, : len(expected)].float()
        assert (got - expected.float()).abs().max().item() <= tol, (name, i)


@pytest.mark.parametrize("name", ALL)
def test_tokenizer_ids_equal_fairseq(converted, name):
    ref = reference(name)
    tok = AutoTokenizer.from_pretrained(str(converted[name]), local_files_only=True)
    for text, ids in zip(ref["texts"], ref["token_ids"]):
        assert tok(text, truncation=True, max_length=512)["input_ids"] == ids.tolist()
    assert tok.mask_token_id == ref["mask_id"]
    assert tok.convert_ids_to_tokens(ref["mask_id"]) == "<mask>"


@pytest.mark.parametrize("head", ["mnli", "sentence_classification_head"])
def test_classification_heads_match_fairseq(converted, head):
    ref = reference("preln_heads")
    model = _load(converted[f"preln_heads:{head}"], AutoModelForSequenceClassification)
    assert model.config.num_labels == ref["heads"][head].shape[1]
    ids, mask = _batch(ref)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    assert (logits - ref["heads"][head]).abs().max().item() <= 1e-5


def test_fill_mask_pipeline_runs_offline(converted):
    fill = pipeline("fill-mask", model=str(converted["preln"]), tokenizer=str(converted["preln"]))
    out = fill("Hello <mask>!")
    assert len(out) == 5 and all("token_str" in o for o in out)


def test_output_folder_contents(converted):
    folder = converted["preln_heads:mnli"]
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "sentencepiece.bpe.model",
        "README.md",
    } <= names
    card = (folder / "README.md").read_text()
    assert "sha256" in card and "head mnli" in card and "XLMRobertaXLForSequenceClassification" in card
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "xlm-roberta-xl" and cfg["max_position_embeddings"] == 514
    assert cfg["vocab_size"] == 249 and cfg["layer_norm_eps"] == 1e-5


def test_untied_lm_head_stays_untied(converted):
    st = SafetensorsFile(converted["postln_untied"] / "model.safetensors")
    dec = st.tensor("lm_head.decoder.weight")
    emb = st.tensor("roberta.embeddings.word_embeddings.weight")
    assert not torch.equal(dec, emb)
    model = _load(converted["postln_untied"])
    assert model.lm_head.decoder.weight.data_ptr() != model.roberta.embeddings.word_embeddings.weight.data_ptr()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_casts(tmp_path, dtype):
    result = convert(fixture("preln"), tmp_path / "out", dtype=dtype)
    assert result.outputs.ok and result.weights_equal
    st = SafetensorsFile(tmp_path / "out" / "model.safetensors")
    assert {i.dtype for i in st.infos.values()} == {getattr(torch, dtype)}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == dtype


def test_sharded_output_loads(tmp_path):
    result = convert(fixture("preln"), tmp_path / "out", max_shard_size="100KB")
    assert len(result.shards) > 2
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(result.shards)
    _load(tmp_path / "out")


def test_every_stage_reported(tmp_path):
    result = convert(fixture("preln_heads"), tmp_path / "out", head="mnli")
    stages = [r.stage for r in result.outputs.rows]
    assert stages == ["embeddings", "layer 0", "layer 1", "final norm", "head mnli"]
    assert result.outputs.tokens == sum(len(t) for t in reference("preln")["token_ids"])
    assert "encoder.lm_head.dense.weight" in result.ignored
    assert "classification_heads.sentence_classification_head.dense.weight" in result.ignored


def test_verification_failure_publishes_nothing(cli, tmp_path):
    r = cli("convert", fixture("preln"), tmp_path / "out", "--dtype", "float16", "--tol", "1e-9")
    assert r.exit_code == 1, r.output
    assert "outputs differ from fairseq at lm logits" in r.stderr
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


class Boom(Exception):
    pass


class ExplodingProgress:
    """Injects a failure after some bytes were written: the conversion is interrupted mid-write."""

    def __init__(self, after: int, exc: BaseException) -> None:
        self.seen, self.after, self.exc = 0, after, exc

    def stage(self, text):
        pass

    def start(self, text, total):
        pass

    def step(self, text):
        pass

    def bar(self, text, total):
        return self.advance

    def advance(self, n):
        self.seen += n
        if self.seen >= self.after:
            raise self.exc


@pytest.mark.parametrize("exc", [Boom("disk on fire"), KeyboardInterrupt()])
def test_interrupted_conversion_leaves_nothing(tmp_path, exc):
    with pytest.raises(type(exc)):
        convert(fixture("preln"), tmp_path / "out", max_shard_size="100KB", progress=ExplodingProgress(200_000, exc))
    assert list(tmp_path.iterdir()) == []


def test_non_empty_out_refused_then_forced(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = cli("convert", fixture("preln"), out)
    assert r.exit_code == 2 and "--force" in r.stderr and (out / "keep.txt").exists()
    r = cli("convert", fixture("preln"), out, "--force", "-q")
    assert r.exit_code == 0 and not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert leftovers(tmp_path) == []


def test_out_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    r = cli("convert", fixture("preln"), tmp_path / "f")
    assert r.exit_code == 2 and "is a file" in r.stderr


def test_missing_head_lists_heads(cli, tmp_path):
    r = cli("convert", fixture("preln_heads"), tmp_path / "out", "--head", "sst2")
    assert r.exit_code == 2
    assert "mnli, sentence_classification_head" in r.stderr and not (tmp_path / "out").exists()


def test_convert_json(cli, tmp_path):
    r = cli("convert", fixture("postln_legacy"), tmp_path / "out", "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["model_class"] == "XLMRobertaForMaskedLM" and data["weights_equal"] is True
    assert data["outputs"]["ok"] is True and data["tokenizer"]["equal"] is True
    assert [s["stage"] for s in data["outputs"]["stages"]][:2] == ["embeddings", "layer 0"]


def test_no_verify_still_checks_weights(tmp_path):
    result = convert(fixture("preln"), tmp_path / "out", verify=False)
    assert result.weights_equal and result.outputs is None and result.skipped


def test_dict_in_another_order_gets_fairseqs_ids(cli, tmp_path):
    """A dict.txt not in sentencepiece order (a pretraining's own dictionary) converts: the tokenizer is laid out in
    fairseq's id order, and the output check (fairseq with this very dictionary) agrees."""
    src = tmp_path / "src"
    from conftest import copy_fixture
    from transformers import AutoTokenizer

    copy_fixture("preln", src)
    lines = (src / "dict.txt").read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    (src / "dict.txt").write_text("\n".join(lines) + "\n")
    r = cli("convert", src, tmp_path / "out")
    assert r.exit_code == 0, r.output
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    assert tok.convert_tokens_to_ids(lines[5].split()[0]) == 4 + 5 and tok.mask_token_id == 248


def test_dict_rows_must_match_embedding(cli, tmp_path):
    from conftest import copy_fixture

    src = copy_fixture("preln", tmp_path / "src")
    with open(src / "dict.txt", "a") as f:
        f.write("madeupword9999 0\n")
    r = cli("convert", src, tmp_path / "out")
    assert r.exit_code == 2 and "embedding has 249 rows" in r.stderr


def test_not_enough_disk_space(cli, tmp_path, monkeypatch):
    import shutil as real_shutil
    from collections import namedtuple

    from xlmr_tools.io import atomic_folder as output_folder

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(output_folder.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    r = cli("convert", fixture("preln"), tmp_path / "out")
    monkeypatch.setattr(output_folder.shutil, "disk_usage", real_shutil.disk_usage)
    assert r.exit_code == 2 and "not enough free disk space" in r.stderr and "1,000 available" in r.stderr
    assert not (tmp_path / "out").exists()


def test_auto_class_check_catches_the_old_scripts_config(converted, tmp_path):
    """convert's own guard: what AutoModel* would build from the written folder (the load view, meta device)."""
    import shutil as sh

    from safetensors.torch import load_file, save_file

    from xlmr_tools.compare.auto_class import check_auto_class
    from xlmr_tools.errors import BadInput, VerificationFailed
    from xlmr_tools.sources.hf import open_folder

    def variant(name: str, config: dict | None = None, edit=None):
        folder = tmp_path / name
        sh.copytree(converted["preln"], folder)
        if config:
            cfg = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps(cfg | config))
        if edit is not None:
            tensors = load_file(folder / "model.safetensors")
            edit(tensors)
            save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
        return folder

    assert check_auto_class(open_folder(converted["preln"]), None, "XLMRobertaXLForMaskedLM").ok
    with pytest.raises(VerificationFailed, match="would build XLMRobertaForMaskedLM"):
        check_auto_class(open_folder(variant("type", {"model_type": "xlm-roberta"})), None, "XLMRobertaXLForMaskedLM")
    with pytest.raises(VerificationFailed, match="missing"):
        check_auto_class(
            open_folder(variant("missing", edit=lambda t: t.pop("lm_head.bias"))), None, "XLMRobertaXLForMaskedLM"
        )
    wrong = variant("shape", edit=lambda t: t.update({"lm_head.dense.weight": torch.zeros(64, 32)}))
    with pytest.raises(BadInput, match=r"expects lm_head.dense.weight of shape \[64, 64\]"):  # shapes, not only names
        check_auto_class(open_folder(wrong), None, "XLMRobertaXLForMaskedLM")
