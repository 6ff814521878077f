"""Test-only reference: full-model forwards of fairseq and an HF folder (both whole in memory), every stage
captured with forward hooks on each library's own modules. The streamed comparison (compare/streamed.py) is tested
against it; nothing in the package uses it.

Stages: "embeddings" (input of layer 0), "layer i" (output of each block), "final norm" (pre-LN only), and the head
output ("lm logits" or "head <name>"). All returned as batch-first tensors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from xlmr_tools.compare.oracle import FairseqOracle
from xlmr_tools.compare.stages import OutputReport, StageAccumulator, default_tol, micro_batches
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.compare.tokenizer import TokenizerCheck, check_tokenizer
from xlmr_tools.errors import VerificationFailed
from xlmr_tools.sources.fairseq import FairseqCheckpoint


@contextlib.contextmanager
def full_unpickling() -> Iterator[None]:
    """fairseq's loader calls torch.load without weights_only; a DictConfig cfg needs full unpickling (torch's
    documented switch for code that cannot pass the flag)."""
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


def fairseq_hub(folder: Path, trust: bool = False):
    """fairseq's own hub loader (`RobertaModel.from_pretrained`; `XMODModel`'s for X-MOD) on a fixture folder, in
    eval mode: GPT-2 BPE (from the folder's encoder.json and vocab.bpe) where the folder has them, else
    sentencepiece."""
    import logging

    from fairseq.models.roberta import RobertaModel
    from fairseq.models.xmod import XMODModel

    from xlmr_tools.sources.fairseq import open_checkpoint

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    ctx = full_unpickling() if trust else torch.serialization.safe_globals([argparse.Namespace])
    if (folder / "encoder.json").is_file():
        bpe = {"bpe": "gpt2", "gpt2_encoder_json": str(folder / "encoder.json"),
               "gpt2_vocab_bpe": str(folder / "vocab.bpe")}  # fmt: skip
    else:
        bpe = {"bpe": "sentencepiece", "sentencepiece_model": str(folder / "sentencepiece.bpe.model")}
    cls = XMODModel if open_checkpoint(folder, trust=trust).description.adapters else RobertaModel
    with ctx:
        model = cls.from_pretrained(str(folder), checkpoint_file="model.pt", **bpe)
    return model.eval()


# The sample texts the folder-vs-fairseq-hub checks below run (tests/test_configurations.py, test_families.py, ...).
TEXTS = list(DEFAULT_TEXTS)[:4]


def padded_batch(ids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=1)
    return batch, (batch != 1).long()


def assert_mlm_matches(hub_model, folder: Path) -> None:
    """fairseq's hub model and the folder (AutoModelForMaskedLM, AutoTokenizer): ids and logits on TEXTS."""
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    for text in TEXTS:
        assert tok(text, truncation=True, max_length=512)["input_ids"] == hub_model.encode(text)[:512].tolist()
    assert_logits_are_fairseqs(hub_model, folder, TEXTS, 512)


def assert_logits_are_fairseqs(hub_model, folder: Path, texts: list[str], length: int = 60) -> None:
    """The folder's masked-LM logits (AutoModelForMaskedLM, loaded with no missing or unexpected keys) equal fairseq's
    hub model's on `texts`, encoded by fairseq and cut to `length` tokens, every real token."""
    model, info = AutoModelForMaskedLM.from_pretrained(
        str(folder), dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert {k: v for k, v in info.items() if v} == {}, info
    ids = [hub_model.encode(t)[:length] for t in texts]
    batch, mask = padded_batch(ids)
    with torch.no_grad():
        want = hub_model.model(batch)[0]
        got = model.eval()(input_ids=batch, attention_mask=mask).logits
    for i, t in enumerate(ids):
        assert (want[i, : len(t)] - got[i, : len(t)]).abs().max().item() <= 1e-5, i


def assert_head_matches(want_logits: torch.Tensor, ids: list[torch.Tensor], folder: Path) -> None:
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(folder), dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    assert {k: v for k, v in info.items() if v} == {}, info
    batch, mask = padded_batch(ids)
    with torch.no_grad():
        got = model.eval()(input_ids=batch, attention_mask=mask).logits
    assert (want_logits - got).abs().max().item() <= 1e-5


def head_logits(hub_model, head: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    ids = [hub_model.encode(t)[:512] for t in TEXTS]
    batch, _ = padded_batch(ids)
    with torch.no_grad():
        return hub_model.model(batch, features_only=True, classification_head_name=head)[0], ids


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _capture(
    model: nn.Module, points: list[tuple[str, nn.Module, str]], run: Callable[[], torch.Tensor], time_major: bool
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    handles = []
    for stage, module, kind in points:

        def hook(mod, args, result=None, stage=stage, kind=kind):
            x = _first(args) if kind == "input" else _first(result)
            out[stage] = (x.transpose(0, 1) if time_major else x).detach()

        handles.append(
            module.register_forward_pre_hook(hook) if kind == "input" else module.register_forward_hook(hook)
        )
    try:
        with torch.no_grad():
            final = run()
    finally:
        for h in handles:
            h.remove()
    return {**out, "_final": final}


def fairseq_stages(model: nn.Module, tokens: torch.Tensor, head: str | None) -> dict[str, torch.Tensor]:
    enc = model.encoder.sentence_encoder
    points = [("embeddings", enc.layers[0], "input")]
    points += [(f"layer {i}", layer, "output") for i, layer in enumerate(enc.layers)]
    if enc.layer_norm is not None:
        points.append(("final norm", enc.layer_norm, "output"))

    def run() -> torch.Tensor:
        if head is None:
            return model(tokens)[0]
        return model(tokens, classification_head_name=head)[0]

    out = _capture(model, points, run, time_major=True)
    out[head_stage(head)] = out.pop("_final")
    return out


def hf_stages(model: nn.Module, tokens: torch.Tensor, pad_id: int, head: str | None) -> dict[str, torch.Tensor]:
    base = getattr(model, model.base_model_prefix)
    points = [("embeddings", base.encoder.layer[0], "input")]
    points += [(f"layer {i}", layer, "output") for i, layer in enumerate(base.encoder.layer)]
    final = getattr(base.encoder, "LayerNorm", None) or getattr(base, "LayerNorm", None)  # XL's, PreLayerNorm's
    if final is not None:
        points.append(("final norm", final, "output"))
    mask = (tokens != pad_id).long()
    out = _capture(model, points, lambda: model(input_ids=tokens, attention_mask=mask).logits, time_major=False)
    out[head_stage(head)] = out.pop("_final")
    return out


def head_stage(head: str | None) -> str:
    return "lm logits" if head is None else f"head {head}"


def load_hf_model(folder: Path, head: str | None, dtype: torch.dtype, device: str = "cpu"):
    """AutoModel* as a user would load it, offline; missing/unexpected/mismatched keys are a failure."""
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    auto = AutoModelForMaskedLM if head is None else AutoModelForSequenceClassification
    model, info = auto.from_pretrained(str(folder), dtype=dtype, local_files_only=True, output_loading_info=True)
    problems = {
        k: sorted(v)[:5] for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if problems:
        raise VerificationFailed(
            folder, f"transformers reports {problems} when loading this folder as {type(model).__name__}"
        )
    return model.to(device).eval()


def compare_outputs(
    ckpt: FairseqCheckpoint,
    folder: Path,
    head: str | None,
    dtype: torch.dtype,
    texts: list[str],
    tol: float | None,
    device: str = "cpu",
    oracle: FairseqOracle | None = None,
    per_token: dict[str, dict[tuple[int, int], float]] | None = None,
) -> tuple[TokenizerCheck, OutputReport]:
    """The plain way, kept as the reference the streamed check is tested against: fairseq's full model forward vs
    the folder loaded by AutoModel*.from_pretrained (both whole in memory), every stage, pads excluded.
    `per_token`: filled with each stage's max |Δ| at every (text, token) (token -1: a per-sentence output), so a
    test can tell a tie for the maximum from a wrong location."""
    oracle = oracle or FairseqOracle(ckpt, dtype)
    tok_check = check_tokenizer(oracle, folder, texts)
    hf_model = load_hf_model(folder, head, dtype, device)
    fs_model = oracle.model.to(device)
    ids = [oracle.encode(t) for t in texts]
    lengths = [len(t) for t in ids]
    pad = oracle.dictionary.pad()
    tolerance = tol if tol is not None else default_tol(dtype, device)
    acc: dict[str, StageAccumulator] = {}
    for batch_idx in (g.texts for g in micro_batches(lengths, pack=False)):
        batch = torch.nn.utils.rnn.pad_sequence([ids[i] for i in batch_idx], batch_first=True, padding_value=pad).to(
            device
        )
        a = fairseq_stages(fs_model, batch, head)
        b = hf_stages(hf_model, batch, pad, head)
        for stage in a:
            if stage not in b:
                continue
            s = acc.setdefault(stage, StageAccumulator(stage, tolerance))
            for row, text in enumerate(batch_idx):
                x, y = a[stage][row], b[stage][row]
                if stage != head_stage(head) or head is None:
                    x, y = x[: lengths[text]], y[: lengths[text]]
                s.update(x.cpu(), y.cpu(), text)
                if per_token is not None:
                    d = (x.float() - y.float()).abs().cpu()
                    at = per_token.setdefault(stage, {})
                    if d.dim() == 2:
                        at.update({(text, t): v for t, v in enumerate(d.amax(dim=-1).tolist())})
                    else:
                        at[(text, -1)] = d.max().item()
        del a, b
    report = OutputReport([s.row() for s in acc.values()], str(dtype).removeprefix("torch."), len(texts), sum(lengths))
    return tok_check, report


# ------------------------------------------------------------------------ fixtures from real training (trained/)


def trained_corpus() -> list[str]:
    """The committed multilingual corpus the trained fixtures were trained on, a line each."""
    return [line for p in sorted(trained("corpus").glob("*.txt")) for line in p.read_text().splitlines() if line]


def trained(name: str) -> Path:
    """A folder of tests/fixtures/trained (tests/fixtures/make_trained.py): laid out as fairseq's CLI left it."""
    return Path(__file__).parent.parent / "fixtures" / "trained" / name


def trained_bpe(name: str) -> dict[str, str]:
    """fairseq's hub loader's tokenizer arguments for a trained fixture."""
    f = trained(name)
    if (f / "spm.model").is_file():
        return {"bpe": "sentencepiece", "sentencepiece_model": str(f / "spm.model")}
    if (f / "vocab.json").is_file():
        return {"bpe": "hf_byte_bpe", "bpe_vocab": str(f / "vocab.json"), "bpe_merges": str(f / "merges.txt")}
    return {"bpe": "gpt2", "gpt2_encoder_json": str(f / "gpt2_bpe" / "encoder.json"),
            "gpt2_vocab_bpe": str(f / "gpt2_bpe" / "vocab.bpe")}  # fmt: skip


def trained_hub(name: str, checkpoint: str = "checkpoints/checkpoint_best.pt"):
    """fairseq's RobertaModel.from_pretrained on a trained fixture's save dir, its data-bin named (input0/ +
    label/ for a fine-tune), in eval mode."""
    import logging

    from fairseq.models.roberta import RobertaModel

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    path = trained(name) / checkpoint
    data = str(trained(name) / "data-bin")
    ctx = full_unpickling() if checkpoint == "ema.pt" else torch.serialization.safe_globals([argparse.Namespace])
    with ctx:
        hub = RobertaModel.from_pretrained(
            str(path.parent), checkpoint_file=path.name, data_name_or_path=data, **trained_bpe(name)
        )
    return hub.eval()


def trained_fairseq_model(name: str, checkpoint: Path | str = "checkpoints/checkpoint_best.pt", **overrides):
    """fairseq's own model for a trained fixture's checkpoint, loaded by fairseq's checkpoint_utils as its training
    and validation scripts load one (no hub interface: data2vec_text has none), in eval mode, with its task and
    fairseq's GPT-2 BPE for the fixture. data2vec_text is registered first (make_trained.import_data2vec_text), and
    `Data2VecTextEncoder.target_model` exists for the load only: fairseq's upgrade_state_dict_named reads it and the
    class never sets it (tests/test_trained_fixtures.py proves the load fails without it)."""
    import logging

    from fairseq import checkpoint_utils
    from fairseq.data.encoders.gpt2_bpe import GPT2BPE, GPT2BPEConfig

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    from tests.fixtures import make_trained

    make_trained.import_data2vec_text()
    from fairseq.examples.data2vec.models.data2vec_text import Data2VecTextEncoder

    path = Path(checkpoint) if Path(checkpoint).is_absolute() else trained(name) / checkpoint
    Data2VecTextEncoder.target_model = None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
                [str(path)], arg_overrides={"data": str(trained(name) / "data-bin"), **overrides}
            )
    finally:
        del Data2VecTextEncoder.target_model
    gpt2 = trained(name) / "gpt2_bpe"
    bpe = GPT2BPE(GPT2BPEConfig(gpt2_encoder_json=str(gpt2 / "encoder.json"), gpt2_vocab_bpe=str(gpt2 / "vocab.bpe")))
    return model.eval(), task, bpe


def fairseq_encode(task, bpe, text: str) -> torch.Tensor:
    """RobertaHubInterface.encode's steps: <s> BPE </s>, looked up in the task's dictionary."""
    line = f"<s> {bpe.encode(text)} </s>"
    return task.source_dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).long()
