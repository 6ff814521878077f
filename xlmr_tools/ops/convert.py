"""fairseq -> Hugging Face, streamed: map names by table, cast, write shards as we go, check, then publish."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools import families
from xlmr_tools._version import __version__
from xlmr_tools.compare import oracle
from xlmr_tools.compare.auto_class import check_auto_class
from xlmr_tools.compare.outputs import compare_outputs_streamed
from xlmr_tools.compare.stages import OutputReport, check_tol, streamed_stages
from xlmr_tools.compare.texts import DEFAULT_TEXTS
from xlmr_tools.compare.tokenizer import TokenizerCheck
from xlmr_tools.compare.written import Written, WrittenCheck, write_ahead
from xlmr_tools.errors import BadInput, VerificationFailed
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.io.atomic_folder import (
    atomic_folder,
    check_free_space,
    check_inputs_kept,
    check_report,
    check_target,
)
from xlmr_tools.io.digest import SourceDigest, digest_for
from xlmr_tools.io.memory import memory_room
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.io.safetensors import TensorToWrite, write_shards
from xlmr_tools.io.torch_zip import tensor_offsets
from xlmr_tools.mapping import tokenizer, weights
from xlmr_tools.mapping.config import check_language, choose_head, model_class_name, read_labels, validate
from xlmr_tools.model import ENCODER, dtype_name, run_dtype
from xlmr_tools.progress import NoProgress, Progress
from xlmr_tools.render.model_card import write_model_card
from xlmr_tools.settings import Assets, Settings
from xlmr_tools.sources.fairseq import FairseqCheckpoint, open_checkpoint
from xlmr_tools.sources.hf import folder_being_written, open_folder
from xlmr_tools.sources.locate import checkpoint_named


@dataclass
class ConvertResult:
    out: Path
    source: Path
    family: str
    model_class: str
    head: str | None
    dtype: str
    shards: list[str]
    bytes_written: int
    tensors_written: int
    ignored: dict[str, str]
    weights_equal: bool
    tokenizer: TokenizerCheck | None
    outputs: OutputReport | None
    skipped: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # known differences the user accepted (by flag)
    stale_removed: list[str] = field(default_factory=list)  # temporary folders of killed earlier runs
    source_sha256: str | None = None
    weights: str = "model"  # which of the checkpoint's weights: "model" (the live ones) or "ema"
    model_type: str = ""  # transformers' model_type (the model card's tag)
    replaced: bool = False  # OUT held an earlier folder, replaced (--force)
    failures: list[str] = field(default_factory=list)  # why verification failed: then nothing was published

    @property
    def ok(self) -> bool:
        """Verified and published; a failed result travels with VerificationFailed (its `result`)."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "published": self.ok,
            "weights": self.weights,
            "out": str(self.out),
            "source": str(self.source),
            "family": self.family,
            "model_class": self.model_class,
            "head": self.head,
            "dtype": self.dtype,
            "shards": self.shards,
            "bytes_written": self.bytes_written,
            "tensors_written": self.tensors_written,
            "ignored": self.ignored,
            "weights_equal": self.weights_equal,
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
            "outputs": self.outputs.to_dict() if self.outputs else None,
            "skipped": self.skipped,
            "accepted": self.accepted,
            "stale_removed": self.stale_removed,
            "source_sha256": self.source_sha256,
            "model_type": self.model_type,
            "replaced": self.replaced,
            "failures": self.failures,
        }


def parse_size(text: str | int) -> int:
    """'5GB' -> 5e9 (decimal, as transformers), '500MiB' -> binary, '100B' bytes; an int is bytes. Text needs a
    unit: `--max-shard-size 5` (5 bytes, one file per tensor) is almost certainly not what was meant."""
    if isinstance(text, int):
        if text <= 0:
            raise BadInput(None, f"--max-shard-size must be positive, not {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)(B?)\s*", text.upper().replace("IB", "iB"), re.I)
    if m and not (m.group(2) or m.group(4)):
        raise BadInput(None, f"--max-shard-size {text.strip()}: give a unit, e.g. {text.strip()}GB or {text.strip()}MB "
                       "(a bare number would be bytes: one file per tensor)")  # fmt: skip
    if not m or float(m.group(1)) <= 0:
        raise BadInput(None, f"--max-shard-size: cannot read {text!r} (use e.g. 5GB, 500MB, 2GiB)")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** " KMGT".index(m.group(2).upper() or " "))


