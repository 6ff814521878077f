"""`diff`: any two checkpoints/folders (fairseq or HF, any mix), tensor by tensor through the weight map, and
optionally per-layer activations on sample texts (HF vs HF needs no fairseq)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.compare import oracle as fairseq_oracle
from xlmr_tools.compare.layerwise import FairseqRunner, HFRunner, Runner, check_device, compare_streamed
from xlmr_tools.compare.stages import OutputReport, default_tol
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.compare.weights import WeightReport, compare_weights
from xlmr_tools.errors import BadInput
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.mapping import weights as weight_map
from xlmr_tools.model import DTYPES, torch_dtype
from xlmr_tools.progress import NoProgress, Progress
from xlmr_tools.sources import hub, open_source
from xlmr_tools.sources.fairseq import FairseqCheckpoint
from xlmr_tools.sources.hf import HFFolder, load_tokenizer


@dataclass
class Side:
    """One side of a diff: its source, and its tensors under the names both sides are compared by."""

    source: FairseqCheckpoint | HFFolder
    tensors: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict)  # comparison name -> lazy tensor
    head: str | None = None  # the fairseq head compared with an HF classifier

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

    @property
    def ok(self) -> bool:
        return self.weights.ok and (self.outputs is None or self.outputs.ok)

    def failures(self) -> list[str]:
        w = self.weights
        out = [f"{d.name}: max|Δ| {d.max_abs:.3g} > tol {w.tol:g}" for d in w.diffs if not d.ok]
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
            "weights": self.weights.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs else None,
            "failures": self.failures(),
        }


def _name_sides(a: Side, b: Side, head: str | None) -> None:
    """Give both sides comparable names: fairseq's if both are fairseq, else the HF names, the fairseq side going
    through the weight map (synthesized tensors included)."""
    both_fairseq = isinstance(a.source, FairseqCheckpoint) and isinstance(b.source, FairseqCheckpoint)
    for side in (a, b):
        src = side.source
        if isinstance(src, HFFolder):
            side.tensors = {n: functools.partial(src.tensor, n) for n in src.names() if not weight_map.hf_is_buffer(n)}
        elif both_fairseq:
            side.tensors = {
                n: functools.partial(src.tensor, n) for n in src.names() if not weight_map.is_bookkeeping(n)
            }
        else:
            other = b if side is a else a
            h = head
            if h is None and not other.description.lm_head and other.description.classification_heads:
                heads = src.description.classification_heads
                if len(heads) != 1:
                    raise BadInput(src.path, "the HF side holds a classifier: name the checkpoint's head with --head")
                h = next(iter(heads))
            plan = weight_map.plan(src.names(), src.description, h, str(src.path), src.dropped)
            dtype = src.dtype(weight_map.FAIRSEQ_NAMES["token_embeddings"])
            side.tensors = {m.hf: functools.partial(m.take, src.tensor, src.description, dtype) for m in plan.mapped}
            side.head = h


def diff(
    a: str | Path,
    b: str | Path,
    *,
    head: str | None = None,
    tol: float = 0.0,
    outputs: bool = False,
    texts: list[str] | None = None,
    output_tol: float | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust: bool = False,
    revision: str | None = None,
    progress: Progress | None = None,
) -> DiffReport:
    """`a`, `b`: fairseq checkpoints or HF folders, or Hugging Face repo ids (`revision` applies to those)."""
    progress = progress or NoProgress()
    if revision is not None and not (hub.is_repo_id(a) or hub.is_repo_id(b)):
        raise BadInput(None, "--revision applies to a Hugging Face repo id, and neither side is one")
    sa, sb = (Side(open_source(hub.local(s, revision if hub.is_repo_id(s) else None), trust=trust)) for s in (a, b))
    if sa.description.family != sb.description.family:
        raise BadInput(
            sb.path,
            f"families do not match: {sa.path} is {sa.description.family}, {sb.path} is {sb.description.family}",
        )
    _name_sides(sa, sb, head)
    shapes_b = {n: sb.shape(n) for n in sb.tensors}
    progress.start("comparing tensors", len(sa.tensors))
    report = compare_weights(
        [(n, n) for n in sa.tensors],
        sa.tensor,
        sb.tensor,
        shapes_b,
        weight_map.group_of,
        tol,
        on_tensor=lambda: progress.advance(1),
    )
    report.extra = sorted(set(sb.tensors) - set(sa.tensors))
    result = DiffReport(str(sa.path), str(sb.path), report)
    if outputs and not (report.missing or report.misshaped):  # outputs need every tensor on both sides
        if dtype == "auto":  # the models' own dtype when they agree; else the precision both can be run in
            same = sa.description.dtype == sb.description.dtype and sa.description.dtype in DTYPES
            dtype = sa.description.dtype if same else "float32"
        run_dtype = torch_dtype(dtype)
        check_device(device, run_dtype)
        result.outputs = _outputs(
            sa,
            sb,
            head,
            texts or list(DEFAULT_TEXTS),
            run_dtype,
            device,
            output_tol if output_tol is not None else max(tol, default_tol(run_dtype, device)),
            progress,
        )
    return result


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
            if not fairseq_oracle.available():
                raise BadInput(src.path, "--outputs on a fairseq checkpoint needs fairseq importable")
            oracle = fairseq_oracle.FairseqOracle(src, dtype, materialize=False)
            runners.append(FairseqRunner(oracle, dtype, device, side.head or head))
            encode, pad = encode or oracle.encode, oracle.dictionary.pad()
        else:
            h = head if head is not None else (None if src.description.lm_head else "classifier")
            runners.append(HFRunner(src, dtype, device, h))
    if encode is None:
        folders = [s.source for s in (sa, sb) if isinstance(s.source, HFFolder)]
        encode, pad = _hf_encoder(next((f for f in folders if f.tokenizer_assets()), folders[0]))
    ids = [encode(t) for t in texts]
    with ReadAhead() as ahead:
        return compare_streamed(
            runners[0], runners[1], ids, pad, tol, dtype,
            on_stage=lambda s: progress.stage(f"outputs: {s}"), ahead=ahead,
        )  # fmt: skip


def _hf_encoder(folder: HFFolder):
    if not folder.tokenizer_assets():
        raise BadInput(
            folder.path, "--outputs needs a tokenizer in one of the folders (tokenizer.json or sentencepiece.bpe.model)"
        )
    tok = load_tokenizer(folder.path)
    limit = folder.description.max_positions
    return (lambda t: torch.tensor(tok(t, truncation=True, max_length=limit)["input_ids"])), tok.pad_token_id
