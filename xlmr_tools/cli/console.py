"""One output helper: results on stdout, diagnostics and progress on stderr, errors as one line and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from xlmr_tools.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    BadInput,
    XlmrError,
)
from xlmr_tools.interrupts import exit_status, received
from xlmr_tools.io.atomic_folder import atomic_write_text
from xlmr_tools.render.terminal import human_bytes

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
DEBUG = {"on": False}


def error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True) if err.is_terminal else print(
        f"error: {message}", file=sys.stderr
    )


def warn(message: str) -> None:
    if err.is_terminal:
        err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    else:
        print(f"warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """Something the user should know that needs no action (xlmr handles it): not a warning."""
    if err.is_terminal:
        err.print(f"[cyan]note:[/] {escape(message)}", highlight=False)
    else:
        print(f"note: {message}", file=sys.stderr)


def set_debug(debug: bool) -> None:
    """`--debug` after the command (`xlmr convert … --debug`) as before it: the error text asks users to rerun so."""
    if debug:
        DEBUG["on"] = True


def check_report_path(report: Path | None) -> None:
    """`--report FILE` is checked before any work: a run of minutes must not end on a path it cannot write (exit 2,
    nothing written)."""
    if report is None:
        return
    parent = report.parent if str(report.parent) else Path(".")
    if report.is_dir():
        raise BadInput(report, "--report: is a folder; give a file name (FILE.json or FILE.html)")
    if not parent.is_dir():
        raise BadInput(parent, "--report: folder does not exist")
    try:  # access() says yes to root where nothing can be created (read-only mounts): create and remove a file
        fd, probe = tempfile.mkstemp(prefix=f".{report.name}.xlmr-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BadInput(parent, f"--report: cannot write here ({e.strerror or e})") from None


def texts_note(texts: list[str] | None, texts_file: Path | None) -> None:
    """--text/--texts-file replace the built-in sample texts: say so (the built-in ones test a 512-token text and
    characters unknown to the vocabulary)."""
    if texts or texts_file is not None:
        from xlmr_tools.compare.texts import DEFAULT_TEXTS

        note(
            f"checking on your texts instead of the {len(DEFAULT_TEXTS)} built-in ones (multilingual, one of 512 "
            "tokens, one with characters unknown to the vocabulary)"
        )


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
        if DEBUG["on"]:  # the traceback, and still the input's own exit code: bad input is not a bug
            traceback.print_exc()
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
        from xlmr_tools.render.html_report import provenance, write_html_report

        write_html_report(report, kind, data, provenance(["xlmr", *without_secrets(sys.argv[1:])]))
        return
    atomic_write_text(report, json.dumps(data, indent=2, default=str) + "\n")


def without_secrets(argv: list[str]) -> list[str]:
    """The command line as a report may show it: `--token`'s value replaced (a report is meant to be shared)."""
    shown, hide = [], False
    for arg in argv:
        if hide:
            shown.append("***")
        elif arg.startswith("--token="):
            arg = "--token=***"
        if not hide:
            shown.append(arg)
        hide = arg == "--token"
    return shown


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
        self._label, self._total, self._steps = "", 0, 0

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
        self._label, self._total, self._steps = text, total, 0
        self._advance = self._counter(text, total, lambda n: str(n))

    def advance(self, n: int) -> None:
        advance = getattr(self, "_advance", None)
        if advance is not None:
            advance(n)

    def step(self, text: str) -> None:
        """One line per step (a layer takes seconds to minutes: a log shows where a run is, never silent)."""
        with self._lock:
            self._steps += 1
            self._line(f"{self._label}: {text} ({self._steps} of {max(self._total, self._steps)})")

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


class _Amount(ProgressColumn):
    """Bytes for the byte bars (`bar`), "k/n" for counters of items and steps (`start`)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Any) -> Any:
        if task.fields.get("bytes"):
            return self._bytes.render(task)
        return Text(f"{int(task.completed)}/{int(task.total or 0)}", style="progress.download")


class RichProgress:
    """The core's Progress protocol, drawn on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet
        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            _Amount(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=quiet,
        )
        self._task: Any = None
        self._label, self._steps = "", 0
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
        """A counter beside the byte bars (convert's writer keeps writing while the layers are compared)."""
        if self._task is not None:
            self._p.remove_task(self._task)
        self._label, self._steps = text, 0
        self._task = self._p.add_task(text, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._p.advance(self._task, n)

    def step(self, text: str) -> None:
        if self._task is None:
            return
        self._steps += 1
        total = max(next(t.total or 0 for t in self._p.tasks if t.id == self._task), self._steps)
        self._p.update(self._task, description=f"{self._label}: {text}", completed=self._steps - 1, total=total)

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        task = self._p.add_task(text, total=total, bytes=True)  # rich's Progress locks: safe from worker threads
        self._bars.append(task)
        return lambda n: self._p.advance(task, n)

    def _finish(self) -> None:
        for task in [self._task, *self._bars]:
            if task is not None:
                self._p.remove_task(task)
        self._task = None
        self._bars.clear()


def name_lists(weights: dict[str, Any]) -> None:
    """Missing / extra / mis-shaped tensors, on stdout (they are results)."""
    for kind in ("missing", "extra", "misshaped"):
        items = weights.get(kind) or []
        if items:
            out.print(f"[bold red]{len(items)} {kind}[/]:", highlight=False)
            for item in items[:20]:
                out.print(
                    escape(f"  {item['name']} {item['a']} vs {item['b']}" if isinstance(item, dict) else f"  {item}"),
                    highlight=False,
                )
            if len(items) > 20:
                out.print(f"  … and {len(items) - 20} more", highlight=False)
