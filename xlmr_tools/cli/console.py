"""One output helper: results on stdout, diagnostics and progress on stderr, errors as one line and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from xlmr_tools.errors import EXIT_FAILED, EXIT_INTERNAL, XlmrError
from xlmr_tools.interrupts import exit_status, received
from xlmr_tools.io.atomic_folder import atomic_write_text

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
DEBUG = {"on": False}


def error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True) if err.is_terminal else print(
        f"error: {message}", file=sys.stderr
    )


def warn(message: str) -> None:
    if err.is_terminal:
        err.print(f"[yellow]warning:[/] {message}", highlight=False)
    else:
        print(f"warning: {message}", file=sys.stderr)


def exit_failed(what: str, failures: list[str]) -> NoReturn:
    """A comparison that failed (verify, diff): one stderr line with the first problem and how many more, exit 1."""
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    error_line(f"{what}: {failures[0]}{more}")
    raise typer.Exit(EXIT_FAILED)


def warn_if_trusting(trust: bool) -> None:
    if trust:
        warn("--trust-checkpoint: unpickling without the allowlist; a hostile file can run code")


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Map our exceptions to one stderr line and the documented exit code; tracebacks only with --debug."""
    try:
        yield
    except typer.Exit:
        raise
    except XlmrError as e:
        if DEBUG["on"]:
            raise
        error_line(str(e))
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        _exit_interrupted(e)
    except Exception as e:
        if _is_usage_error(e):
            raise  # click prints the usage and the problem and exits 2, as every click program does
        interrupt = _raised_while_interrupted(e)
        if interrupt is not None:  # e.g. a lock's "release unlocked lock" while Ctrl-C unwinds a wait
            _exit_interrupted(interrupt)
        if DEBUG["on"]:
            raise
        internal_error(e)


def performance_line(perf: Any) -> str:
    """The output check's compute against the FLOP bound of its real tokens (compare/flops.py)."""
    if perf is None:
        return ""
    padding = perf.padded_tokens / perf.tokens - 1 if perf.tokens else 0.0
    return (
        f"compute: {perf.flops / 1e9:,.1f} GFLOP on {perf.tokens:,} real tokens ({padding:.0%} padding run) in "
        f"{perf.seconds:.1f} s = {perf.achieved_flops / 1e9:,.1f} GFLOPS; GEMM peak measured now "
        f"{perf.peak_flops / 1e9:,.0f} GFLOPS: {perf.seconds / perf.bound_seconds:.2f}× the FLOP bound"
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


def _is_usage_error(e: Exception) -> bool:
    """click's own errors (an unknown option, a missing argument): typer vendors click, so they are told by what
    they are, a ClickException with its exit code and `show`, not by an import of a private module."""
    return any(c.__name__ == "ClickException" for c in type(e).__mro__) and hasattr(e, "show")


def internal_error(e: BaseException) -> NoReturn:
    """A bug, not bad input: its own exit code, and how to report it."""
    first = str(e).splitlines()[0] if str(e) else ""
    error_line(
        f"internal error ({type(e).__name__}: {first}); this is a bug in xlmr-tools, not a problem with "
        "your files: please report it with the output of the same command run as `xlmr --debug ...`"
    )
    raise typer.Exit(EXIT_INTERNAL) from None


def _exit_interrupted(e: KeyboardInterrupt) -> NoReturn:
    code, message = exit_status(e)
    error_line(message)
    raise typer.Exit(code) from None


def _raised_while_interrupted(e: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    cause: BaseException | None = e.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return received()  # a signal a library turned into this error without chaining it


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def write_report(report: Path, data: Any, kind: str) -> None:
    """--report FILE: JSON, or a self-contained HTML page when FILE ends in .html."""
    if report.suffix.lower() in (".html", ".htm"):
        from xlmr_tools.ops.html_report import provenance, write_html_report

        write_html_report(report, kind, data, provenance(["xlmr", *sys.argv[1:]]))
        return
    atomic_write_text(report, json.dumps(data, indent=2, default=str) + "\n")


def progress(quiet: bool) -> RichProgress | PlainProgress:
    """Bars on a terminal; on anything else (a log file, CI, a batch job) plain lines: one per stage and a
    percentage at most every few seconds, so a long run in a log is never silent."""
    return RichProgress(quiet) if quiet or err.is_terminal else PlainProgress()


class PlainProgress:
    """The core's Progress protocol as plain stderr lines (thread-safe: writing and re-reading report at once)."""

    def __init__(self, every: float | None = None) -> None:
        self.every = every if every is not None else float(os.environ.get("XLMR_PROGRESS_SECONDS", "5"))
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self._start:7.1f}s] {text}", file=sys.stderr, flush=True)

    def stage(self, text: str) -> None:
        with self._lock:
            self._line(text)

    def start(self, text: str, total: int) -> None:
        self._advance = self._counter(text, total, lambda n: str(n))

    def advance(self, n: int) -> None:
        advance = getattr(self, "_advance", None)
        if advance is not None:
            advance(n)

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        """Bars count bytes (the Progress protocol); `start` counts items."""
        return self._counter(text, total, human_bytes)

    def _counter(self, text: str, total: int, unit: Callable[[int], str]) -> Callable[[int], None]:
        done = [0]
        last = [time.monotonic()]
        with self._lock:
            self._line(f"{text}: 0%")

        def advance(n: int) -> None:
            with self._lock:
                before = done[0]
                done[0] += n
                now = time.monotonic()
                finished = total > 0 and before < total <= done[0]
                if finished or now - last[0] >= self.every:
                    last[0] = now
                    pct = 100.0 * done[0] / total if total else 100.0
                    self._line(f"{text}: {pct:.0f}% ({unit(done[0])} of {unit(total)})")

        return advance


