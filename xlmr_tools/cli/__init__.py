"""The `xlmr` command line: thin modules that parse, call the core, render.

`main`, the `xlmr` console script, lives here and not in app.py: its signal handling begins before typer, rich and
the commands are imported (a noticeable time on a busy machine), so that a Ctrl-C or SIGTERM from the first line of
xlmr's own code on ends the command as interrupted (130/143), never with a traceback.
"""

from __future__ import annotations

from typing import NoReturn


def main() -> NoReturn:
    """The console script: run one command and end the process with its exit code. Once the command is done and
    stdout/stderr are flushed, the process ends without interpreter teardown: unloading torch and transformers
    takes a noticeable time, and every output file is already closed and renamed into place by then."""
    import contextlib
    import os
    import sys

    from xlmr_tools.interrupts import deferred_interrupts, exit_status, handling_signals, received

    code: int | None = None
    with handling_signals():
        try:
            # A signal raised inside an import can come out as another error (Python 3.11 wraps one raised in a
            # class body's __set_name__ in a RuntimeError), so the CLI's imports take it once they are done.
            with deferred_interrupts():
                from xlmr_tools.cli.app import run

            code = run()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
                    stream.flush()
        except BaseException as e:  # before `run` took over (importing the CLI), or after it was done
            interrupt = e if isinstance(e, KeyboardInterrupt) else received()
            if interrupt is None:
                raise
            if code is None:
                code, message = exit_status(interrupt)
                with contextlib.suppress(Exception):
                    print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(code)
