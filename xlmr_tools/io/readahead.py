"""Read-ahead for memory-mapped tensors: the kernel is asked (madvise WILLNEED) to read the pages of tensors the
caller will touch next, from a helper thread, while the caller computes on the current ones.

The kernel caps one WILLNEED request at the device's read-ahead size (`read_ahead_kb`, 128 KB–8 MB), so a
315 MB layer is asked for in 4 MB steps; each step only queues I/O (no page is copied by the CPU), which is why this
helps on 2 cores where a thread touching the pages itself took the core the matrix products needed."""

from __future__ import annotations

import ctypes
import mmap
import queue
import threading
from collections.abc import Callable, Iterable

import torch

from xlmr_tools.io.libc import libc_function

STEP = 4 << 20
_WILLNEED = getattr(mmap, "MADV_WILLNEED", 3)


_madvise = libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])


def will_need(t: torch.Tensor) -> None:
    """Ask the kernel to read the pages under `t` (a CPU tensor; a no-op elsewhere or without madvise)."""
    n = t.numel() * t.element_size()
    if _madvise is None or t.device.type != "cpu" or n == 0:
        return
    start = t.data_ptr() - t.data_ptr() % mmap.PAGESIZE
    end = t.data_ptr() + n
    for at in range(start, end, STEP):
        _madvise(ctypes.c_void_p(at), ctypes.c_size_t(min(STEP, end - at)), _WILLNEED)


class ReadAhead:
    """A daemon thread that takes `submit(get)` — a callable returning the tensors to read ahead, called on the
    thread (getting them may wait, e.g. for a tensor still being written) — and asks for their pages in order.
    Disabled (`enabled=False`: where something else already brings the pages in), it starts no thread."""

    def __init__(self, enabled: bool = True) -> None:
        self._queue: queue.SimpleQueue[Callable[[], Iterable[torch.Tensor]] | None] = queue.SimpleQueue()
        self.enabled = enabled
        if enabled:
            threading.Thread(target=self._run, name="xlmr-readahead", daemon=True).start()

    def submit(self, get: Callable[[], Iterable[torch.Tensor]]) -> None:
        if self.enabled:
            self._queue.put(get)

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (get := self._queue.get()) is not None:
            try:
                for t in get():
                    will_need(t)
            except Exception:  # noqa: BLE001 - a hint only: the reader meets any real error itself
                continue
