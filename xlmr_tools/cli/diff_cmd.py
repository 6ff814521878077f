"""`xlmr diff A B`: where two models (fairseq or HF, any mix) part, tensor by tensor and layer by layer."""

from __future__ import annotations

from rich.markup import escape

from xlmr_tools.cli import console
from xlmr_tools.cli.options import (
    CacheDir,
    Debug,
    Device,
    DeviceName,
    DiffA,
    DiffB,
    DiffDtype,
    DiffTol,
    DtypeName,
    Ema,
    Head,
    Json,
    Outputs,
    OutputTol,
    Quiet,
    Report,
    Revision,
    Texts,
    TextsFile,
    Token,
    Trust,
    Verbose,
)
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.render import terminal
from xlmr_tools.settings import HubAccess, Settings

SHOWN = 20  # differing tensors listed under the table (all of them are in --json / --report)


def diff(
    a: DiffA,
    b: DiffB,
    head: Head = None,
    tol: DiffTol = 0.0,
    outputs: Outputs = False,
    output_tol: OutputTol = None,
    text: Texts = None,
    texts_file: TextsFile = None,
    dtype: DiffDtype = DtypeName.auto,
    device: Device = DeviceName.cpu,
    json_: Json = False,
    report: Report = None,
    quiet: Quiet = False,
    trust: Trust = False,
    ema: Ema = False,
    revision: Revision = None,
    token: Token = None,
    cache_dir: CacheDir = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Compare two models; exit 0 when equal within --tol, 1 when not, 2 on bad input."""
    console.set_debug(debug)
    console.check_report_path(report)
    console.warn_if_trusting(trust)
    with deferred_interrupts():  # a signal inside torch's import can abort the process: deferred past it
        from xlmr_tools.compare.texts import read_texts
        from xlmr_tools.ops.diff import diff as diff_models

    settings = Settings(
        head=head,
        dtype=dtype.value,
        device=device.value,
        tol=tol,
        texts=read_texts(text, texts_file),
        trust=trust,
        ema=ema,
    )
    if outputs and not quiet and not json_:
        console.texts_note(text, texts_file)
    with console.progress(quiet or json_) as progress:
        result = diff_models(
            a, b, settings, HubAccess(revision, token, cache_dir), outputs=outputs, output_tol=output_tol,
            progress=progress,
        )  # fmt: skip
    data = result.to_dict()
    if report is not None:
        console.write_report(report, data, "diff")
    if json_:
        console.print_json(data)
    else:
        console.out.print(terminal.weights_table(result.weights.groups(), f"A {a} vs B {b}: tensors (tol {tol:g})"))
        bad = [d for d in result.weights.diffs if not d.ok]
        for d in bad[:SHOWN]:
            console.out.print(
                escape(f"  {d.name}: max|Δ| {d.max_abs:.3e} (rel {d.rel:.2e}), {d.dtype_a} vs {d.dtype_b}"),
                highlight=False,
            )
        if len(bad) > SHOWN:
            console.out.print(f"  … and {len(bad) - SHOWN} more differing tensors (all in --json)", highlight=False)
        console.name_lists(data["weights"])
        for r in result.config:
            if not r.ok:
                console.out.print(f"[bold red]config {r.item}:[/] {r.note or f'{r.a!r} vs {r.b!r}'}", highlight=False)
        for t in result.tokenizer:
            if not t.ok:
                console.out.print(f"[bold red]tokenizer {t.item}:[/] {t.note}", highlight=False)
        if result.cast:
            console.out.print(f"[yellow]only a dtype cast[/]: {escape(result.cast)}", highlight=False)
        if result.outputs is not None:
            o = result.outputs
            console.out.print(
                terminal.stage_table(
                    [r.to_dict() for r in o.rows], f"activations ({o.dtype}, {o.texts} texts, pads excluded)"
                )
            )
            if verbose:
                console.out.print(terminal.performance_line(o.performance, o.dtype))
        console.out.print("[green]equal within tolerance[/]" if result.ok else "[bold red]models differ[/]")
    if not result.ok:
        console.exit_failed(f"{b}: differs from {a}", result.failures())
