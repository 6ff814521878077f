"""The source checkpoint's sha256, without importing torch.

The model card records the source's sha256. Hashing is CPU-bound (~1 GB/s with SHA-NI, ~3.5 s for 3.2 GB: as long
as copying the file), so the CLI starts it in a background thread before it imports torch (~2 s), and the hash's
reads warm the page cache for the copy that follows. `convert()` takes a started digest of the same file, or starts
one itself.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
from pathlib import Path

from xlmr_tools.errors import BadInput

_CHUNK = 1024 * 1024


def _identity(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class SourceDigest:
    """sha256 of one file, computed by a daemon thread (an early error must not wait for a 40 GB hash)."""

    def __init__(self, path: Path, ahead: float = float("inf")) -> None:
        self.path = path
        self.identity = _identity(path)
        self._cancel = threading.Event()
        self._hex: str | None = None
        self._error: BaseException | None = None
        self._ahead = ahead  # how far the hash may run beyond the reader's bytes (see `pace`)
        self._reached = 0
        self._thread = threading.Thread(target=self._run, name="xlmr-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        h = hashlib.sha256()
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                # Hashing straight from the page cache: no copy into a buffer (~0.5 s of CPU less on 3 GB than read())
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
            if mm is not None:
                mm.madvise(mmap.MADV_SEQUENTIAL)
                with mm, memoryview(mm) as view:
                    for i in range(0, size, _CHUNK):
                        while i > self._reached + self._ahead and not self._cancel.is_set():
                            time.sleep(0.005)
                        if self._cancel.is_set():
                            break
                        h.update(view[i : i + _CHUNK])  # releases the GIL: runs beside imports and the writer
            self._hex = h.hexdigest()
        except BaseException as e:  # noqa: BLE001 - reported to whoever asks for the result
            self._error = e

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise BadInput(self.path, f"cannot read it to hash it: {self._error}")
        if self._cancel.is_set() or self._hex is None:
            raise RuntimeError("the digest was cancelled")
        if _identity(self.path) != self.identity:
            raise BadInput(self.path, "the file changed while it was being converted")
        return self._hex

    def cancel(self) -> None:
        self._cancel.set()

    def pace(self, ahead: int) -> None:
        """Hash at most `ahead` bytes beyond what the reader reported (`advance`): under a memory cap, pages the
        hash reads far ahead of the writer are evicted before the writer copies them, and the source is read from
        disk twice (measured at XL-36 under a 3.5 GB cap: 34 s without the hash, 43 s with it running ahead)."""
        self._ahead = ahead

    def advance(self, n: int) -> None:
        """The reader (convert's writer, which reads the source in about file order) has moved n bytes on."""
        self._reached += n

    def release(self) -> None:
        """The reader is done: the hash runs to the end at its own speed."""
        self._ahead = float("inf")


_started: dict[tuple, SourceDigest] = {}
_lock = threading.Lock()


def start_digest(path: Path) -> SourceDigest:
    """Begin hashing `path` now (the CLI calls this before importing torch)."""
    with _lock:
        key = _identity(path)
        if key not in _started:
            _started[key] = SourceDigest(path)
        return _started[key]


def take_digest(path: Path) -> SourceDigest:
    """The digest already running for this very file (same inode, size and mtime), else a new one."""
    with _lock:
        digest = _started.pop(_identity(path), None)
    return digest if digest is not None else SourceDigest(path)
