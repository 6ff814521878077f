"""Outputs appear atomically or not at all: write into a hidden temporary folder beside OUT, rename at the end.

A temporary folder is named `.<OUT name>.xlmr-partial-<pid>`; one whose process is gone (a SIGKILL, a power cut)
is recognised and removed by the next run on the same OUT, and reported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xlmr_tools.errors import BadInput
from xlmr_tools.interrupts import check_interrupted, deferred_interrupts, mark_complete, note_complete

PARTIAL = ".xlmr-partial-"


def check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(out, "exists and is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInput(out, "exists and is not empty; pass --force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(parent, "parent folder does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(parent, "parent folder is not writable")
    try:  # access() says yes to root even where nothing can be created (/proc, read-only mounts)
        Path(tempfile.mkdtemp(prefix=f".{out.name}.xlmr-probe-", dir=parent)).rmdir()
    except OSError as e:
        raise BadInput(parent, f"cannot create folders here ({e.strerror or e})") from None


def check_free_space(out: Path, needed: int) -> None:
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise BadInput(out.parent, f"not enough free disk space: need {needed:,} bytes, {free:,} available")


def stale_partials(out: Path) -> list[Path]:
    """Temporary folders of earlier runs on OUT whose process no longer exists."""
    stale = []
    for p in out.parent.glob(f".{out.name}{PARTIAL}*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            stale.append(p)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_folder(out: Path, force: bool, removed: list[Path] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it becomes OUT, on any error or interrupt it is removed.
    Stale temporary folders of killed runs on the same OUT are removed first and listed in `removed`."""
    check_target(out, force)
    check_interrupted()  # a signal something swallowed (interrupts.py): nothing more is written
    for p in stale_partials(out):
        shutil.rmtree(p, ignore_errors=True)
        if removed is not None:
            removed.append(p)
    tmp = out.parent / f".{out.name}{PARTIAL}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()  # inside the try: an interrupt right after the folder appears still removes it
        yield tmp
        check_interrupted()
        published = False
        try:  # never split: between the renames OUT is gone and its old copy hidden (a later run removes it)
            with deferred_interrupts():
                _publish(tmp, out)
                published = True
        except KeyboardInterrupt as e:
            if published:
                mark_complete(e, out)  # it arrived while publishing, which finished first
            raise
        note_complete(out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise BadInput(out.parent, "disk full while writing; the partial output was removed") from e
        raise BadInput(
            getattr(e, "filename", None) or out, f"write failed ({e.strerror or e}); the partial output was removed"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}{PARTIAL}old-{os.getpid()}"
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)  # the new one could not go in: the old one goes back, not left hidden
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file whole or not at all: a temporary file beside it, renamed over it; removed on any error or
    interrupt."""
    tmp = path.with_name(f".{path.name}{PARTIAL}{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
