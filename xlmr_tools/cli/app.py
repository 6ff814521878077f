"""The `xlmr` entry point: registers the commands and the global --debug flag."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from .. import __version__
from . import console
from .convert_cmd import convert
from .diff_cmd import diff
from .inspect_cmd import inspect
from .verify_cmd import verify

app = typer.Typer(
    name="xlmr", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="fairseq XLM-RoBERTa -> Hugging Face transformers, proven exact.\n\n"
         "Exit codes: 0 ok, 1 verification or diff failed, 2 bad input, 130 interrupted.",
)


def _version(value: bool) -> None:
    if value:
        print(f"xlmr-tools {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    console.DEBUG["on"] = debug


app.command()(inspect)
app.command()(convert)
app.command()(verify)
app.command()(diff)


def main() -> None:
    """The console script. Once the command is done and stdout/stderr are flushed, the process ends without
    interpreter teardown: unloading torch and transformers takes ~0.5 s (measured) and every output file is already
    closed and renamed into place by then."""
    try:
        app()
        code = 0
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)
