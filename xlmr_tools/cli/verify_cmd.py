"""`xlmr verify SRC HF_FOLDER`: does a published folder match the original fairseq checkpoint?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xlmr_tools.cli import console
from xlmr_tools.cli.options import (
    Device,
    DictPath,
    Dtype,
    Ema,
    EncoderJson,
    Head,
    Json,
    Labels,
    Lang,
    Quiet,
    Report,
    Revision,
    SpmPath,
    Texts,
    TextsFile,
    Tol,
    Trust,
    VocabBpe,
)


def verify(
    src: Annotated[Path, typer.Argument(help="The original fairseq folder or model.pt.")],
    hf_folder: Annotated[
        Path, typer.Argument(help="Any Hugging Face folder (ours, the old script's, a download) or a Hub repo id.")
    ],
    head: Head = None,
    text: Texts = None,
    texts_file: TextsFile = None,
    tol: Tol = None,
    dtype: Dtype = "auto",
    device: Device = "cpu",
    json_: Json = False,
    report: Report = None,
    quiet: Quiet = False,
    dict_path: DictPath = None,
    spm_path: SpmPath = None,
    encoder_json: EncoderJson = None,
    vocab_bpe: VocabBpe = None,
    labels: Labels = None,
    lang: Lang = None,
    trust: Trust = False,
    ema: Ema = False,
    revision: Revision = None,
) -> None:
    """Compare config, every weight, the tokenizer and every layer's outputs (streamed one layer at a time)."""
    console.warn_if_trusting(trust)
    from xlmr_tools.compare.texts import read_texts
    from xlmr_tools.ops.verify import verify as verify_folder

    texts = read_texts(text, texts_file)
    with console.progress(quiet or json_) as progress:
        result = verify_folder(
            src,
            hf_folder,
            head=head,
            texts=texts,
            tol=tol,
            dtype=dtype,
            device=device,
            trust=trust,
            dict_path=dict_path,
            spm_path=spm_path,
            encoder_json=encoder_json,
            vocab_bpe=vocab_bpe,
            labels=labels,
            language=lang,
            revision=revision,
            ema=ema,
            progress=progress,
        )
    data = result.to_dict()
    if report is not None:
        console.write_report(report, data, "verify")
    if json_:
        console.print_json(data)
    else:
        t = Table("config", "expected", "found", "", title="config.json vs checkpoint", title_justify="left")
        for r in result.config:
            t.add_row(r.item, str(r.expected), str(r.actual), "[green]ok[/]" if r.ok else "[bold red]FAIL[/]")
        console.out.print(t)
        if result.weights is not None:
            console.out.print(console.weights_table(result.weights.groups(), "weights through the map (after cast)"))
            console.name_lists(data["weights"])
        if result.load is not None:
            for problem in result.load.failures():
                console.out.print(f"[bold red]load:[/] {problem}", highlight=False)
        if result.tokenizer is not None:
            tk = result.tokenizer
            console.out.print(
                f"tokenizer: {'[green]ids equal[/]' if tk.ids_equal else '[bold red]ids differ[/]'} on "
                f"{tk.texts} texts and {tk.dictionary_texts} made of dict.txt's symbols; fairseq <mask> = {tk.mask_id}"
                + (f"; {tk.first_mismatch}" if tk.first_mismatch else "")
            )
            for row in tk.vocabulary:
                if not row.ok:
                    console.out.print(f"[bold red]tokenizer {row.item}:[/] {row.note}", highlight=False)
        if result.outputs is not None:
            o = result.outputs
            console.out.print(
                console.stage_table(
                    [r.to_dict() for r in o.rows],
                    f"outputs, streamed layer by layer ({o.dtype}, {o.texts} texts, {o.tokens} tokens, pads excluded"
                    f"{console.languages_note(o.languages)})",
                )
            )
            console.out.print(console.performance_line(o.performance))
        for s in result.skipped:
            console.warn(f"not checked: {s}")
        for r in result.config:
            if not r.ok and r.note:
                console.out.print(f"[bold red]config:[/] {r.note}", highlight=False)
        console.out.print(
            "[green]verified[/]: the folder matches the checkpoint"
            if result.ok
            else f"[bold red]verification failed[/]: {len(result.failures())} problem(s)"
        )
    if not result.ok:
        console.exit_failed(f"{result.folder}: verification failed", result.failures())
