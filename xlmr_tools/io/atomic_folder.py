"""Outputs appear atomically or not at all, and replace nothing the user did not agree to replace.

The output is written into a hidden temporary folder beside OUT and renamed at the end. A temporary folder is named
`.<OUT name>.xlmr-partial-<pid>`; one whose process is gone (a SIGKILL, a power cut) is recognised and removed by
the next run on the same OUT, and reported.

What is replaced: without --force, only nothing or the empty folder that was checked (the final rename never
replaces what appeared meanwhile); with --force, OUT itself, in one step where the kernel allows it. An OUT that is
an input, holds one or lies above one is refused before anything is written (`check_inputs_kept`): replacing it
would delete the input. OUT given as a symbolic link is followed (`resolve_out`): the folder is written where the
link points and the link stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from xlmr_tools.errors import BadInput
from xlmr_tools.interrupts import check_interrupted, deferred_interrupts, mark_complete, note_complete
from xlmr_tools.io.libc import libc_function

PARTIAL = ".xlmr-partial-"

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1  # linux/fs.h
_RENAME_EXCHANGE = 2
_renameat2 = libc_function(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint], use_errno=True
)  # glibc >= 2.28


def resolve_out(out: Path) -> Path:
    """OUT as it is written: a symbolic link (or a chain of them) is followed, so the folder is written where it
    points and the link stays (a link to a folder that does not exist yet: the folder is made there); `..` and
    links in the parent folders are resolved too, so the temporary folder lies beside the real OUT."""
    real = Path(os.path.realpath(out))
    if real.is_symlink():  # realpath leaves a loop unresolved
        raise BadInput(out, "is a symbolic link that leads round in a loop; give a folder path")
    return real


def check_target(out: Path, force: bool) -> None:
    real = resolve_out(out)
    if real.exists() and not real.is_dir():
        raise BadInput(out, "exists and is a file; give a folder path")
    if real.is_dir() and any(real.iterdir()) and not force:
        raise BadInput(out, "exists and is not empty; pass --force to replace it")
    parent = real.parent
    if not parent.is_dir():
        raise BadInput(parent, "parent folder does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(parent, "parent folder is not writable")
    try:  # access() says yes to root even where nothing can be created (/proc, read-only mounts)
        Path(tempfile.mkdtemp(prefix=f".{real.name}.xlmr-probe-", dir=parent)).rmdir()
    except OSError as e:
        raise BadInput(parent, f"cannot create folders here ({e.strerror or e})") from None


def _chain(path: Path) -> list[Path]:
    """The path after resolving links and `..`, and every folder above it."""
    real = Path(os.path.realpath(path))
    return [real, *real.parents]


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_inputs_kept(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an OUT that is an input, holds one or lies above one: publishing replaces OUT (with --force, removes
    all it holds), so the input would be deleted. Compared after resolving symbolic links and `..`, and by device
    and inode (a bind mount: another path to the same folder)."""
    real_out = resolve_out(out)
    out_id = _file_id(real_out)
    for given in inputs:
        chain = _chain(given)
        if real_out in chain or (out_id is not None and out_id in {_file_id(p) for p in chain}):
            how = "is" if real_out == chain[0] or out_id == _file_id(chain[0]) else "holds"
            raise BadInput(
                out,
                f"{how} {given}, an input of this conversion: converting into it would delete it; choose an output "
                "folder outside the source's",
            )


def check_report(report: Path, out: Path, inputs: Iterable[Path]) -> None:
    """A report written after publishing (the CLI's --report) must not replace an input, OUT itself, or go into a
    temporary folder of ours."""
    real = Path(os.path.realpath(report))
    if real == resolve_out(out) or real.is_dir():
        raise BadInput(report, "--report names a folder; give a file name (it may lie inside OUT)")
    for given in inputs:
        if real == Path(os.path.realpath(given)) or (real.exists() and os.path.samefile(real, given)):
            raise BadInput(report, f"--report would overwrite {given}, an input of this conversion")
    if any(PARTIAL in p.name for p in real.parents):
        raise BadInput(report, "--report lies inside a temporary folder of xlmr, which does not outlive the run")


def check_free_space(out: Path, needed: int) -> None:
    parent = resolve_out(out).parent
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise BadInput(parent, f"not enough free disk space: need {needed:,} bytes, {free:,} available")


