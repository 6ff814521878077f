"""`diff`: any two checkpoints/folders (fairseq or HF, any mix), tensor by tensor through the weight map, and
optionally per-layer activations on sample texts (HF vs HF needs no fairseq)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.compare import oracle as fairseq_oracle

from xlmr_tools.mapping import weights as weight_map
from xlmr_tools.compare.stages import DTYPES, OutputReport, default_tol
from xlmr_tools.errors import BadInput
from xlmr_tools.sources.fairseq import FairseqCheckpoint, open_checkpoint
from xlmr_tools.sources.hf import HFFolder, is_hf_folder, open_folder
from xlmr_tools.progress import NoProgress, Progress
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.io.digest import find_checkpoint_file
from xlmr_tools.compare.layerwise import FairseqRunner, HFRunner, Runner, compare_streamed
from xlmr_tools.ops.verify import IGNORABLE_SUFFIXES, check_device
from xlmr_tools.compare.weights import WeightReport, compare_weights


@dataclass
class Side:
    path: Path
    kind: str  # "fairseq" or "hf"
    ckpt: FairseqCheckpoint | None = None
    folder: HFFolder | None = None
    names: dict[str, str] = field(default_factory=dict)  # comparison name -> name in the source

    @property
    def description(self):
        return (self.ckpt or self.folder).description

    def tensor(self, name: str) -> torch.Tensor:
        src = self.names[name]
        if src == SYNTHESIZED:  # what convert writes for it: RoBERTa's one all-zero token-type row
            emb = self.ckpt.tensors[weight_map.FS + "embed_tokens.weight"]
            return torch.zeros(1, emb.shape[1], dtype=emb.dtype)
        return self.ckpt.tensors[src] if self.ckpt else self.folder.tensor(src)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensor(name).shape) if self.ckpt else tuple(self.folder.shapes[self.names[name]][0])


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
        if self.outputs is not None and not self.outputs.ok:
            r = self.outputs.worst
            out.append(f"activations at {r.stage}: max|Δ| {r.max_abs:.3g} > tol {r.tol:g}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "a": self.a, "b": self.b, "weights": self.weights.to_dict(),
                "outputs": self.outputs.to_dict() if self.outputs else None, "failures": self.failures()}


def open_side(path: str | Path, trust: bool) -> Side:
    path = Path(path)
    if is_hf_folder(path):
        return Side(path, "hf", folder=open_folder(path, trust=trust))
    find_checkpoint_file(path)  # a clear error for a missing path or an empty folder
    return Side(path, "fairseq", ckpt=open_checkpoint(path, trust=trust))


def _name_sides(a: Side, b: Side, head: str | None) -> None:
    """Give both sides comparable names: fairseq names if both are fairseq, else HF names (roberta.-prefixed)."""
    for side in (a, b):
        if side.kind == "hf":
            names = side.folder.names()
            prefix = "" if any(n.startswith("roberta.") for n in names) else "roberta."
            side.names = {(prefix + n if prefix and not n.startswith(("lm_head.", "classifier.")) else n): n
                          for n in names if not n.endswith(IGNORABLE_SUFFIXES)}
        elif a.kind == b.kind == "fairseq":
            side.names = {n: n for n in side.ckpt.tensors if not n.endswith("version")}
        else:
            other = b if side is a else a
            h = head
            if h is None and not other.description.lm_head and other.description.classification_heads:
                heads = side.description.classification_heads
                if len(heads) != 1:
                    raise BadInput(side.path, "the HF side holds a classifier: name the checkpoint's head with --head")
                h = next(iter(heads))
            plan = weight_map.plan(list(side.ckpt.tensors), side.description, h, str(side.ckpt.path))
            side.names = {m.hf: m.fairseq for m in plan.mapped}
            side.names.update({n: SYNTHESIZED for n in weight_map.SYNTHESIZED})
            side.head = h  # type: ignore[attr-defined]


SYNTHESIZED = "<synthesized zeros>"
FAIRSEQ_GROUPS = [(re.compile(r"layers\.(\d+)\."), "layer {0}"), (re.compile(r"embed_|layernorm_embedding"), "embeddings"),
                  (re.compile(r"sentence_encoder\.layer_norm\."), "final norm"), (re.compile(r"lm_head\."), "lm head"),
                  (re.compile(r"classification_heads\.([^.]+)\."), "head {0}")]


def _group(name: str) -> str:
    if name.startswith(("encoder.", "classification_heads.")):
        for pattern, label in FAIRSEQ_GROUPS:
            m = pattern.search(name)
            if m:
                return label.format(*m.groups())
    return weight_map.hf_group(name)


def diff(a: str | Path, b: str | Path, *, head: str | None = None, tol: float = 0.0, outputs: bool = False,
         texts: list[str] | None = None, output_tol: float | None = None, dtype: str = "float32",
         device: str = "cpu", trust: bool = False, progress: Progress | None = None) -> DiffReport:
    progress = progress or NoProgress()
    sa, sb = open_side(a, trust), open_side(b, trust)
    if sa.description.family != sb.description.family:
        raise BadInput(sb.path, f"families do not match: {sa.path} is {sa.description.family}, "
                                f"{sb.path} is {sb.description.family}")
    _name_sides(sa, sb, head)
    shapes_b = {n: sb.shape(n) for n in sb.names}
    progress.start("comparing tensors", len(sa.names))
    report = compare_weights([(n, n) for n in sa.names], sa.tensor, sb.tensor, shapes_b, _group, tol,
                             on_tensor=lambda: progress.advance(1))
    report.extra = sorted(set(sb.names) - set(sa.names))
    result = DiffReport(str(sa.path), str(sb.path), report)
    if outputs and not (report.missing or report.misshaped):  # outputs need every tensor on both sides
        if dtype == "auto":  # the models' own dtype when they agree; else the precision both can be run in
            same = sa.description.dtype == sb.description.dtype and sa.description.dtype in DTYPES
            dtype = sa.description.dtype if same else "float32"
        if dtype not in DTYPES:
            raise BadInput(None, f"--dtype must be auto, float32, float16 or bfloat16, not {dtype!r}")
        run_dtype = DTYPES[dtype]
        check_device(device, run_dtype)
        result.outputs = _outputs(sa, sb, head, texts or list(DEFAULT_TEXTS), run_dtype, device,
                                  output_tol if output_tol is not None else max(tol, default_tol(run_dtype, device)),
                                  progress)
    return result


def _outputs(sa: Side, sb: Side, head: str | None, texts: list[str], dtype: torch.dtype, device: str, tol: float,
             progress: Progress) -> OutputReport:
    runners: list[Runner] = []
    encode = None
    pad = 1
    for side in (sa, sb):
        if side.kind == "fairseq":
            if not fairseq_oracle.available():
                raise BadInput(side.path, "--outputs on a fairseq checkpoint needs fairseq importable")
            oracle = fairseq_oracle.FairseqOracle(side.ckpt, dtype, materialize=False)
            runners.append(FairseqRunner(oracle, dtype, device, getattr(side, "head", head)))
            encode, pad = encode or oracle.encode, oracle.dictionary.pad()
        else:
            h = head if head is not None else (None if side.description.lm_head else "classifier")
            runners.append(HFRunner(side.folder, dtype, device, h))
    if encode is None:
        encode, pad = _hf_encoder(sa.folder if sa.folder.tokenizer_assets() else sb.folder)
    ids = [encode(t) for t in texts]
    return compare_streamed(runners[0], runners[1], ids, pad, tol, dtype,
                            on_stage=lambda s: progress.stage(f"outputs: {s}"))


def _hf_encoder(folder: HFFolder):
    from transformers import AutoTokenizer

    if not folder.tokenizer_assets():
        raise BadInput(folder.path, "--outputs needs a tokenizer in one of the folders (tokenizer.json or "
                                    "sentencepiece.bpe.model)")
    tok = AutoTokenizer.from_pretrained(str(folder.path), local_files_only=True)
    limit = folder.description.max_positions
    return (lambda t: torch.tensor(tok(t, truncation=True, max_length=limit)["input_ids"])), tok.pad_token_id