def convert(
    src: str | Path,
    out: str | Path,
    settings: Settings = Settings(),
    assets: Assets = Assets(),
    *,
    max_shard_size: str | int = "5GB",
    verify: bool = True,
    force: bool = False,
    accept_missing_pieces: bool = False,
    progress: Progress | None = None,
    report: str | Path | None = None,
    digest: SourceDigest | None = None,
) -> ConvertResult:
    """Convert a fairseq checkpoint into an HF folder at `out`, run as `settings` say with the files `assets` name;
    raise VerificationFailed (OUT not written) when written weights or outputs differ from the source beyond
    tolerance. The label dictionary names the head's classes (default: label/dict.txt beside a sentence_prediction
    checkpoint); an X-MOD `settings.language` is also the folder's default_language.
    `verify`: run fairseq and the written folder side by side (the written weights are re-read either way).
    `accept_missing_pieces`: publish although a GPT-2 or CamemBERT-style dict.txt lacks tokens of its subword model
    (the tokenizer then differs from fairseq's on texts that use them; the differences on the sample texts are
    reported, not fatal). A sentencepiece dict.txt lacking pieces needs no flag: its tokenizer looks pieces up as
    fairseq does (mapping.tokenizer).
    `report`: a file the caller writes once this returns (the CLI's --report), refused with the other paths before
    anything is written if it would overwrite an input or OUT.
    `digest`: the source's sha256 begun early (the CLI starts it before importing torch); used where it is of the file
    opened here, else hashed anew."""
    progress = progress or NoProgress()
    out = Path(out)
    check_tol(settings.tol)
    given = [Path(p) for p in (checkpoint_named(src), *assets.named()) if p]
    check_inputs_kept(out, given)  # before any work: OUT holding an input is the worst thing wrong with OUT
    check_target(out, force)  # a bad OUT is known without reading the checkpoint
    ckpt = open_checkpoint(src, trust=settings.trust, assets=assets, ema=settings.ema)
    sha256 = digest_for(ckpt.opened or ckpt.path, digest)
    try:
        job = _prepare(ckpt, out, settings, max_shard_size, force, accept_missing_pieces, report)
        return _convert_prepared(job, out, verify, force, settings, progress, sha256)
    finally:
        sha256.cancel()  # a no-op once it is done; stops hashing a 40 GB file after an error


@dataclass
class _Prepared:
    """Everything decided before a byte is written: the cheap validation `--no-verify` keeps."""

    ckpt: FairseqCheckpoint
    head: str | None
    dtype: torch.dtype
    shard_bytes: int
    plan: weights.Plan
    labels: list[str] | None
    language: str | None
    alignment: tokenizer.Alignment
    to_write: list[TensorToWrite]

    @property
    def total(self) -> int:
        return sum(t.nbytes for t in self.to_write)


def _prepare(
    ckpt: FairseqCheckpoint,
    out: Path,
    settings: Settings,
    max_shard_size: str | int,
    force: bool,
    accept_missing_pieces: bool,
    report: str | Path | None = None,
) -> _Prepared:
    """Refuse, by name, anything that cannot be converted exactly, before anything is written."""
    check_inputs_kept(out, ckpt.inputs())  # first: --force would delete them, whatever else is wrong
    if report is not None:
        check_report(Path(report), out, ckpt.inputs())
    desc = ckpt.description
    where = str(ckpt.path)
    target = run_dtype(settings.dtype, ckpt.dtype(weights.FAIRSEQ_NAMES["token_embeddings"]))
    shard_bytes = parse_size(max_shard_size)
    head = choose_head(desc, settings.head, where)
    language = settings.language
    validate(desc, ckpt.args, head, where)  # what transformers cannot represent, by name, before anything else
    check_language(desc, language, where)
    plan = weights.plan(ckpt.names(), desc, head, where, ckpt.dropped)
    weights.check_shapes(ckpt.tensors, desc, where, [m.fairseq for m in plan.from_file() if m.fairseq])
    labels_file = ckpt.labels_file(head)
    labels = read_labels(labels_file, desc.classification_heads[head]) if labels_file and head else None
    alignment = ckpt.alignment()
    dict_path = ckpt.dict_path
    if alignment.inexact and not accept_missing_pieces:
        raise BadInput(
            dict_path,
            f"{alignment.inexact}, so texts using them would get other ids; pass --accept-missing-pieces to publish "
            "anyway (the differences on the sample texts are then reported)",
        )
    prepared = _Prepared(
        ckpt, head, target, shard_bytes, plan, labels, language, alignment, _tensors_to_write(ckpt, plan, target)
    )
    check_target(out, force)
    check_free_space(out, prepared.total + 50_000_000)
    return prepared


