"""Read-ahead for memory-mapped tensors: a helper thread reads the tensors the caller will use next while it computes
on the current ones.

Each tensor whose pages are not all in memory already is read with O_DIRECT into private memory (io.direct), and `view`
hands out that copy: the page cache is bypassed, which on a 2-core machine slows the matrix products beside it far less
than reading through it (docs/benchmarks.md), and a memory cap's page cache is left to the rest. Where that is not
possible (not a file mapping, no O_DIRECT) the kernel is asked for the pages instead (madvise WILLNEED) and `view`
returns the mapping. The kernel caps one WILLNEED request at the device's read-ahead size (`read_ahead_kb`, 128 KB–8
MB), so a 315 MB layer is asked for in 4 MB steps.

The copies' buffers are used again once released and held by nobody else: reading into fresh memory made the kernel
fault in and zero every page as it read, which cost system CPU and slowed the product loop beside it
(docs/benchmarks.md)."""

from __future__ import annotations

import ctypes
import mmap
import queue
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from types import TracebackType

import torch

from xlmr_tools.io.direct import DirectFiles, resident
from xlmr_tools.io.libc import libc_function
from xlmr_tools.io.memory import memory_room

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


@dataclass
class _Staged:
    done: bool = False
    data: torch.Tensor | None = None  # the bytes read (uint8); None: use the mapping
    buffer: torch.Tensor | None = None  # the buffer `data` is a view of
    refs: int = 1


Getter = Callable[[], Iterable[torch.Tensor]]


class ReadAhead:
    """`submit(key, get)`: `get` returns the tensors to read ahead (lazy views: nothing read yet); it is called on
    the helper thread, in submission order, and must not wait for the caller. `view(t)`: the copy read for `t`'s
    bytes — waiting while they are read — or `t` itself. `release(key)`: the copies of that submission may go.
    Disabled (`enabled=False`: where something else already brings the pages in), it starts no thread and `view` is
    the identity; `direct=False` keeps the page-cache read-ahead only. `limit`: the most bytes of copies held at
    once (default: half the memory this process may still fill, io.memory); a tensor beyond it is left to the page
    cache (buffers kept for reuse count too). A hint: it never fails a run."""

    def __init__(self, enabled: bool = True, direct: bool = True, limit: int | None = None) -> None:
        self.enabled = enabled
        room = memory_room() if enabled and limit is None else None  # a disabled one reads nothing: no cgroup look
        self.limit = limit if limit is not None else room // 2 if room is not None else 1 << 30
        self._held = 0  # bytes of the buffers below: the staged copies' and the idle ones
        self._idle: list[torch.Tensor] = []  # buffers of released copies, held by nobody else: read into again
        self._queue: queue.SimpleQueue[tuple[Hashable, Getter] | None] = queue.SimpleQueue()
        self._files = DirectFiles() if enabled and direct else None
        self._cond = threading.Condition()
        self._staged: dict[tuple[int, int], _Staged] = {}
        self._keys: dict[Hashable, list[tuple[int, int]]] = {}
        self._submitted = self._registered = 0
        self._closed = False
        if enabled:
            threading.Thread(target=self._run, name="xlmr-readahead", daemon=True).start()

    def submit(self, key: Hashable, get: Getter) -> None:
        if self.enabled and not self._closed:
            with self._cond:
                self._submitted += 1
            self._queue.put((key, get))

    def view(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        k = _key(t)
        with self._cond:  # a submission not yet looked at may hold t: wait until its tensors are known
            self._cond.wait_for(lambda: self._closed or k in self._staged or self._registered >= self._submitted)
            staged = self._staged.get(k)
            if staged is None:
                return t
            self._cond.wait_for(lambda: self._closed or staged.done)
            data = staged.data
        return t if data is None else data.view(t.dtype).view(t.shape)

    def release(self, key: Hashable) -> None:
        with self._cond:  # a submission under `key` not yet looked at: wait until its tensors are known
            self._cond.wait_for(lambda: self._closed or self._registered >= self._submitted)
            for k in self._keys.pop(key, []):
                staged = self._staged.get(k)
                if staged is not None:
                    staged.refs -= 1
                    if staged.refs <= 0:
                        del self._staged[k]
                        self._recycle(staged)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._staged.clear()
            self._keys.clear()
            self._idle.clear()
            self._held = 0
            self._cond.notify_all()
        self._queue.put(None)
        if self._files is not None:
            self._files.close()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            key, get = item
            try:
                tensors = [t for t in get() if t.device.type == "cpu"]
            except Exception:  # noqa: BLE001 - a hint only: the reader meets any real error itself
                tensors = []
            todo = []
            with self._cond:
                for t in tensors:
                    k = _key(t)
                    if k in self._staged:
                        self._staged[k].refs += 1
                    else:
                        self._staged[k] = _Staged()
                        todo.append((t, self._staged[k]))
                    self._keys.setdefault(key, []).append(k)
                self._registered += 1
                self._cond.notify_all()
            for t, staged in todo:
                if self._closed:
                    break
                data = None
                try:
                    if not resident(t):
                        data = self._copy(t, staged)
                        if data is None:
                            will_need(t)
                except Exception:  # noqa: BLE001 - the mapping stays usable whatever went wrong here
                    data = None
                with self._cond:
                    staged.data, staged.done = data, True
                    if data is None or self._staged.get(_key(t)) is not staged:  # unused, or released meanwhile
                        data = None
                        self._recycle(staged)
                    self._cond.notify_all()
                data = None  # this thread holds no view of a buffer while it waits: a release can reuse it
        with self._cond:
            self._cond.notify_all()

    def _copy(self, t: torch.Tensor, staged: _Staged) -> torch.Tensor | None:
        """t's bytes read with O_DIRECT into a buffer (kept in `staged.buffer`), or None."""
        if self._files is None:
            return None

        def alloc(n: int) -> torch.Tensor | None:
            staged.buffer = self._acquire(n)
            return staged.buffer

        return self._files.read(t, alloc)

    def _acquire(self, n: int) -> torch.Tensor | None:
        """A buffer of at least n bytes: an idle one of about that size, else a new one if it fits the limit (idle
        ones of other sizes give way to it)."""
        with self._cond:
            fits = [i for i, b in enumerate(self._idle) if n <= b.numel() <= n + n // 8]
            if fits:
                return self._idle.pop(min(fits, key=lambda i: self._idle[i].numel()))
            while self._idle and self._held + n > self.limit:
                self._held -= self._idle.pop(0).numel()
            if self._held + n > self.limit:
                return None
            self._held += n
        return torch.empty(n, dtype=torch.uint8)

    def _recycle(self, staged: _Staged) -> None:
        """A staged copy is gone (lock held): its buffer is kept for the next read if nobody else holds any view of
        it (a module may still have its weights in it), else it is left to them and no longer counted."""
        buf, staged.data, staged.buffer = staged.buffer, None, None
        if buf is None:
            return
        if _sole_holder(buf) and not self._closed:
            self._idle.append(buf)
        else:
            self._held -= buf.numel()


def _sole_holder(buf: torch.Tensor) -> bool:
    """Whether `buf` is the only tensor on its memory: no view of it lives anywhere (torch counts the tensors and
    storages on a storage; a torch without that count: never reuse)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return False
    return bool(count(buf.untyped_storage()._cdata) <= 2)  # buf's own reference and the storage object asked


def _key(t: torch.Tensor) -> tuple[int, int]:
    return t.data_ptr(), t.numel() * t.element_size()
