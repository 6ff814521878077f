"""A memory-mapped tensor's bytes read straight from its file (O_DIRECT) into private memory, and whether its pages
are in the page cache already (mincore).

Why: on this project's 2-core machine, matrix products slowed far more while the next layer was read through the page
cache (mmap + madvise) than while it was read with O_DIRECT (docs/benchmarks.md). Linux only;
everything here answers None/False where it cannot do its part, and the caller keeps the mapping."""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from xlmr_tools.io.libc import libc_function

ALIGN = 4096  # O_DIRECT wants offsets, lengths and addresses aligned to the logical block size (512 B or 4 KiB)
CHUNK = 64 << 20  # one preadv: Linux caps a read at ~2 GiB, and smaller calls let a stop request take effect
_MAPS = Path("/proc/self/maps")

_mincore = libc_function("mincore", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p])


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    offset: int
    device: tuple[int, int]  # major, minor
    inode: int
    path: str


def _allocate(n: int) -> torch.Tensor:
    return torch.empty(n, dtype=torch.uint8)


class DirectFiles:
    """Finds the file and offset behind a mapped address and keeps one O_DIRECT descriptor per file."""

    def __init__(self) -> None:
        self._maps: list[_Mapping] = []
        self._fds: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def read(self, t: torch.Tensor, alloc: Callable[[int], torch.Tensor | None] = _allocate) -> torch.Tensor | None:
        """A copy of contiguous CPU tensor `t`'s bytes read from the file it maps (uint8, in memory whose start is
        aligned to the element size), or None where that is not possible: not a file mapping, a file that was
        replaced, a file system without O_DIRECT, a short read. `alloc(n)`: a uint8 buffer of at least n bytes to
        read into (the copy is a view of it), or None for no room."""
        n = t.numel() * t.element_size()
        if t.device.type != "cpu" or n == 0 or not t.is_contiguous():
            return None
        where = self._locate(t.data_ptr(), n)
        if where is None:
            return None
        fd, offset = where
        if offset % t.element_size():
            return None  # the copy could not be viewed as `t`'s dtype
        lo = offset - offset % ALIGN
        hi = -(-(offset + n) // ALIGN) * ALIGN
        buf = alloc(hi - lo + ALIGN)  # whole blocks, and one more to align the start
        if buf is None:
            return None
        shift = -buf.data_ptr() % ALIGN
        region = buf[shift : shift + hi - lo]
        view = memoryview(region.numpy())  # type: ignore[arg-type]
        pos, need = 0, offset + n - lo
        try:
            while pos < need:
                got = os.preadv(fd, [view[pos : pos + min(CHUNK, hi - lo - pos)]], lo + pos)
                if got <= 0:
                    return None
                pos += got
        except OSError:
            return None
        return region[offset - lo : offset - lo + n]

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                if fd is not None:
                    os.close(fd)
            self._fds.clear()

    def _locate(self, ptr: int, n: int) -> tuple[int, int] | None:
        with self._lock:
            m = self._find(ptr, n)
            if m is None:
                self._maps = _read_maps()  # a file mapped since the last look
                m = self._find(ptr, n)
            if m is None:
                return None
            fd = self._fds.get(m.path, -1)
            if fd == -1:
                fd = self._fds[m.path] = _open_direct(m)
            return None if fd is None else (fd, ptr - m.start + m.offset)

    def _find(self, ptr: int, n: int) -> _Mapping | None:
        return next((m for m in self._maps if m.start <= ptr and ptr + n <= m.end), None)


def _read_maps() -> list[_Mapping]:
    out = []
    try:
        lines = _MAPS.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].startswith("/") or parts[5].endswith(" (deleted)"):
            continue
        start, end = (int(v, 16) for v in parts[0].split("-"))
        major, minor = (int(v, 16) for v in parts[3].split(":"))
        out.append(_Mapping(start, end, int(parts[2], 16), (major, minor), int(parts[4]), parts[5]))
    return out


def _open_direct(m: _Mapping) -> int | None:
    """An O_DIRECT descriptor of the mapped file, None where the path no longer names that file or O_DIRECT is
    refused (tmpfs, some FUSE and network file systems)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        fd = os.open(m.path, os.O_RDONLY | flag)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_ino != m.inode or (os.major(st.st_dev), os.minor(st.st_dev)) != m.device:
        os.close(fd)
        return None
    return fd


def resident(t: torch.Tensor) -> bool:
    """Whether every page under CPU tensor `t` is in memory (then reading it again from disk would be waste)."""
    n = t.numel() * t.element_size()
    if _mincore is None or t.device.type != "cpu" or n == 0:
        return True
    start = t.data_ptr() - t.data_ptr() % mmap.PAGESIZE
    length = t.data_ptr() + n - start
    pages = -(-length // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    if _mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0:
        return True  # anonymous or unmapped memory (ENOMEM): nothing to read from a file
    return bool(torch.frombuffer(bytearray(vec), dtype=torch.uint8).bitwise_and(1).all())
