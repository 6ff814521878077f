"""A source file opened once, and read only through that opening.

A conversion reads its checkpoint several times: torch maps it, the writer copies tensor bytes from it, the hash for the
model card reads it. Each opening the path again, a rename during the conversion made them read different files (the
card named another file's sha256: docs/reliability.md). So the file is opened once, and every reader that takes a path
is given `/proc/self/fd/N` (`readable`), which opens that very file whatever the path names by then.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xlmr_tools.errors import BadInput

_PROC_FD = Path("/proc/self/fd")


class OpenedFile:
    """One regular file, held open for the life of this object. `path` is the name it was opened by (for
    messages); `identity` (device, inode, size, mtime) is the opened file's when it was opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:  # O_NONBLOCK: a FIFO put at the path does not hang the open; a regular file ignores it
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise BadInput(path, f"cannot open it ({e.strerror or e})") from None
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            self._fd = -1
            raise BadInput(path, "is not a regular file")
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def fileno(self) -> int:
        return self._fd

    @property
    def size(self) -> int:
        return self.identity[2]

    @property
    def readable(self) -> Path:
        """A path that opens this very file: /proc/self/fd/N, or, where there is no /proc, the path itself (then
        only `unchanged` guards against a rename)."""
        return _PROC_FD / str(self._fd) if _PROC_FD.is_dir() else self.path

    def unchanged(self) -> bool:
        """Whether the opened file still has the size and mtime it had when opened (not written to meanwhile)."""
        st = os.fstat(self._fd)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == self.identity

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1
