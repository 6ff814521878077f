"""`xlmr convert SRC OUT`: fairseq checkpoint -> verified Hugging Face folder."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from rich.markup import escape

from xlmr_tools.cli import console
from xlmr_tools.cli.options import (
    AcceptMissingPieces,
    ConvertDtype,
    ConvertTol,
    Debug,
    DictPath,
    DtypeName,
    Ema,
    EncoderJson,
    Force,
    Head,
    Json,
    Labels,
    Lang,
    MaxShardSize,
    Out,
    Quiet,
    Report,
    SpmPath,
    Src,
    Texts,
    TextsFile,
    Trust,
    Verbose,
    Verify,
    VocabBpe,
)
from xlmr_tools.errors import VerificationFailed, XlmrError
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.io.atomic_folder import check_inputs_kept, check_target
from xlmr_tools.io.digest import SourceDigest
from xlmr_tools.render import terminal
from xlmr_tools.settings import Assets, Settings
from xlmr_tools.sources.locate import checkpoint_named, find_checkpoint_file


def convert(
    src: Src,
    out: Out,
    head: Head = None,
    dtype: ConvertDtype = DtypeName.auto,
    max_shard_size: MaxShardSize = "5GB",
    verify: Verify = True,
    tol: ConvertTol = None,
    force: Force = False,
    quiet: Quiet = False,
    dict_path: DictPath = None,
    spm_path: SpmPath = None,
    encoder_json: EncoderJson = None,
    vocab_bpe: VocabBpe = None,
    labels: Labels = None,
    lang: Lang = None,
    text: Texts = None,
    texts_file: TextsFile = None,
    report: Report = None,
    accept_missing_pieces: AcceptMissingPieces = False,
    json_: Json = False,
    trust: Trust = False,
    ema: Ema = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Convert a fairseq XLM-R checkpoint (base, large, XL, XXL, fine-tunes) into a verified HF folder."""
    console.set_debug(debug)
    console.check_report_path(report)  # every output path before any work: exit 2, nothing written
    assets = Assets(dict_path, spm_path, encoder_json, vocab_bpe, labels)
    given = [p for p in (checkpoint_named(src), *assets.named()) if p]
    check_inputs_kept(out, given)  # the worst thing wrong with OUT first: it would delete an input
    check_target(out, force)
    console.warn_if_trusting(trust)
    digest = None
    with contextlib.suppress(XlmrError, OSError):  # hash while torch imports; convert reports bad paths
        digest = SourceDigest(find_checkpoint_file(src))
    try:
        with deferred_interrupts():  # a signal inside torch's import can abort the process: deferred past it
            from xlmr_tools.compare.texts import read_texts
            from xlmr_tools.ops.convert import convert as convert_checkpoint

        texts = read_texts(text, texts_file)
        settings = Settings(head=head, dtype=dtype.value, tol=tol, texts=texts, language=lang, trust=trust, ema=ema)
        if verify and not quiet and not json_:
            console.texts_note(text, texts_file)
        with console.progress(quiet or json_) as progress:
            result = convert_checkpoint(
                src, out, settings, assets, max_shard_size=max_shard_size, verify=verify, force=force,
                accept_missing_pieces=accept_missing_pieces, progress=progress, report=report, digest=digest,
            )  # fmt: skip
    except VerificationFailed as e:  # nothing was published: still the table, the JSON and the report
        if e.result is not None:
            _show(e.result, report, json_, verbose)
        raise
    finally:
        if digest is not None:
            digest.cancel()  # a no-op once convert has the hash; else nothing will convert the file it reads
    _show(result, report, json_, verbose)


def _show(result: Any, report: Path | None, json_: bool, verbose: bool) -> None:
    """The result (a ConvertResult, published or failed): the report file, then JSON or the tables."""
    data = result.to_dict()
    if report is not None:
        console.write_report(report, data, "convert")
    if json_:
        console.print_json(data)
        return
    if result.outputs is not None:
        o = result.outputs
        console.out.print(
            terminal.stage_table(
                [r.to_dict() for r in o.rows],
                f"fairseq vs transformers ({o.dtype}, {o.texts} texts, {o.tokens} tokens, pads excluded"
                f"{terminal.languages_note(o.languages)})",
            )
        )
        if verbose:
            console.out.print(terminal.performance_line(o.performance, o.dtype))
    if result.tokenizer is not None:
        t = result.tokenizer
        line = (
            f"tokenizer: ids equal fairseq's on {t.counted()}"
            if t.equal
            else f"tokenizer: ids differ from fairseq's on {t.counted()}" + (" (accepted, below)" if result.ok else "")
        )
        fillers = f" (after {t.fillers} dictionary padding fillers)" if t.fillers else ""
        console.out.print(escape(f"{line}; <mask> = {t.mask_id}{fillers}"))
    for s in result.skipped:
        console.warn(f"not checked: {s}")
    for s in result.accepted:
        console.warn(f"accepted difference: {s}")
    for p in result.stale_removed:
        console.note(f"removed {p}: the temporary folder of an earlier run that was killed")
    if not result.ok:
        console.out.print(
            f"[bold red]not converted[/]: verification failed, {escape(str(result.out))} was not written"
            + (" (the earlier folder there is unchanged)" if result.replaced else ""),
            highlight=False,
        )
        return
    console.out.print(
        f"[green]converted[/] {escape(str(result.source))} → {escape(str(result.out))}"
        + (" (replaced the folder that was there)" if result.replaced else "")
        + f": {result.model_class}, {result.dtype}, {result.tensors_written} tensors in {len(result.shards)} file(s), "
        f"{terminal.human_bytes(result.bytes_written)}; weights re-read and equal"
        + ("" if result.outputs is not None else "; outputs not compared with fairseq"),
        highlight=False,
    )