def _convert_prepared(
    job: _Prepared,
    out: Path,
    verify: bool,
    force: bool,
    settings: Settings,
    progress: Progress,
    sha256: SourceDigest,
) -> ConvertResult:
    ckpt, head = job.ckpt, job.head
    stale: list[Path] = []
    skipped = [reason] if (reason := _output_check_skipped(verify)) else []  # fairseq imported before OUT's folder
    replaced = out.is_dir() and any(out.iterdir())  # check_target let it through: --force
    desc = ckpt.description

    def result_of(files: dict[str, str], tok_check: TokenizerCheck | None, outputs: OutputReport | None,
                  weights_equal: bool = True) -> ConvertResult:  # fmt: skip
        return ConvertResult(
            out=out,
            source=ckpt.path,
            family=desc.family,
            model_class=model_class_name(desc, head),
            head=head,
            dtype=dtype_name(job.dtype),
            shards=sorted(set(files.values())),
            bytes_written=job.total,
            tensors_written=len(job.to_write),
            ignored=job.plan.ignored,
            weights_equal=weights_equal,
            tokenizer=tok_check,
            outputs=outputs,
            skipped=skipped,
            stale_removed=[str(p) for p in stale],
            weights="ema" if ckpt.ema else "model",
            model_type=desc.hf_model_type,
            replaced=replaced,
        )

    def failed(result: ConvertResult, problem: str) -> VerificationFailed:
        """The failure carries its result, so the caller still shows the table, the JSON and the report."""
        result.failures.append(problem)
        return VerificationFailed(out, problem, result)

    with atomic_folder(out, force, stale) as tmp:
        try:
            files, (tok_check, outputs) = _write_and_prove(
                job, tmp, progress, verify, None if skipped else (settings.texts, settings.tol), sha256
            )
        except VerificationFailed as e:  # a written tensor or header differs: no outputs were compared
            raise failed(result_of({}, None, None, weights_equal=False), e.problem) from e
        result = result_of(files, tok_check, outputs)
        if tok_check is not None and not tok_check.equal:
            if not job.alignment.inexact:
                raise failed(result, f"tokenizer ids differ from fairseq's ({tok_check.first_mismatch})")
            result.accepted.append(
                f"tokenizer: {tok_check.counted()} get other ids than fairseq's "
                f"(--accept-missing-pieces: dict.txt {job.alignment.inexact}); "
                f"{tok_check.first_mismatch}"
            )
        w = outputs.worst if outputs is not None else None
        if w is not None:
            raise failed(
                result,
                f"outputs differ from fairseq at {w.stage}: max|Δ| {w.max_abs:.3g} > "
                f"tol {w.tol:g} (text {w.text}, token {w.token}); not written",
            )
        progress.stage("writing model card")
        result.source_sha256 = sha256.result()
        write_model_card(tmp, result.to_dict(), result.source_sha256, __version__)
    return result


