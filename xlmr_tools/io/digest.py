"""The source checkpoint's sha256, without importing torch.

The model card records the source's sha256. Hashing is CPU-bound (about as long as copying the file), so the CLI
starts it in a background thread before it imports torch (~2 s), and the hash's reads warm the page cache for the
copy that follows. The CLI hands it to `convert()`, which uses it where it is of the file convert opened
(`digest_for`), or starts one itself. The hash reads the opened file (io/opened.py), so it is of the bytes converted
even if the path is renamed or replaced meanwhile.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
from pathlib import Path

from xlmr_tools.errors import BadInput
from xlmr_tools.io.opened import OpenedFile

_CHUNK = 1024 * 1024


def _opened(source: Path | OpenedFile) -> OpenedFile:
    return source if isinstance(source, OpenedFile) else OpenedFile(source)


class SourceDigest:
    """sha256 of one opened file, computed by a daemon thread (an early error must not wait for a 40 GB hash)."""

    def __init__(self, source: Path | OpenedFile, ahead: float = float("inf")) -> None:
        self._file = _opened(source)  # held open while hashing
        self.path = self._file.path
        self.identity = self._file.identity
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
            size = os.fstat(self._file.fileno()).st_size
            # Hashing straight from the page cache: no copy into a buffer (less CPU than read(): docs/benchmarks.md)
            mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
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
        if not self._file.unchanged():  # written to in place (size or mtime): the bytes hashed may not be those read
            raise BadInput(self.path, "the file changed while it was being converted")
        return self._hex

    def cancel(self) -> None:
        self._cancel.set()

    def pace(self, ahead: int) -> None:
        """Hash at most `ahead` bytes beyond what the reader reported (`advance`): under a memory cap, pages the
        hash reads far ahead of the writer are evicted before the writer copies them, and the source is read from
        disk twice (docs/benchmarks.md)."""
        self._ahead = ahead

    def advance(self, n: int) -> None:
        """The reader (convert's writer, which reads the source in about file order) has moved n bytes on."""
        self._reached += n

    def release(self) -> None:
        """The reader is done: the hash runs to the end at its own speed."""
        self._ahead = float("inf")


def digest_for(source: Path | OpenedFile, started: SourceDigest | None = None) -> SourceDigest:
    """The digest of `source` as opened: `started` (the CLI's, begun before torch was imported) where it hashes this
    very file (same device, inode, size and mtime), else a new one; a `started` of another file is cancelled, since
    it hashes a file that is not converted."""
    opened = _opened(source)
    if started is not None:
        if started.identity == opened.identity:
            return started
        started.cancel()
    return SourceDigest(opened)
