"""What the terminal shows of a report: tables fitted to the width they are printed at (numbers and verdicts never
cut), |Δ| against the tolerance as a log bar, the compute line, byte counts. Built from the operations' plain report
dicts and rows; printing them is the CLI's (cli/console.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich import filesize
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def human_bytes(n: int) -> str:
    return filesize.decimal(n)


def performance_line(perf: Any, dtype: str = "") -> str:
    """The output check's compute against the FLOP bound of its real tokens (compare/flops.py), for -v. A run
    faster than the GEMM peak (CPU float16/bfloat16, where one large product is slower than the model's many small
    ones) has no bound to state: that is said instead of a ratio below 1."""
    if perf is None or not perf.bound_seconds:
        return ""
    padding = perf.padded_tokens / perf.tokens - 1 if perf.tokens else 0.0
    ratio = perf.seconds / perf.bound_seconds
    bound = (
        f"{ratio:.2f}× the FLOP bound"
        if ratio >= 1
        else f"faster than that peak, which is then no bound{f' for {dtype}' if dtype else ''} here"
    )
    return (
        f"compute: {perf.flops / 1e9:,.1f} GFLOP on {perf.tokens:,} real tokens ({padding:.0%} padding run) in "
        f"{perf.seconds:.1f} s = {perf.achieved_flops / 1e9:,.1f} GFLOPS; GEMM peak measured now "
        f"{perf.peak_flops / 1e9:,.0f} GFLOPS: {bound}"
        + (
            f" (+ {perf.weights_seconds:.1f} s comparing weights between stages)"
            if perf.weights_seconds >= 0.05
            else ""
        )
    )


def languages_note(languages: list[str]) -> str:
    """X-MOD: which language adapters the compared texts ran through."""
    if not languages:
        return ""
    shown = ", ".join(languages[:8]) + (f", … ({len(languages) - 8} more)" if len(languages) > 8 else "")
    return f"; adapters: {shown}"


BAR_WIDTH = 16
BAR_DECADES = 8  # the bar spans tol·1e-8 .. tol·10 on a log scale: error growth with depth shows at a glance


def log_bar(value: float, tol: float, width: int = BAR_WIDTH) -> str:
    """max|Δ| against the tolerance on a log scale: empty for an exact 0, a `|` where the tolerance sits, full past
    ten times it (and for NaN/inf)."""
    tick = width * BAR_DECADES // (BAR_DECADES + 1)  # the tolerance's position
    if value == 0:
        filled = 0
    elif not math.isfinite(value) or tol <= 0:
        filled = width
    else:
        decades = math.log10(value / tol) + BAR_DECADES  # 0 at tol·1e-8, BAR_DECADES at tol
        filled = max(1, min(width, round(decades / (BAR_DECADES + 1) * width)))
    cells = ["█" if i < filled else "·" for i in range(width)]
    if filled <= tick:
        cells[tick] = "|"
    return "".join(cells)


@dataclass
class Col:
    """A table column: numbers and verdicts never wrap and are never cut; text may fold onto more lines. On a narrow
    terminal optional columns (`drop` 1, 2, …: first to last) are left out until the rest fits."""

    header: str
    justify: str = "left"
    wrap: bool = False
    drop: int = 0
    min_width: int | None = None


FOLDED_TEXT_WIDTH = 10  # the least a text column is given before optional columns are dropped
FOLDED_TEXT_NARROWEST = 4  # … and before numbers must fold too (then nothing is left to drop)


class Fitted:
    """A table built for the width it is printed at (rich's render protocol: the printing console's width), or for
    `width` where one is given: so it fits whatever terminal or log shows it, and needs no console to be built."""

    def __init__(self, build: Callable[[int], Table], width: int | None = None) -> None:
        self.build, self.width = build, width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterable[Table]:
        yield self.build(self.width or options.max_width)


def fitted_table(
    title: str, cols: list[Col], rows: list[list[str]], show_header: bool = True, width: int | None = None
) -> Fitted:
    """A table that fits the terminal (`width`, default the one it is printed on) without cutting a number or a
    verdict: optional columns are dropped first; where even the rest does not fit, every cell folds onto more lines
    (never `…`)."""
    plain = [[Text.from_markup(cell).plain for cell in row] for row in rows]

    def needed(keep: list[int], folded: int) -> int:
        total = 1  # the left border; each column adds its padding and right border
        for i in keep:
            c = cols[i]
            natural = max([cell_len(r[i]) for r in plain] + [cell_len(c.header) if show_header else 0, 1])
            natural = max(natural, c.min_width or 0)
            total += (min(natural, folded) if c.wrap else natural) + 3
        return total

    def build(width: int) -> Table:
        keep = list(range(len(cols)))
        for i in sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: cols[i].drop):
            if needed(keep, FOLDED_TEXT_WIDTH) <= width:
                break
            keep.remove(i)
        squeezed = needed(keep, FOLDED_TEXT_NARROWEST) > width
        t = Table(title=title, title_justify="left", show_header=show_header)
        for i in keep:
            c = cols[i]
            t.add_column(
                c.header,
                justify=c.justify,  # type: ignore[arg-type]
                no_wrap=not (c.wrap or squeezed),
                overflow="fold",
                min_width=None if squeezed else c.min_width,
            )
        for row in rows:
            t.add_row(*(row[i] for i in keep))
        return t

    return Fitted(build, width)


def verdict(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[bold red]FAIL[/]"


def stage_table(rows: list[dict[str, Any]], title: str, width: int | None = None) -> Fitted:
    cols = [
        Col("stage", wrap=True),
        Col("max |Δ|", "right"),
        Col("mean |Δ|", "right", drop=1),  # at 80 columns the bar is kept and the mean left to --json/--report
        Col("at text, token", "right", drop=3),
        Col("tol", "right", drop=4),
        Col("log |Δ| / tol", drop=2, min_width=BAR_WIDTH),
        Col("", "center"),
    ]
    cells = []
    for r in rows:
        where = f"{r['text']}, {r['token']}" if r["token"] >= 0 else f"{r['text']}"
        cells.append(
            [
                escape(r["stage"]),
                f"{r['max_abs']:.3e}",
                f"{r['mean_abs']:.3e}",
                where,
                f"{r['tol']:g}",
                ("[green]" if r["ok"] else "[bold red]") + log_bar(r["max_abs"], r["tol"]) + "[/]",
                verdict(r["ok"]),
            ]
        )
    return fitted_table(title, cols, cells, width=width)


def kv_table(title: str, items: list[tuple[str, Any]], width: int | None = None) -> Fitted:
    rows = [[f"[bold]{escape(k)}[/]", escape(plain_value(v))] for k, v in items]
    return fitted_table(title, [Col("", wrap=True), Col("", wrap=True)], rows, show_header=False, width=width)


def plain_value(v: Any) -> str:
    """A value as a person reads it: lists joined by commas, mappings as key=value, None as a dash — never Python's
    own repr of a list or dict."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return ", ".join(f"{k}={plain_value(x)}" for k, x in v.items()) or "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(plain_value(x) for x in v) or "—"
    return str(v)


def config_table(rows: list[Any], title: str, width: int | None = None) -> Fitted:
    cells = [
        [escape(r.item), escape(plain_value(r.expected)), escape(plain_value(r.actual)), verdict(r.ok)] for r in rows
    ]
    cols = [Col("config", wrap=True), Col("expected", wrap=True), Col("found", wrap=True), Col("", "center")]
    return fitted_table(title, cols, cells, width=width)


def weights_table(groups: list[dict[str, Any]], title: str, width: int | None = None) -> Fitted:
    cols = [
        Col("group", wrap=True),
        Col("tensors", "right", drop=2),
        Col("max |Δ|", "right"),
        Col("rel", "right", drop=1),
        Col("worst tensor", wrap=True, drop=3),
        Col("", "center"),
    ]
    cells = [
        [escape(g["group"]), str(g["tensors"]), f"{g['max_abs']:.3e}", f"{g['rel']:.2e}", escape(g["worst"]),
         verdict(g["ok"])]
        for g in groups
    ]  # fmt: skip
    return fitted_table(title, cols, cells, width=width)
