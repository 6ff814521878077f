"""Steps a Ctrl-C or SIGTERM must not split.

Python runs signal handlers in the main thread, between bytecodes and inside interruptible lock waits, so
KeyboardInterrupt or Terminated can be raised from inside `Thread.start()` (it waits for the new thread to signal
that it runs). The thread then runs its work, but a ThreadPoolExecutor never records it: its shutdown does not join
it, and a writer could create a file in a temporary folder while that folder is being removed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    return getattr(interrupt, "xlmr_complete_output", None)
