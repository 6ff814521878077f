"""The `xlmr` entry point: registers the commands and the global --debug flag."""

from __future__ import annotations

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
    app()