class RichProgress:
    """The core's Progress protocol, drawn on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet
        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=quiet,
        )
        self._task: Any = None
        self._bars: list[Any] = []

    def __enter__(self) -> RichProgress:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._p.__exit__(*exc)

    def stage(self, text: str) -> None:
        if self.enabled:
            self._p.console.log(text) if err.is_terminal else None
            self._finish()

    def start(self, text: str, total: int) -> None:
        self._finish()
        self._task = self._p.add_task(text, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._p.advance(self._task, n)

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        task = self._p.add_task(text, total=total)  # rich's Progress locks: safe from worker threads
        self._bars.append(task)
        return lambda n: self._p.advance(task, n)

    def _finish(self) -> None:
        for task in [self._task, *self._bars]:
            if task is not None:
                self._p.remove_task(task)
        self._task = None
        self._bars.clear()


BAR_WIDTH = 16
BAR_DECADES = 8  # the bar spans tol·1e-8 .. tol·10 on a log scale: error growth with depth shows at a glance


def log_bar(value: float, tol: float, width: int = BAR_WIDTH) -> str:
    """max|Δ| against the tolerance on a log scale: empty for an exact 0, a `|` where the tolerance sits, full past
    ten times it (and for NaN/inf)."""
    import math

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


def stage_table(rows: list[dict[str, Any]], title: str, texts: list[str] | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for col, justify in (
        ("stage", "left"),
        ("max |Δ|", "right"),
        ("mean |Δ|", "right"),
        ("at text, token", "right"),
        ("tol", "right"),
        ("log |Δ| / tol", "left"),
        ("", "center"),
    ):
        bar = col.startswith("log")  # numbers and bars never wrap (narrow terminals squeeze the position column)
        t.add_column(col, justify=justify, no_wrap=not col.startswith("at"), min_width=BAR_WIDTH if bar else None)  # type: ignore[arg-type]
    for r in rows:
        where = f"{r['text']}, {r['token']}" if r["token"] >= 0 else f"{r['text']}"
        t.add_row(
            r["stage"],
            f"{r['max_abs']:.3e}",
            f"{r['mean_abs']:.3e}",
            where,
            f"{r['tol']:g}",
            ("[green]" if r["ok"] else "[bold red]") + log_bar(r["max_abs"], r["tol"]) + "[/]",
            "[green]ok[/]" if r["ok"] else "[bold red]FAIL[/]",
        )
    return t


def kv_table(title: str, items: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in items:
        t.add_row(k, str(v))
    return t


def human_bytes(n: int) -> str:
    return filesize.decimal(n)


def weights_table(groups: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col, justify in (
        ("group", "left"),
        ("tensors", "right"),
        ("max |Δ|", "right"),
        ("rel", "right"),
        ("worst tensor", "left"),
        ("", "center"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for g in groups:
        t.add_row(
            g["group"],
            str(g["tensors"]),
            f"{g['max_abs']:.3e}",
            f"{g['rel']:.2e}",
            g["worst"],
            "[green]ok[/]" if g["ok"] else "[bold red]FAIL[/]",
        )
    return t


def name_lists(weights: dict[str, Any]) -> None:
    """Missing / extra / mis-shaped tensors, on stdout (they are results)."""
    for kind in ("missing", "extra", "misshaped"):
        items = weights.get(kind) or []
        if items:
            out.print(f"[bold red]{len(items)} {kind}[/]:", highlight=False)
            for item in items[:20]:
                out.print(
                    f"  {item['name']} {item['a']} vs {item['b']}" if isinstance(item, dict) else f"  {item}",
                    highlight=False,
                )
            if len(items) > 20:
                out.print(f"  … and {len(items) - 20} more", highlight=False)
