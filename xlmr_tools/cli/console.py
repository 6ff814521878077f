"""One output helper: results on stdout, diagnostics and progress on stderr, errors as one line and an exit code."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, XlmrError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
DEBUG = {"on": False}


def error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True) if err.is_terminal else \
        print(f"error: {message}", file=sys.stderr)


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
    except KeyboardInterrupt:
        _exit_interrupted()
    except Exception as e:  # noqa: BLE001 - the promise is one line, never a traceback, unless --debug
        if _raised_while_interrupted(e):  # e.g. a lock's "release unlocked lock" while Ctrl-C unwinds a wait
            _exit_interrupted()
        if DEBUG["on"]:
            raise
        error_line(f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                   "(rerun with --debug for the traceback)")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _exit_interrupted() -> NoReturn:
    error_line("interrupted; nothing was written")
    raise typer.Exit(EXIT_INTERRUPTED) from None


def _raised_while_interrupted(e: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = e.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


def print_json(data: Any, report: Path | None = None) -> None:
    text = json.dumps(data, indent=2, default=str)
    if report is not None:
        write_report(report, data)
    print(text)


def write_report(report: Path, data: Any) -> None:
    report.write_text(json.dumps(data, indent=2, default=str) + "\n")


class RichProgress:
    """The core's Progress protocol, drawn on stderr (nothing when quiet or not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet
        self._p = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                           console=err, transient=True, disable=quiet)
        self._task: Any = None
        self._bars: list[Any] = []

    def __enter__(self) -> RichProgress:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
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


def stage_table(rows: list[dict[str, Any]], title: str, texts: list[str] | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for col, justify in (("stage", "left"), ("max |Δ|", "right"), ("mean |Δ|", "right"), ("where (text, token)", "right"),
                         ("tol", "right"), ("", "center")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        where = f"{r['text']}, {r['token']}" if r["token"] >= 0 else f"{r['text']}"
        t.add_row(r["stage"], f"{r['max_abs']:.3e}", f"{r['mean_abs']:.3e}", where, f"{r['tol']:g}",
                  "[green]ok[/]" if r["ok"] else "[bold red]FAIL[/]")
    return t


def kv_table(title: str, items: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in items:
        t.add_row(k, str(v))
    return t


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def weights_table(groups: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col, justify in (("group", "left"), ("tensors", "right"), ("max |Δ|", "right"), ("rel", "right"),
                         ("worst tensor", "left"), ("", "center")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for g in groups:
        t.add_row(g["group"], str(g["tensors"]), f"{g['max_abs']:.3e}", f"{g['rel']:.2e}", g["worst"],
                  "[green]ok[/]" if g["ok"] else "[bold red]FAIL[/]")
    return t


def name_lists(weights: dict[str, Any]) -> None:
    """Missing / extra / mis-shaped tensors, on stdout (they are results)."""
    for kind in ("missing", "extra", "misshaped"):
        items = weights.get(kind) or []
        if items:
            out.print(f"[bold red]{len(items)} {kind}[/]:", highlight=False)
            for item in items[:20]:
                out.print(f"  {item['name']} {item['a']} vs {item['b']}" if isinstance(item, dict) else f"  {item}",
                          highlight=False)
            if len(items) > 20:
                out.print(f"  … and {len(items) - 20} more", highlight=False)
