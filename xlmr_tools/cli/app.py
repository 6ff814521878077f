"""The `xlmr` entry point: registers the commands, the global --debug/--version flags and shell completion, with
huggingface_hub's `hf` conventions (-h, `version`, `--token`/`--cache-dir`)."""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from xlmr_tools._version import __version__
from xlmr_tools.cli import console
from xlmr_tools.cli.convert_cmd import convert
from xlmr_tools.cli.diff_cmd import diff
from xlmr_tools.cli.inspect_cmd import inspect
from xlmr_tools.cli.verify_cmd import verify
from xlmr_tools.errors import EXIT_INTERNAL
from xlmr_tools.interrupts import exit_status, handling_signals, raise_interrupt, unreported


class _Commands(TyperGroup):
    """Every command runs inside `console.errors_to_exit`: exceptions become one stderr line and their documented
    exit code in one place, around the whole command — its rendering included."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        with console.errors_to_exit():
            return super().invoke(ctx)


app = typer.Typer(
    name="xlmr",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="fairseq XLM-RoBERTa -> Hugging Face transformers, proven exact.\n\n"
    "Exit codes: 0 ok, 1 verification or diff failed, 2 bad input, 70 internal error (a bug: please report "
    "it), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
)


def _version(value: bool) -> None:
    if value:
        version()
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors (also after the command).")
    ] = False,
    show_version: Annotated[
        bool, typer.Option("-V", "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    console.DEBUG["on"] = debug
    _terminate_like_interrupt()


def version() -> None:
    """Print the version (as `xlmr --version`)."""
    print(f"xlmr-tools {__version__}")


def _terminate_like_interrupt() -> None:
    """SIGTERM (timeout, a container stop, a batch scheduler) unwinds like Ctrl-C: temporary output is removed and
    the command exits 143. `run` has set it already; this is for the app invoked in-process without `run` (typer's
    test runner). Only the main thread may set handlers (a library caller's thread keeps its own)."""
    with contextlib.suppress(ValueError):
        if signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, raise_interrupt)


app.command()(inspect)
app.command()(convert)
app.command()(verify)
app.command()(diff)
app.command()(version)


def main() -> NoReturn:
    """The console script (see `xlmr_tools.cli.main`, which begins handling signals before this module loads)."""
    from xlmr_tools.cli import main as console_script

    console_script()


def run(argv: list[str] | None = None) -> int:
    """One command, its exit code: exceptions are mapped to codes here, once, around the whole command. A Ctrl-C or
    SIGTERM at any moment makes it the interrupt's code (130/143) with its one line, also where a library swallowed
    the exception or turned it into another error (interrupts.py)."""
    with handling_signals():
        try:
            code = _run(argv)
        except KeyboardInterrupt as e:  # outside the command's own mapping (typer building the command)
            code = _report_interrupt(e)
        swallowed = unreported()
        if swallowed is not None:  # typer's silent 130 for one while parsing, or a run that carried on
            code = _report_interrupt(swallowed)
        return code


def _report_interrupt(interrupt: KeyboardInterrupt) -> int:
    code, message = exit_status(interrupt)
    with contextlib.suppress(Exception):
        console.error_line(message)
    return code


def _run(argv: list[str] | None) -> int:
    try:
        app(args=argv, prog_name="xlmr")
        code = 0
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except Exception as e:  # noqa: BLE001 - a bug anywhere (rendering included): one line and its own code
        if console.DEBUG["on"]:
            traceback.print_exc()
        with contextlib.suppress(typer.Exit):
            console.internal_error(e)
        code = EXIT_INTERNAL
    return code