def stale_partials(out: Path) -> list[Path]:
    """Temporary folders of earlier runs on OUT whose process no longer exists."""
    stale = []
    prefix = f".{out.name}{PARTIAL}"
    for p in out.parent.iterdir():
        if not p.name.startswith(prefix):
            continue
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


def _remove(p: Path) -> bool:
    """Remove a file, a link (never what it points to) or a folder; whether it is gone."""
    with contextlib.suppress(OSError):
        if p.is_symlink() or not p.is_dir():
            p.unlink()
        else:
            shutil.rmtree(p)
    return not os.path.lexists(p)


@contextlib.contextmanager
def atomic_folder(out: Path, force: bool, removed: list[Path] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it becomes OUT, on any error or interrupt it is removed.
    Stale temporary folders of killed runs on the same OUT are removed first and listed in `removed`."""
    given = out
    check_target(given, force)
    out = resolve_out(given)
    check_interrupted()  # a signal something swallowed (interrupts.py): nothing more is written
    for p in stale_partials(out):
        if _remove(p) and removed is not None:
            removed.append(p)
    tmp = out.parent / f".{out.name}{PARTIAL}{os.getpid()}"
    _remove(tmp)
    replaced: Path | None = None  # where the OUT that --force replaced lies, once it is replaced
    try:
        tmp.mkdir()  # inside the try: an interrupt right after the folder appears still removes it
        yield tmp
        check_interrupted()
        published = False
        try:  # never split: a swap's renames complete before a signal takes effect
            with deferred_interrupts():
                replaced = _publish(tmp, out, force)
                published = True
        except KeyboardInterrupt as e:
            if published:
                mark_complete(e, given)  # it arrived while publishing, which finished first
            raise
        note_complete(given)
    except OSError as e:
        _remove(tmp)
        if e.errno == errno.ENOSPC:
            raise BadInput(out.parent, "disk full while writing; the partial output was removed") from e
        raise BadInput(
            getattr(e, "filename", None) or out, f"write failed ({e.strerror or e}); the partial output was removed"
        ) from e
    except BaseException:
        _remove(tmp)
        raise
    finally:
        if replaced is not None:
            _remove(replaced)  # the old OUT, also when an interrupt came as it was replaced


def _publish(tmp: Path, out: Path, force: bool) -> Path | None:
    """Put `tmp` in place as OUT; return where the OUT it replaced now lies (to be removed), if any.

    Without --force, only onto nothing or onto the empty folder that was checked: `rmdir` fails where something was
    written into it meanwhile, and the rename does not replace what appeared since (renameat2's RENAME_NOREPLACE;
    where the C library, kernel or file system lacks it, rename(2), which replaces at most an empty folder). Either
    way what appeared is left as it is and nothing is published. With --force the user agreed to replace OUT: OUT
    and the new folder trade places in one step (RENAME_EXCHANGE: OUT never missing), else OUT is renamed aside and
    the new folder renamed in."""
    if force:
        if _rename(tmp, out, _RENAME_EXCHANGE):
            return tmp  # the old OUT, now under the temporary folder's name
        if os.path.lexists(out):
            return _swap(tmp, out)
    try:
        out.rmdir()
        emptied = True
    except FileNotFoundError:
        emptied = False
    except OSError:
        raise BadInput(out, _APPEARED) from None
    try:
        if not _rename(tmp, out, _RENAME_NOREPLACE):
            if os.path.lexists(out):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(out))
            tmp.rename(out)
    except FileExistsError:
        raise BadInput(out, _APPEARED) from None
    except BaseException:
        if emptied:  # the user's empty OUT goes back
            with contextlib.suppress(OSError):
                out.mkdir()
        raise
    return None


_APPEARED = (
    "something appeared there or was written into it during the conversion; it was left as it is and the "
    "conversion was not published (run again, or pass --force to replace it)"
)


def _rename(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(2) with `flags`; False where the C library, the kernel or the file system lacks it (ENOSYS,
    EINVAL; also ENOENT for RENAME_EXCHANGE: nothing at `dst` to trade with)."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL) or (err == errno.ENOENT and flags == _RENAME_EXCHANGE):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _swap(tmp: Path, out: Path) -> Path:
    old = out.parent / f".{out.name}{PARTIAL}old-{os.getpid()}"
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)  # the new one could not go in: the old one goes back, not left hidden
        raise
    return old


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
