"""`diff`: any two checkpoints/folders (fairseq or HF, any mix), tensor by tensor through the weight map, and
optionally per-layer activations on sample texts (HF vs HF needs no fairseq)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from xlmr_tools import families
from xlmr_tools.compare import oracle
from xlmr_tools.compare.fairseq_runner import FairseqRunner
from xlmr_tools.compare.hf_runner import HFRunner
from xlmr_tools.compare.runner import Runner, check_device
from xlmr_tools.compare.stages import OutputReport, check_tol, default_tol, streamed_stages
from xlmr_tools.compare.streamed import compare_streamed
from xlmr_tools.compare.texts import DEFAULT_TEXTS, dictionary_texts
from xlmr_tools.compare.tokenizer import VocabularyRow, compare_tokenizers, expected_tokenizer
from xlmr_tools.compare.weights import WeightReport, compare_weights, tensor_diff
from xlmr_tools.errors import BadInput
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.mapping import weights
from xlmr_tools.mapping.config import (
    CLASS_SUFFIX,
    compared_head,
    compared_keys,
    folder_head,
    model_class_name,
    same_value,
)
from xlmr_tools.model import dtype_name, run_dtype
from xlmr_tools.progress import NoProgress, Progress
from xlmr_tools.settings import HubAccess, Settings
from xlmr_tools.sources import hub, open_source
from xlmr_tools.sources.fairseq import FairseqCheckpoint
from xlmr_tools.sources.hf import HFFolder, load_tokenizer
from xlmr_tools.sources.loaded import LoadedModel, load_view, task_of


@dataclass
class Side:
    """One side of a diff: its source, and its tensors under the names both sides are compared by."""

    source: FairseqCheckpoint | HFFolder
    tensors: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict)  # comparison name -> lazy tensor
    head: str | None = None  # the fairseq head compared with an HF classifier
    loaded: LoadedModel | None = None  # an HF folder as AutoModel* loads it

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def description(self):
        return self.source.description

    def tensor(self, name: str) -> torch.Tensor:
        return self.tensors[name]()

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensor(name).shape)


@dataclass
class DiffReport:
    a: str
    b: str
    weights: WeightReport
    outputs: OutputReport | None = None
    config: list[ConfigDiff] = field(default_factory=list)  # what each side loads as: class, load-relevant config
    tokenizer: list[VocabularyRow] = field(default_factory=list)  # B's tokenizer against A's, whole
    cast: str | None = None  # when every weight difference is one side rounded to the other's dtype: which

    @property
    def ok(self) -> bool:
        return (
            self.weights.ok
            and (self.outputs is None or self.outputs.ok)
            and all(r.ok for r in self.config)
            and all(r.ok for r in self.tokenizer)
        )

    def failures(self) -> list[str]:
        w = self.weights
        out = [f"config {r.item}: {r.note or f'{r.a!r} vs {r.b!r}'}" for r in self.config if not r.ok]
        out += [f"tokenizer {r.item}: {r.note}" for r in self.tokenizer if not r.ok]
        out += [f"{d.name}: max|Δ| {d.max_abs:.3g} > tol {w.tol:g}" for d in w.diffs if not d.ok]
        out += [f"only in {self.a}: {n}" for n in w.missing] + [f"only in {self.b}: {n}" for n in w.extra]
        out += [f"{m['name']}: shape {m['a']} vs {m['b']}" for m in w.misshaped]
        r = self.outputs.worst if self.outputs is not None else None
        if r is not None:
            out.append(f"activations at {r.stage}: max|Δ| {r.max_abs:.3g} > tol {r.tol:g}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "a": self.a,
            "b": self.b,
            "config": [r.to_dict() for r in self.config],
            "tokenizer": [r.to_dict() for r in self.tokenizer],
            "weights": self.weights.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs else None,
            "only_a_cast": self.cast,
            "failures": self.failures(),
        }


def _name_sides(a: Side, b: Side, head: str | None) -> None:
    """Give both sides comparable names: fairseq's if both are fairseq, else the HF names, the fairseq side going
    through the weight map (synthesized tensors included)."""
    both_fairseq = isinstance(a.source, FairseqCheckpoint) and isinstance(b.source, FairseqCheckpoint)
    for side in (a, b):
        src = side.source
        if isinstance(src, HFFolder) and side.loaded is not None:  # the folder's tensors as transformers loads them
            view = side.loaded
            side.tensors = {
                n: functools.partial(_as_loaded, src, key, view.dtype)
                for n, key in view.stored.items()
                if not weights.hf_is_buffer(n)
            }
            side.tensors.update(  # what transformers has no place for (ignored on load), by its stored name
                {
                    key: functools.partial(src.stored_tensor, key)
                    for key in view.unexpected
                    if not weights.hf_is_buffer(key)
                }
            )
        elif isinstance(src, HFFolder):
            side.tensors = {n: functools.partial(src.tensor, n) for n in src.names() if not weights.hf_is_buffer(n)}
        elif both_fairseq:
            side.tensors = {n: functools.partial(src.tensor, n) for n in src.names() if not weights.is_bookkeeping(n)}
        else:
            other = b if side is a else a
            h = compared_head(src.description, other.description, head, src.path, other.path)
            plan = weights.plan(src.names(), src.description, h, str(src.path), src.dropped)
            dtype = src.dtype(weights.FAIRSEQ_NAMES["token_embeddings"])
            side.tensors = {m.hf: functools.partial(m.take, src.tensor, src.description, dtype) for m in plan.mapped}
            side.head = h


def _as_loaded(folder: HFFolder, stored: str, dtype: torch.dtype) -> torch.Tensor:
    """A folder's tensor as from_pretrained gives it: in the dtype it loads the folder in (sources.loaded: config.json's
    dtype where it names one, which may not be the files' — `"dtype": "bfloat16"` over float32 files loads a bfloat16
    model, so two folders with the same files but another dtype there load different models)."""
    tensor = folder.stored_tensor(stored)
    return tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor


def diff(
    a: str | Path,
    b: str | Path,
    settings: Settings = Settings(),
    hub_access: HubAccess = HubAccess(),
    *,
    outputs: bool = False,
    output_tol: float | None = None,
    progress: Progress | None = None,
) -> DiffReport:
    """`a`, `b`: fairseq checkpoints or HF folders, or Hugging Face repo ids (fetched as `hub_access` says; its
    revision applies to those), compared as `settings` say: every tensor within `settings.tol` (None: 0, identical),
    and with `outputs` every stage within `output_tol` (None: the larger of that and the dtype's tolerance)."""
    progress = progress or NoProgress()
    tol = settings.tol if settings.tol is not None else 0.0
    head = settings.head
    check_tol(tol)
    check_tol(output_tol, "--output-tol")
    if hub_access.revision is not None and not (hub.is_repo_id(a) or hub.is_repo_id(b)):
        raise BadInput(None, "--revision applies to a Hugging Face repo id, and neither side is one")
    sa, sb = (
        Side(
            open_source(
                hub.local(s, hub_access if hub.is_repo_id(s) else replace(hub_access, revision=None)),
                trust=settings.trust,
                ema=settings.ema,
            )
        )
        for s in (a, b)
    )
    if settings.ema and not any(isinstance(side.source, FairseqCheckpoint) for side in (sa, sb)):
        raise BadInput(None, "--ema selects a fairseq checkpoint's EMA weights, and neither side is one")
    if sa.description.family != sb.description.family:
        raise BadInput(
            sb.path,
            f"families do not match: {sa.path} is {sa.description.family}, {sb.path} is {sb.description.family}",
        )
    for side in (sa, sb):
        if isinstance(side.source, HFFolder):
            side.loaded = _load_view(side.source, head)
    _name_sides(sa, sb, head)
    shapes_b = {n: sb.shape(n) for n in sb.tensors}
    progress.start("comparing tensors", len(sa.tensors))
    report = compare_weights(
        [(n, n) for n in sa.tensors],
        sa.tensor,
        sb.tensor,
        shapes_b,
        weights.group_of,
        tol,
        on_tensor=lambda: progress.advance(1),
    )
    report.extra = sorted(set(sb.tensors) - set(sa.tensors))
    report.diffs.sort(key=lambda d: weights.group_order(d.group))  # model order: embeddings, layer 0, 1, …
    result = DiffReport(str(sa.path), str(sb.path), report, cast=_only_a_cast(sa, sb, report))
    result.config = _config_rows(sa, sb)
    texts = settings.texts or list(DEFAULT_TEXTS)
    result.tokenizer = _tokenizer_rows(sa, sb, texts)
    if outputs and not (report.missing or report.misshaped):  # outputs need every tensor on both sides
        own = tuple(s.loaded.dtype if s.loaded is not None else getattr(torch, s.description.dtype) for s in (sa, sb))
        dtype = run_dtype(settings.dtype, *own)
        device = settings.device
        check_device(device, dtype)
        result.outputs = _outputs(
            sa,
            sb,
            head,
            texts,
            dtype,
            device,
            output_tol if output_tol is not None else max(tol, default_tol(dtype, device)),
            progress,
        )
    return result


def _only_a_cast(sa: Side, sb: Side, report: WeightReport) -> str | None:
    """When the tensors differ only because one side is the other rounded to a narrower dtype (an fp32 checkpoint
    against its bf16 folder), say so: each differing tensor is compared again after that cast and must be equal."""
    bad = [d for d in report.diffs if not d.ok]
    if not bad or report.missing or report.extra or report.misshaped:
        return None
    narrower = set()
    for d in bad:
        a, b = sa.tensor(d.name), sb.tensor(d.name)
        if a.dtype.itemsize == b.dtype.itemsize:
            return None
        wide, narrow = (a, b) if a.dtype.itemsize > b.dtype.itemsize else (b, a)
        if tensor_diff(d.name, d.group, wide, narrow, 0.0, cast_to_b=True).max_abs != 0:
            return None
        narrower.add(("B" if narrow is b else "A", dtype_name(narrow.dtype)))
    if len(narrower) != 1:
        return None
    side, dtype = narrower.pop()
    return f"{side} is {'A' if side == 'B' else 'B'} cast to {dtype}: every difference is that rounding"


def _outputs(
    sa: Side,
    sb: Side,
    head: str | None,
    texts: list[str],
    dtype: torch.dtype,
    device: str,
    tol: float,
    progress: Progress,
) -> OutputReport:
    runners: list[Runner] = []
    encode = None
    pad = 1
    for side in (sa, sb):
        src = side.source
        if isinstance(src, FairseqCheckpoint):
            if not oracle.available():
                raise BadInput(src.path, "--outputs on a fairseq checkpoint needs fairseq importable")
            reference = oracle.FairseqOracle(src, dtype, materialize=False)
            runners.append(FairseqRunner(reference, dtype, device, side.head or head))
            encode, pad = encode or reference.encode, reference.dictionary.pad()
        else:
            runners.append(HFRunner(src, dtype, device, folder_head(src.description, head), side.loaded))
    if encode is None:
        folders = [s.source for s in (sa, sb) if isinstance(s.source, HFFolder)]
        encode, pad = _hf_encoder(next((f for f in folders if f.tokenizer_file_names()), folders[0]))
    limit = min(s.description.max_positions for s in (sa, sb))  # the longest input both take (the longest input row)
    ids = [i if len(i) <= limit else torch.cat([i[: limit - 1], i[-1:]]) for i in (encode(t) for t in texts)]
    progress.start("outputs, one layer at a time", streamed_stages(sa.description, tokenizer=False))
    with ReadAhead() as ahead:
        return compare_streamed(
            runners[0], runners[1], ids, pad, tol, dtype, on_stage=progress.step, ahead=ahead,
        )  # fmt: skip


def _hf_encoder(folder: HFFolder):
    if not folder.tokenizer_file_names():
        raise BadInput(
            folder.path, "--outputs needs a tokenizer in one of the folders (tokenizer.json or sentencepiece.bpe.model)"
        )
    tok = load_tokenizer(folder.path)
    limit = folder.description.max_positions
    return (lambda t: torch.tensor(tok(t, truncation=True, max_length=limit)["input_ids"])), tok.pad_token_id


@dataclass
class ConfigDiff:
    item: str
    a: Any
    b: Any
    ok: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_view(folder: HFFolder, head: str | None) -> LoadedModel:
    """What AutoModel* loads from an HF side (its head: mapping.config.folder_head)."""
    task = task_of(folder_head(folder.description, head))
    return load_view(folder, task)


def _side_config(side: Side) -> tuple[str, Any, list[str]]:
    """(the class a user gets, the config it runs with, why it is not the folder's model). A fairseq side: what
    convert writes for it."""
    src = side.source
    if isinstance(src, HFFolder):
        view = side.loaded
        if view is None:
            raise ValueError("an HF side without its load view")
        return view.model_class, view.config, view.failures()
    d = src.description
    try:
        config = families.build_config(d, src.args, side.head, getattr(torch, d.dtype), str(src.path))
    except BadInput as e:
        return "none", None, [e.problem]
    return model_class_name(d, side.head), config, []


def _config_rows(sa: Side, sb: Side) -> list[ConfigDiff]:
    """What each side loads as, as rows: the class, whether every tensor loads, each load-relevant config entry.
    Two fairseq checkpoints: their descriptions (sizes, layout, activation, vocabulary, what cannot be
    represented), whether transformers can represent them or not."""
    if isinstance(sa.source, FairseqCheckpoint) and isinstance(sb.source, FairseqCheckpoint):
        da, db = sa.description.to_dict(), sb.description.to_dict()
        keys = [k for k in da if k not in ("dtype", "parameters", "release", "classification_heads", "lm_head")]
        return [ConfigDiff(k, da[k], db.get(k), da[k] == db.get(k)) for k in keys]
    (ca, fa, pa), (cb, fb, pb) = _side_config(sa), _side_config(sb)
    rows = [ConfigDiff("class", ca, cb, ca == cb)]
    la, lb = sa.description.max_positions, sb.description.max_positions
    if la != lb:  # transformers numbers positions from the pad id on: a larger one runs off the table sooner
        note = f"the longest input is {la} tokens in A, {lb} in B (position rows less the pad id and one)"
        rows.append(ConfigDiff("longest input", la, lb, False, note + ": a longer one fails (index out of bounds)"))
    for side, problems in ((sa, pa), (sb, pb)):
        if problems:
            rows.append(ConfigDiff(f"loads ({side.path})", "", "", False, problems[0]))
    if fa is None or fb is None:
        return rows
    for key in compared_keys(fa, fb):
        va, vb = getattr(fa, key, None), getattr(fb, key, None)
        rows.append(ConfigDiff(key, va, vb, same_value(va, vb)))
    classifiers = all(c.endswith(CLASS_SUFFIX["classifier"]) for c in (ca, cb))
    if classifiers and all(isinstance(s.source, HFFolder) for s in (sa, sb)):  # (a checkpoint's names: LABEL_i)
        la, lb = getattr(fa, "id2label", None), getattr(fb, "id2label", None)  # what the pipeline answers
        rows.append(ConfigDiff("id2label", la, lb, la == lb))
    return rows


def _tokenizer_rows(sa: Side, sb: Side, texts: list[str]) -> list[VocabularyRow]:
    """B's tokenizer against A's, whole (compare.tokenizer): a fairseq side's is the one convert writes for it."""
    with contextlib.ExitStack() as stack:
        toks, probes = [], list(texts)
        for side in (sa, sb):
            src = side.source
            if isinstance(src, HFFolder):
                toks.append(load_tokenizer(src.path) if src.tokenizer_file_names() else None)
                continue
            try:
                al = src.alignment()
            except BadInput:
                toks.append(None)
                continue
            probes += dictionary_texts(al)
            toks.append(stack.enter_context(expected_tokenizer(al, src.description.max_positions)))
        if toks[0] is None and toks[1] is None:
            return []
        if toks[0] is None or toks[1] is None:
            only = sa.path if toks[0] is not None else sb.path
            return [VocabularyRow("tokenizer", False, f"only {only} has a tokenizer")]
        return compare_tokenizers(toks[1], toks[0], lambda: probes)
