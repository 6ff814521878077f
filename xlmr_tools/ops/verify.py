"""`verify`: a fairseq checkpoint against any HF folder — config, weights through the map, tokenizer, and outputs
streamed layer by layer (fairseq's and transformers' own modules), each a row in one report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools import families
from xlmr_tools.compare import oracle
from xlmr_tools.compare.outputs import compare_outputs_streamed
from xlmr_tools.compare.runner import check_device
from xlmr_tools.compare.stages import OutputReport, check_tol, streamed_stages
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.compare.tokenizer import TokenizerCheck
from xlmr_tools.compare.weights import WeightReport, compare_weights, tensor_diff
from xlmr_tools.errors import BadInput
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.mapping import weights
from xlmr_tools.mapping.config import (
    check_language,
    compared_head,
    compared_keys,
    model_class_name,
    problems,
    read_labels,
    same_value,
)
from xlmr_tools.model import ENCODER, dtype_name, head_kind, run_dtype
from xlmr_tools.progress import NoProgress, Progress
from xlmr_tools.settings import Assets, HubAccess, Settings
from xlmr_tools.sources import hub
from xlmr_tools.sources.fairseq import FairseqCheckpoint, open_checkpoint
from xlmr_tools.sources.hf import HFFolder, open_folder
from xlmr_tools.sources.loaded import LoadedModel, load_view, task_of


@dataclass
class ConfigRow:
    item: str
    expected: Any
    actual: Any
    ok: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    source: str
    folder: str
    head: str | None
    config: list[ConfigRow] = field(default_factory=list)
    weights: WeightReport | None = None
    tokenizer: TokenizerCheck | None = None
    outputs: OutputReport | None = None
    skipped: list[str] = field(default_factory=list)
    load: LoadedModel | None = None  # what AutoModel* loads from the folder

    @property
    def ok(self) -> bool:
        return (
            (self.load is None or self.load.ok)
            and all(r.ok for r in self.config)
            and (self.weights is None or self.weights.ok)
            and (self.tokenizer is None or self.tokenizer.equal)
            and (self.outputs is None or self.outputs.ok)
        )

    def failures(self) -> list[str]:
        out = self.load.failures() if self.load is not None else []
        out += [
            f"config {r.item}: {r.note or f'expected {r.expected}, found {r.actual}'}" for r in self.config if not r.ok
        ]
        if self.weights and not self.weights.ok:
            bad = [g for g in self.weights.groups() if not g["ok"]]
            if bad:
                out.append(f"weights differ in {bad[0]['group']} ({bad[0]['worst']}: max|Δ| {bad[0]['max_abs']:.3g})")
            for kind in ("missing", "extra", "misshaped"):
                items = getattr(self.weights, kind)
                if items:
                    first = items[0]["name"] if isinstance(items[0], dict) else items[0]
                    out.append(f"{len(items)} {kind} tensor(s), first: {first}")
        if self.tokenizer and not self.tokenizer.equal:
            out.append(f"tokenizer: {self.tokenizer.first_mismatch}")
        w = self.outputs.worst if self.outputs is not None else None
        if w is not None:
            out.append(
                f"outputs differ at {w.stage}: max|Δ| {w.max_abs:.3g} > tol {w.tol:g} (text {w.text}, token {w.token})"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "folder": self.folder,
            "head": self.head,
            "load": self.load.to_dict() if self.load is not None else None,
            "config": [r.to_dict() for r in self.config],
            "weights": self.weights.to_dict() if self.weights else None,
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
            "outputs": self.outputs.to_dict() if self.outputs else None,
            "skipped": self.skipped,
            "complete": not self.skipped,  # every check ran (else "ok" means: partially verified)
            "failures": self.failures(),
        }


def expected_config(ckpt: FairseqCheckpoint, head: str | None) -> Any:
    """The config the checkpoint needs: the one `convert` writes for it."""
    d = ckpt.description
    return families.build_config(d, ckpt.args, head, getattr(torch, d.dtype), str(ckpt.path))


def config_rows(ckpt: FairseqCheckpoint, folder: HFFolder, loaded: LoadedModel, head: str | None) -> list[ConfigRow]:
    """The folder's config as transformers reads it (AutoConfig) against the one the checkpoint needs, every entry
    that changes what the loaded model computes; labels too, when a label dictionary is known."""
    d, cfg = ckpt.description, loaded.config
    want_type = d.hf_model_type
    rows = []
    mt = getattr(cfg, "model_type", None)
    note = ""
    if mt != want_type:
        named = families.for_model_type(mt)
        built = f"{named.prefix}* ({named.layout.family})" if named is not None else f"the {mt!r} class"
        own = families.of(d)
        # The same layout with the same tensor names (the bare model's carry no base-model prefix): the other class
        # loads every weight and computes the same outputs; only what the folder says it is is wrong.
        alike = (
            named is not None
            and (named.layout, named.adapters) == (own.layout, own.adapters)
            and (named.base == own.base or head == ENCODER)
        )
        consequence = (
            "which loads these weights and computes the same outputs, but publishes the model as another one"
            if alike
            else "and transformers reports missing/unexpected norm weights and returns wrong outputs without an error"
        )
        note = (
            f"config.json says model_type '{mt}' but the checkpoint is {d.family} "
            f"(the {d.hf_family} family): AutoModel* would build "
            f"{built} instead of {model_class_name(d, head)}, {consequence}. "
            f'Fix: set "model_type": "{want_type}" and "architectures": ["{model_class_name(d, head)}"]'
        )
    rows.append(ConfigRow("model_type", want_type, mt, mt == want_type, note))
    reference = expected_config(ckpt, head)
    for key in compared_keys(reference):
        want, got = getattr(reference, key, None), getattr(cfg, key, None)
        rows.append(ConfigRow(key, want, got, same_value(want, got)))
    if head_kind(head) == "classifier" and head is not None:
        want_n, got_n = d.classification_heads[head], getattr(cfg, "num_labels", None)
        rows.append(ConfigRow("num_labels", want_n, got_n, want_n == got_n))
    if d.adapters is not None:  # X-MOD: which adapters run when no language is given; any of the model's
        lang = getattr(cfg, "default_language", None)
        rows.append(ConfigRow("default_language", f"one of {d.adapters.languages}", lang, lang in d.adapters.languages))
    weights_dtype = folder.description.dtype
    rows.append(
        ConfigRow(
            "dtype (loaded)",
            weights_dtype,
            dtype_name(loaded.dtype),
            True,
            ""
            if dtype_name(loaded.dtype) == weights_dtype
            else f"from_pretrained loads this folder in {dtype_name(loaded.dtype)} (config.json's dtype); verified so",
        )
    )
    longest, want = folder.description.max_positions, d.max_positions
    if longest < want:  # transformers numbers positions from the pad id on: a larger one runs off the table sooner
        rows.append(
            ConfigRow(
                "longest input",
                want,
                longest,
                False,
                f"with pad_token_id={folder.description.padding_idx} the {folder.description.position_rows}-row "
                f"position table takes at most {longest} tokens: its forward fails (index out of bounds) on "
                f"longer inputs the checkpoint takes ({want})",
            )
        )
    labels_file = ckpt.labels_file(head)
    if labels_file is not None and head is not None:
        want_labels = read_labels(labels_file, d.classification_heads[head])
        found = getattr(cfg, "id2label", None) or {}
        got_labels = [found.get(i, found.get(str(i))) for i in range(len(want_labels))]
        rows.append(
            ConfigRow(
                "id2label",
                want_labels,
                got_labels,
                got_labels == want_labels,
                ""
                if got_labels == want_labels
                else f"class names differ from {labels_file} (fairseq's label dictionary)",
            )
        )
    elif head_kind(head) == "classifier" and head is not None:  # names are the user's; each class needs one
        n, found = d.classification_heads[head], getattr(cfg, "id2label", None) or {}
        unnamed = [i for i in range(n) if i not in found]
        rows.append(
            ConfigRow(
                "id2label",
                f"a name for each class 0..{n - 1}",
                sorted(found),
                not unnamed,
                f"no name for class {unnamed[0]}: the text-classification pipeline fails (KeyError) when it predicts it"
                if unnamed
                else "",
            )
        )
    return rows


class WeightPass:
    """Every mapped (and synthesized) tensor against the folder's, after casting to the folder's dtype; tied copies a
    writer kept must equal their source; anything else in the folder is extra unless known to be harmless.

    The folder's side is what AutoModel* loads (`loaded`: transformers' file choice, renames and tying) where it
    builds the class the weights are; where config.json selects another class, the weights are read as the class
    they are, to show where they stand (the load rows fail the verdict either way).

    Runnable whole, or report group by report group ("embeddings", "layer 3", ...) as the streamed forward loads
    that part: each layer's pages are then read from disk once, not once for the weights and again for the outputs
    (for a model larger than the page cache, the second read was most of the output check's time:
    docs/benchmarks.md)."""

    def __init__(
        self, ckpt: FairseqCheckpoint, folder: HFFolder, head: str | None, progress: Progress, loaded: LoadedModel
    ) -> None:
        plan = weights.plan(ckpt.names(), ckpt.description, head, str(ckpt.path), ckpt.dropped)
        self.ckpt, self.folder, self.head, self.progress = ckpt, folder, head, progress
        self.rows = {m.hf: m for m in plan.mapped}
        self.dtype = ckpt.dtype(weights.FAIRSEQ_NAMES["token_embeddings"])
        self.loaded = loaded if loaded.model_class == model_class_name(ckpt.description, head) else None
        if self.loaded is not None:
            view = self.loaded
            self.shapes = {n: folder.file_shapes[view.stored_name(n)][0] for n in view.names()}
            self._read: Callable[[str], torch.Tensor] = lambda n: folder.stored_tensor(view.stored_name(n))
        else:
            self.shapes = {n: folder.shape(n) for n in folder.names()}
            self._read = folder.tensor
        self.report = WeightReport(tol=0.0)
        self.pending = {n: weights.group_of(n) for n in self.rows}
        self.view: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # the read-ahead's copy of a tensor's bytes

    def source(self, hf_name: str) -> torch.Tensor:
        return self.rows[hf_name].take(lambda n: self.view(self.ckpt.tensor(n)), self.ckpt.description, self.dtype)

    def target(self, hf_name: str) -> torch.Tensor:
        return self.view(self._read(hf_name))

    def structure_ok(self) -> bool:
        """Every tensor the model needs is in the folder with its shape (shapes only: no data read)."""
        return all(tuple(self.source(n).shape) == tuple(self.shapes.get(n, ())) for n in self.rows)

    def run(self, groups: list[str] | None = None) -> None:
        """Compare the tensors of these report groups (all that are left when None)."""
        names = [n for n, g in self.pending.items() if groups is None or g in groups]
        part = compare_weights(
            [(n, n) for n in names],
            self.source,
            self.target,
            self.shapes,
            weights.group_of,
            0.0,
            cast_to_b=True,
            on_tensor=lambda: self.progress.advance(1),
        )
        for n in names:
            del self.pending[n]
        self.report.diffs += part.diffs
        self.report.missing += part.missing
        self.report.misshaped += part.misshaped

    def finish(self) -> WeightReport:
        self.run()
        known = set(self.rows)
        if head_kind(self.head) == "masked-lm" and self.ckpt.description.tied_lm_head:
            for name, (fairseq_source, _) in weights.tied_copies(self.ckpt.description.base).items():
                if name in self.shapes:
                    known.add(name)
                    self.report.diffs.append(
                        tensor_diff(
                            name,
                            weights.group_of(name),
                            self.ckpt.tensor(fairseq_source),
                            self._read(name),
                            0.0,
                            cast_to_b=True,
                        )
                    )
        extra = set(self.shapes) - known
        if self.loaded is not None:  # the folder's tensors transformers has no place for, by their stored names
            extra |= set(self.loaded.unexpected)
        self.report.extra = sorted(n for n in extra if weights.hf_ignorable(n) is None)
        return self.report


# The weight groups a streamed stage has just loaded (compare_streamed's on_loaded); the head stage takes the rest.
def _groups_of_stage(stage: str) -> list[str] | None:
    return [stage] if stage == "embeddings" or stage.startswith("layer ") or stage == "final norm" else None


def verify(
    src: str | Path,
    hf_folder: str | Path,
    settings: Settings = Settings(),
    assets: Assets = Assets(),
    hub_access: HubAccess = HubAccess(),
    *,
    progress: Progress | None = None,
) -> VerifyReport:
    """A fairseq checkpoint (read with the files `assets` name) against `hf_folder`: a local folder, or a Hugging Face
    repo id fetched as `hub_access` says, from the cache first; compared as `settings` say."""
    progress = progress or NoProgress()
    check_tol(settings.tol)
    ckpt = open_checkpoint(src, trust=settings.trust, assets=assets, ema=settings.ema)
    folder = open_folder(hub.local(hf_folder, hub_access), trust=settings.trust)
    if ckpt.description.family != folder.description.family:
        raise BadInput(
            folder.path,
            f"families do not match: the checkpoint is {ckpt.description.family}, the "
            f"folder's weights are {folder.description.family}",
        )
    head = compared_head(ckpt.description, folder.description, settings.head, ckpt.path, folder.path)
    check_language(ckpt.description, settings.language, str(ckpt.path))
    found = problems(ckpt.description, ckpt.args, head)
    if found:  # no folder can match fairseq's outputs for this model: say why, as convert does
        raise BadInput(ckpt.path, found[0])
    loaded = load_view(folder, task_of(head))
    dtype = run_dtype(settings.dtype, loaded.dtype)  # auto: the dtype from_pretrained loads the folder in
    check_device(settings.device, dtype)
    revision = hub_access.revision
    shown = f"{hf_folder}@{revision}" if revision else str(hf_folder) if hub.is_repo_id(hf_folder) else str(folder.path)
    report = VerifyReport(str(ckpt.path), shown, head, load=loaded)
    report.config = config_rows(ckpt, folder, loaded, head)
    weight_pass = WeightPass(ckpt, folder, head, progress, loaded)
    short = [r for r in report.config if r.item == "longest input"]
    skip = (
        "tokenizer and outputs: the folder lacks or mis-shapes tensors the model needs"
        if not weight_pass.structure_ok()
        else f"outputs: {loaded.failures()[0]}"
        if not loaded.ok and weight_pass.loaded is not None  # (another class: its weights are run as what they are)
        else f"outputs: config longest input: {short[0].note}"
        if short
        else f"tokenizer and outputs: fairseq is not importable here ({oracle.INSTALL})"
        if not oracle.available()
        else None
    )
    if skip is not None:
        progress.start("comparing weights", len(ckpt.names()))
        report.weights = weight_pass.finish()
        report.skipped.append(skip)
        return report
    weight_pass.progress = NoProgress()  # the counter below is the stages'
    stages = streamed_stages(ckpt.description, bool(folder.tokenizer_file_names()), head != ENCODER)
    progress.start("comparing, one layer at a time", stages)
    with ReadAhead() as ahead:
        weight_pass.view = ahead.view  # each part's weights compared as the forward loads them: read once
        report.tokenizer, report.outputs = compare_outputs_streamed(
            ckpt,
            folder,
            head,
            loaded,
            dtype,
            list(settings.texts or DEFAULT_TEXTS),
            settings.tol,
            settings.device,
            on_stage=progress.step,
            language=settings.language,
            on_loaded=lambda stage: weight_pass.run(_groups_of_stage(stage)),
            ahead=ahead,
        )
        weight_pass.view = lambda t: t
    report.weights = weight_pass.finish()
    if report.tokenizer is None:
        report.skipped.append("tokenizer: the folder has no tokenizer files")
    return report
