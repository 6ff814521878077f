"""Run fairseq and an HF folder side by side on a padded multilingual batch; compare tokenizers and every stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.compare import oracle as fairseq_oracle

from xlmr_tools.mapping import tokenizer as tokenizer_assets
from xlmr_tools.compare.activations import fairseq_stages, head_stage, hf_stages
from xlmr_tools.compare.stages import OutputReport, StageAccumulator, default_tol, micro_batches
from xlmr_tools.errors import BadInput, VerificationFailed
from xlmr_tools.sources.fairseq import FairseqCheckpoint
from xlmr_tools.sources.hf import HFFolder


@dataclass
class TokenizerCheck:
    texts: int
    equal: bool
    mask_id: int
    fillers: int
    first_mismatch: str | None = None  # the first differing text, quoted, with both id sequences there
    mismatches: int = 0  # texts whose ids differ

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def load_hf_model(folder: Path, head: str | None, dtype: torch.dtype, device: str = "cpu"):
    """AutoModel* as a user would load it, offline; missing/unexpected/mismatched keys are a failure."""
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    auto = AutoModelForMaskedLM if head is None else AutoModelForSequenceClassification
    model, info = auto.from_pretrained(str(folder), dtype=dtype, local_files_only=True, output_loading_info=True)
    problems = {k: sorted(v)[:5] for k, v in info.items()
                if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        raise VerificationFailed(folder, f"transformers reports {problems} when loading this folder "
                                         f"as {type(model).__name__}")
    return model.to(device).eval()


def check_tokenizer(oracle: fairseq_oracle.FairseqOracle, folder: Path, texts: list[str]) -> TokenizerCheck:
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    mismatch = None
    count = 0
    for i, text in enumerate(texts):
        ids = oracle.encode(text).tolist()
        hf_ids = hf_tok(text, truncation=True, max_length=oracle.max_positions)["input_ids"]
        if hf_ids != ids:
            count += 1
            if mismatch is None:
                at = next((j for j, (x, y) in enumerate(zip(ids, hf_ids)) if x != y), min(len(ids), len(hf_ids)))
                shown = text if len(text) <= 60 else text[:57] + "..."
                mismatch = (f"text {i} {shown!r}, token {at}: fairseq {ids[at:at + 4]} vs HF {hf_ids[at:at + 4]}")
    if count > 1:
        mismatch = f"{count} of {len(texts)} texts differ; first: {mismatch}"
    if mismatch is None and hf_tok.mask_token_id != oracle.mask_id:
        mismatch = f"<mask> is {hf_tok.mask_token_id} in HF, {oracle.mask_id} in fairseq"
    fillers = sum(1 for symbol in oracle.dictionary.symbols if tokenizer_assets.FILLER.match(symbol))
    return TokenizerCheck(len(texts), mismatch is None, oracle.mask_id, fillers, mismatch, count)


def check_auto_class(folder: Path, head: str | None, expected_class: str,
                     weights: dict[str, tuple[int, ...]]) -> None:
    """What `AutoModel*.from_pretrained(folder)` would build — class, expected keys and their shapes — checked on
    the meta device, so it costs nothing even for XXL: the class the config selects, no missing/unexpected keys,
    no shape transformers would refuse (a refusal of what cannot be represented: BadInput, exit 2)."""
    from transformers import (
        AutoConfig,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    auto = AutoModelForMaskedLM if head is None else AutoModelForSequenceClassification
    with torch.device("meta"):
        model = auto.from_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))
    if type(model).__name__ != expected_class:
        raise VerificationFailed(folder, f"AutoModel* would build {type(model).__name__}, not {expected_class}")
    tied = set(getattr(model, "_tied_weights_keys", None) or {}) if model.config.tie_word_embeddings else set()
    state = model.state_dict()
    expected = set(state) - tied
    weight_names = set(weights)
    missing, unexpected = sorted(expected - weight_names), sorted(weight_names - expected)
    if missing or unexpected:
        raise VerificationFailed(folder, f"transformers would report missing {missing[:3]} / unexpected "
                                         f"{unexpected[:3]} keys for {expected_class}")
    for name in sorted(weight_names):
        if tuple(state[name].shape) != tuple(weights[name]):
            raise BadInput(folder, f"cannot be represented in transformers: {expected_class} expects {name} of "
                                   f"shape {list(state[name].shape)}, the checkpoint gives {list(weights[name])}")


def compare_outputs_streamed(ckpt: FairseqCheckpoint, folder: HFFolder, head: str | None, dtype: torch.dtype,
                             texts: list[str], tol: float | None, device: str = "cpu",
                             on_stage: Callable[[str], None] = lambda s: None
                             ) -> tuple[TokenizerCheck | None, OutputReport]:
    """fairseq vs an HF folder, one module at a time (memory does not grow with the model). The tokenizer is
    compared when the folder has one (None otherwise)."""
    from xlmr_tools.compare.layerwise import FairseqRunner, HFRunner, compare_streamed

    oracle = fairseq_oracle.FairseqOracle(ckpt, dtype, materialize=False)
    tok_check = None
    if folder.tokenizer_assets():
        on_stage("tokenizer")
        tok_check = check_tokenizer(oracle, folder.path, texts)
    ids = [oracle.encode(t) for t in texts]
    tolerance = tol if tol is not None else default_tol(dtype, device)
    report = compare_streamed(FairseqRunner(oracle, dtype, device, head), HFRunner(folder, dtype, device, head),
                              ids, oracle.dictionary.pad(), tolerance, dtype, on_stage=on_stage)
    return tok_check, report


def compare_outputs(ckpt: FairseqCheckpoint, folder: Path, head: str | None, dtype: torch.dtype,
                    texts: list[str], tol: float | None, device: str = "cpu",
                    oracle: fairseq_oracle.FairseqOracle | None = None) -> tuple[TokenizerCheck, OutputReport]:
    """The plain way, kept as the reference the streamed check is tested against: fairseq's full model forward vs
    the folder loaded by AutoModel*.from_pretrained (both whole in memory), every stage, pads excluded."""
    oracle = oracle or fairseq_oracle.FairseqOracle(ckpt, dtype)
    tok_check = check_tokenizer(oracle, folder, texts)
    hf_model = load_hf_model(folder, head, dtype, device)
    fs_model = oracle.model.to(device)
    ids = [oracle.encode(t) for t in texts]
    lengths = [len(t) for t in ids]
    pad = oracle.dictionary.pad()
    tolerance = tol if tol is not None else default_tol(dtype, device)
    acc: dict[str, StageAccumulator] = {}
    for batch_idx in micro_batches(lengths):
        batch = torch.nn.utils.rnn.pad_sequence([ids[i] for i in batch_idx], batch_first=True,
                                                padding_value=pad).to(device)
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
        del a, b
    report = OutputReport([s.row() for s in acc.values()], str(dtype).removeprefix("torch."), len(texts),
                          sum(lengths))
    return tok_check, report
