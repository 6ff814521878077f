"""`xlmr convert SRC OUT`: fairseq checkpoint -> verified Hugging Face folder."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from xlmr_tools.cli import console
from xlmr_tools.cli.options import (
    DictPath,
    Dtype,
    Ema,
    EncoderJson,
    Force,
    Head,
    Json,
    Labels,
    Lang,
    Quiet,
    Report,
    SpmPath,
    Texts,
    TextsFile,
    Tol,
    Trust,
    VocabBpe,
)
from xlmr_tools.errors import XlmrError
from xlmr_tools.io.digest import start_digest
from xlmr_tools.sources.locate import find_checkpoint_file


def convert(
    src: Annotated[
        Path, typer.Argument(help="fairseq folder (model.pt, dict.txt, sentencepiece.bpe.model) or model.pt.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder; written atomically, never half-done.")],
    head: Head = None,
    dtype: Dtype = "auto",
    max_shard_size: Annotated[
        str, typer.Option("--max-shard-size", help="Largest safetensors file, e.g. 5GB.")
    ] = "5GB",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Run fairseq and the result side by side.")
    ] = True,
    tol: Tol = None,
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
    accept_missing_pieces: Annotated[
        bool,
        typer.Option(
            "--accept-missing-pieces",
            help="Publish although dict.txt lacks sentencepiece pieces (texts using them tokenize differently).",
        ),
    ] = False,
    json_: Json = False,
    trust: Trust = False,
    ema: Ema = False,
) -> None:
    """Convert a fairseq XLM-R checkpoint (base, large, XL, XXL, fine-tunes) into a verified HF folder."""
    console.warn_if_trusting(trust)
    with contextlib.suppress(XlmrError, OSError):  # hash while torch imports; convert reports bad paths
        start_digest(find_checkpoint_file(src))
    from xlmr_tools.compare.texts import read_texts
    from xlmr_tools.ops.convert import convert as convert_checkpoint

    texts = read_texts(text, texts_file)

    with console.progress(quiet or json_) as progress:
        result = convert_checkpoint(
            src,
            out,
            head=head,
            dtype=dtype,
            max_shard_size=max_shard_size,
            verify=verify,
            force=force,
            trust=trust,
            dict_path=dict_path,
            spm_path=spm_path,
            encoder_json=encoder_json,
            vocab_bpe=vocab_bpe,
            labels=labels,
            language=lang,
            texts=texts,
            accept_missing_pieces=accept_missing_pieces,
            tol=tol,
            ema=ema,
            progress=progress,
            report=report,
        )
    if report is not None:
        console.write_report(report, result.to_dict(), "convert")
    if json_:
        console.print_json(result.to_dict())
        return
    if result.outputs is not None:
        o = result.outputs
        console.out.print(
            console.stage_table(
                [r.to_dict() for r in o.rows],
                f"fairseq vs transformers ({o.dtype}, {o.texts} texts, {o.tokens} tokens, pads excluded"
                f"{console.languages_note(o.languages)})",
            )
        )
        console.out.print(console.performance_line(o.performance))
    if result.tokenizer is not None:
        t = result.tokenizer
        console.out.print(
            (f"tokenizer: ids equal fairseq's on {t.texts} texts" if t.equal else
             f"tokenizer: ids differ from fairseq's on {t.mismatches} of {t.texts} texts (accepted, below)")
            + f"; <mask> = {t.mask_id}" + (f" (after {t.fillers} dictionary padding fillers)" if t.fillers else "")
        )  # fmt: skip
    for s in result.skipped:
        console.warn(f"not checked: {s}")
    for s in result.accepted:
        console.warn(f"accepted difference: {s}")
    for p in result.stale_removed:
        console.warn(f"removed {p}: the temporary folder of an earlier run that was killed")
    console.out.print(
        f"[green]converted[/] {result.source} → {result.out}: {result.model_class}, {result.dtype}, "
        f"{result.tensors_written} tensors in {len(result.shards)} file(s), "
        f"{console.human_bytes(result.bytes_written)}; weights re-read and equal"
    )
