"""`xlmr diff A B`: where two models (fairseq or HF, any mix) part, tensor by tensor and layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xlmr_tools.cli import console
from xlmr_tools.cli.options import Device, Head, Json, Quiet, Report, Revision, Texts, TextsFile, Trust


def diff(
    a: Annotated[Path, typer.Argument(help="A fairseq checkpoint/folder, an HF folder or repo id (the reference).")],
    b: Annotated[Path, typer.Argument(help="A fairseq checkpoint/folder, an HF folder or a repo id.")],
    head: Head = None,
    tol: Annotated[float, typer.Option("--tol", help="Max |Δ| per tensor (and per stage with --outputs).")] = 0.0,
    outputs: Annotated[bool, typer.Option("--outputs", help="Also compare per-layer activations.")] = False,
    output_tol: Annotated[
        float | None,
        typer.Option("--output-tol", help="Max |Δ| per stage with --outputs (default: max of --tol and the dtype's)."),
    ] = None,
    text: Texts = None,
    texts_file: TextsFile = None,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="dtype both models run in for --outputs: float32, float16, bfloat16, or auto (the models' "
            "own when they agree, else float32).",
        ),
    ] = "float32",
    device: Device = "cpu",
    json_: Json = False,
    report: Report = None,
    quiet: Quiet = False,
    trust: Trust = False,
    revision: Revision = None,
) -> None:
    """Compare two models; exit 0 when equal within --tol, 1 when not, 2 on bad input."""
    console.warn_if_trusting(trust)
    from xlmr_tools.compare.texts import read_texts
    from xlmr_tools.ops.diff import diff as diff_models

    texts = read_texts(text, texts_file)
    with console.progress(quiet or json_) as progress:
        result = diff_models(
            a,
            b,
            head=head,
            tol=tol,
            outputs=outputs,
            texts=texts,
            output_tol=output_tol,
            dtype=dtype,
            device=device,
            trust=trust,
            revision=revision,
            progress=progress,
        )
    data = result.to_dict()
    if report is not None:
        console.write_report(report, data, "diff")
    if json_:
        console.print_json(data)
    else:
        console.out.print(console.weights_table(result.weights.groups(), f"{a} vs {b}: tensors (tol {tol:g})"))
        bad = [d for d in result.weights.diffs if not d.ok]
        for d in bad[:20]:
            console.out.print(
                f"  {d.name}: max|Δ| {d.max_abs:.3e} (rel {d.rel:.2e}), {d.dtype_a} vs {d.dtype_b}", highlight=False
            )
        console.name_lists(data["weights"])
        for r in result.config:
            if not r.ok:
                console.out.print(f"[bold red]config {r.item}:[/] {r.note or f'{r.a!r} vs {r.b!r}'}", highlight=False)
        for t in result.tokenizer:
            if not t.ok:
                console.out.print(f"[bold red]tokenizer {t.item}:[/] {t.note}", highlight=False)
        if result.outputs is not None:
            o = result.outputs
            console.out.print(
                console.stage_table(
                    [r.to_dict() for r in o.rows], f"activations ({o.dtype}, {o.texts} texts, pads excluded)"
                )
            )
        console.out.print("[green]equal within tolerance[/]" if result.ok else "[bold red]models differ[/]")
    if not result.ok:
        console.exit_failed(f"{b}: differs from {a}", result.failures())