def _write_and_prove(
    job: _Prepared,
    tmp: Path,
    progress: Progress,
    verify: bool,
    outputs: tuple[list[str] | None, float | None] | None,
    sha256: SourceDigest,
) -> tuple[dict[str, str], tuple[TokenizerCheck | None, OutputReport | None]]:
    """Write the shards, config and tokenizer into `tmp` and prove what was written: every tensor re-read one
    behind the writer and bit-equal to its source after the cast, the headers re-read, and the class, keys and
    shapes AutoModel* would load. With `outputs` (texts, tol), fairseq and the folder also run side by side, one
    layer at a time, *while* the shards are written: layer k runs once its tensors are written and proven, and the
    writer stays a bounded distance ahead (compare.written.WrittenCheck.pace), so each byte is read from disk once.
    Returns ({tensor: shard file}, (tokenizer check, output report)); raises VerificationFailed on any difference.

    One thread streams the shards (copying in the kernel, GIL released), one re-reads each tensor as it lands,
    while this thread writes config and tokenizer and runs the forward (another hashes the source). The pool lives
    inside the temporary folder's context: on any error or interrupt, wherever it lands, the workers are told to
    stop and joined before the folder is removed, so no write can re-create part of a folder being removed."""
    ckpt, desc, where = job.ckpt, job.ckpt.description, str(job.ckpt.path)
    stop = threading.Event()

    def counting(bar: Callable[[int], None]) -> Callable[[int], None]:
        def on_bytes(n: int) -> None:
            if stop.is_set():
                raise InterruptedError("conversion cancelled")
            bar(n)

        return on_bytes

    written_bytes = progress.bar("writing safetensors", job.total)
    window = write_ahead(memory_room())
    sha256.pace(window)  # the hash stays just ahead of the writer: the writer's copy finds its pages cached
    ahead = window if outputs is not None else None
    check = WrittenCheck(where, counting(progress.bar("re-reading written tensors", job.total)), stop, ahead)
    planned = {t.name: (t.shape, t.dtype) for t in job.to_write}

    in_file = ckpt.file_bytes / max(1, job.total)  # the writer's bytes as a share of the file (casts, skipped keys)

    def on_bytes(n: int) -> None:
        written_bytes(n)
        sha256.advance(int(n * in_file))

    def write() -> dict[str, str]:
        try:
            return write_shards(
                tmp,
                job.to_write,
                job.shard_bytes,
                counting(on_bytes),
                lambda t, path, offset: check.put(Written(t, path, offset)),
                check.pace,
            )
        finally:
            sha256.release()
            check.close()

    report: tuple[TokenizerCheck | None, OutputReport | None] = (None, None)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="xlmr-convert") as pool:
        try:
            with deferred_interrupts():  # an interrupt inside a thread's start would leave that thread unjoined
                shards = pool.submit(write)
                checked = pool.submit(check.run)
            config = families.build_config(
                desc,
                ckpt.args,
                job.head,
                job.dtype,
                where,
                job.labels,
                job.alignment.specials,
                job.language,
                ckpt.regression(job.head),
            )
            config.save_pretrained(str(tmp))
            tokenizer.write_hf_tokenizer(tmp, job.alignment, desc.max_positions)
            being_written = folder_being_written(tmp, planned, check.tensor)
            loaded = None
            if verify:  # what AutoModel* loads from the written folder: class, tensors, tying (meta device).
                # transformers' modeling code is a large share of a --no-verify run's time and memory
                # (docs/benchmarks.md), so --no-verify keeps the transformers-free checks instead: named refusals,
                # the name plan and every tensor's shape against the config (ops.convert._prepare).
                loaded = check_auto_class(being_written, job.head, model_class_name(desc, job.head))
            if outputs is not None:
                # one step per layer, run as soon as it is written
                stages = streamed_stages(desc, True, job.head != ENCODER)
                progress.start("fairseq and transformers side by side", stages)
                texts, tol = outputs
                # The layers are read through the mapping (the writer has just read the source's pages and written
                # the folder's); the LM decoder, written first, is read ahead by vocabulary block: under a memory
                # cap its pages are gone by the time the head runs.
                try:
                    with ReadAhead() as vocab_ahead:
                        report = compare_outputs_streamed(
                            job.ckpt, being_written, job.head, loaded, job.dtype,
                            texts or list(DEFAULT_TEXTS), tol, language=job.language, ahead=vocab_ahead,
                            ahead_layers=False, on_stage=progress.step, alignment=job.alignment,
                            reference_tokenizer=False,
                        )  # fmt: skip
                except InterruptedError:  # the writer or the check stopped first: their own error says why
                    _raise_from_workers(where, checked, shards)
                    raise
                finally:
                    check.release()
            files = _raise_from_workers(where, checked, shards)
            differs = check.headers_agree(tmp, files)
        except BaseException:
            stop.set()  # the writer stops at its next chunk; the pool's exit joins both workers
            check.close()
            raise
    if differs is not None:
        raise VerificationFailed(where, f"shard header does not place {differs} where it was written and checked")
    if verify:  # the finished folder as AutoModel* will read it: the files it selects hold exactly what was proven
        final = open_folder(tmp)
        if final.file_shapes != planned or set(check_auto_class(final, job.head, model_class_name(desc, job.head))
                                               .stored.values()) != set(planned):  # fmt: skip
            raise VerificationFailed(where, "the finished folder does not hold exactly the tensors that were verified")
    return files, report


def _raise_from_workers(where: str, checked: Future[str | None], shards: Future[dict[str, str]]) -> dict[str, str]:
    """Wait for the check and the writer; raise what stopped them (a difference, a read or write error), else
    return the writer's {tensor: shard file}."""
    differs = checked.result()
    if differs is not None:
        raise VerificationFailed(where, f"written tensor {differs} differs from its source after the cast")
    return shards.result()


def _output_check_skipped(verify: bool) -> str | None:
    """Why the expensive proof (fairseq and the written folder side by side) does not run, if it does not."""
    if not verify:
        return "output check: --no-verify"
    if not oracle.available():
        return f"output check: fairseq is not importable here (weights were still checked; {oracle.INSTALL})"
    return None


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _tensors_to_write(ckpt: FairseqCheckpoint, plan: weights.Plan, dtype: torch.dtype) -> list[TensorToWrite]:
    stored = {n: t for n, t in ckpt.tensors.items() if n not in ckpt.derived}  # computed ones have no file bytes
    offsets = tensor_offsets(ckpt.readable, stored) if ckpt.serialization == "zip" else {}
    out = []
    for m in plan.mapped:
        t = m.take(ckpt.tensor, ckpt.description, dtype)  # lazy: a view of the mmapped file, or a synthesized row
        target = dtype if t.is_floating_point() else t.dtype
        offset = offsets.get(m.fairseq) if m.fairseq is not None and target == t.dtype else None
        copy_from = (ckpt.readable, offset) if offset is not None else None  # the very file torch mapped
        out.append(TensorToWrite(m.hf, functools.partial(_same, t), target, tuple(t.shape), copy_from))
    return out
