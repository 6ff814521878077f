"""How a Ctrl-C or SIGTERM ends a command of the CLI, and the steps it must not split.

A signal must end a command as interrupted at any moment, however it lands. Libraries do not always let the exception
through: torch imports numpy from C and clears any exception raised meanwhile (a SIGTERM during `import torch` vanished
and the conversion ran on and published: docs/reliability.md), and transformers' lazy imports turn it into a
ModuleNotFoundError. So the CLI's handlers (`handling_signals`) also record each signal: nothing is published after one
(`check_interrupted`), and the command's exit status and message are the interrupt's (`received`).

Python runs signal handlers in the main thread, between bytecodes and inside interruptible lock waits, so
KeyboardInterrupt or Terminated can be raised from inside `Thread.start()` (it waits for the new thread to signal
that it runs). The thread then runs its work, but a ThreadPoolExecutor never records it: its shutdown does not join
it, and a writer could create a file in a temporary folder while that folder is being removed.

Where Python cannot let an exception through (a weakref callback of the import system's module locks, a `__del__`),
it prints "Exception ignored in: ..." with a traceback and goes on. A signal landing there is recorded all the same
and ends the command as any other (above), so `handling_signals` keeps those reports of its own interrupts quiet
(sys.unraisablehook); everything else is reported as before.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from xlmr_tools.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Record:
    signals: list[int] = field(default_factory=list)  # received, in order
    complete: list[str] = field(default_factory=list)  # outputs put in place
    reported: bool = False  # an interrupt's exit status was taken (its line printed)


_record: _Record | None = None  # while `handling_signals` is in effect


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception a signal raises in the CLI: Terminated for SIGTERM, KeyboardInterrupt for SIGINT."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


_RAISED_FOR_SIGNAL = "xlmr_raised_for_signal"  # marks the exceptions raise_interrupt raises


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """The CLI's handler of SIGINT and SIGTERM: record the signal (inside `handling_signals`), then raise it."""
    if _record is not None:
        _record.signals.append(signum)
    interrupt = interrupt_for(signum)
    setattr(interrupt, _RAISED_FOR_SIGNAL, True)
    raise interrupt


def _quiet_when_recorded(previous: Any) -> Any:
    """A sys.unraisablehook that drops the report of an interrupt raise_interrupt raised (the signal is recorded,
    and ends the command with its own line) and hands every other report to `previous`."""

    def hook(unraisable: Any) -> None:
        if getattr(unraisable.exc_value, _RAISED_FOR_SIGNAL, False) and _record is not None and _record.signals:
            return
        previous(unraisable)

    return hook


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """For the length of the block (a command), SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated in the
    main thread, and each is recorded (see the module's docstring). A signal the process was started with ignored
    stays ignored (a shell starts background jobs with SIGINT ignored). The handlers before are put back at the end;
    blocks inside one share its record."""
    global _record
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = _record
    old: dict[int, Any] = {s: signal.getsignal(s) for s in _SIGNALS}
    old_hook = sys.unraisablehook
    if outer is None:
        _record = _Record()
    try:
        sys.unraisablehook = _quiet_when_recorded(old_hook)
        for signum, handler in old.items():
            if handler is not None and handler != signal.SIG_IGN:
                signal.signal(signum, raise_interrupt)
        yield
    finally:
        for signum, handler in old.items():
            if handler is not None:
                signal.signal(signum, handler)
        sys.unraisablehook = old_hook
        _record = outer


def received() -> KeyboardInterrupt | None:
    """The first signal recorded in the present `handling_signals` block, as the exception it raised (None: none,
    or no such block)."""
    if _record is None or not _record.signals:
        return None
    return interrupt_for(_record.signals[0])


def unreported() -> KeyboardInterrupt | None:
    """A recorded signal whose exit status nobody took: a library swallowed it, or mapped it to a code of its own
    (typer ends a KeyboardInterrupt during argument parsing with a silent exit 130, SIGTERM included)."""
    return None if _record is not None and _record.reported else received()


def check_interrupted() -> None:
    """Raise a recorded signal again, whatever became of its exception: called before steps that must not follow an
    interrupt (making the temporary folder, publishing it)."""
    interrupt = received()
    if interrupt is not None:
        raise interrupt


def note_complete(output: Path) -> None:
    """`output` has been put in place, complete: an interrupt after this point says so (`complete_output`)."""
    if _record is not None:
        _record.complete.append(str(output))


def exit_status(interrupt: KeyboardInterrupt) -> tuple[int, str]:
    """The exit code and the one-line message for an interrupt: what was published, or that nothing was."""
    if _record is not None:
        _record.reported = True
    done = complete_output(interrupt)
    written = f"it came as {done} was put in place, which is complete" if done else "nothing was written"
    if isinstance(interrupt, Terminated):
        return EXIT_TERMINATED, f"terminated (SIGTERM); {written}"
    return EXIT_INTERRUPTED, f"interrupted; {written}"


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block take effect when it ends, through the handlers that were in place
    (KeyboardInterrupt, Terminated, the default action, or nothing if ignored). Only the main thread receives them,
    so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    old: dict[int, Any] = {s: signal.signal(s, record) for s in _SIGNALS if signal.getsignal(s) is not None}
    # (None: a handler not installed from Python, which could not be put back; that signal is left alone)
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        for pending_signum in dict.fromkeys(pending):
            handler = old[pending_signum]
            if callable(handler):
                handler(pending_signum, None)  # raises KeyboardInterrupt or Terminated here, at the end of the block
            elif handler == signal.SIG_DFL:
                signal.raise_signal(pending_signum)


def mark_complete(interrupt: BaseException, output: Path) -> None:
    """An interrupt deferred past the step that published `output`: whoever reports it says the output is complete,
    not that nothing was written."""
    interrupt.xlmr_complete_output = str(output)  # type: ignore[attr-defined]


def complete_output(interrupt: BaseException) -> str | None:
    """The output an interrupt came after, if one was put in place: marked on it, or recorded in this command."""
    marked = getattr(interrupt, "xlmr_complete_output", None)
    if marked is None and _record is not None and _record.complete:
        return _record.complete[-1]
    return marked
