"""Load torch pickles without running code: `weights_only=True`, an explicit allowlist, mmap for zip files.

fairseq checkpoints need `argparse.Namespace` (the training args). Anything else a pickle asks for is refused by
name; only `trust=True` (the CLI's `--trust-checkpoint`) falls back to full unpickling, and never silently.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import BadInput, UnsafeCheckpoint

ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
ZIP_MAGIC = b"PK\x03\x04"
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)|global ([\w.]+) was not an allowed")


def serialization_of(path: Path) -> str:
    """'zip' (torch >= 1.6, mmap-able) or 'legacy' (older pickle stream); BadInput for anything else."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise BadInput(path, "empty file, not a torch checkpoint")
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise BadInput(path, "truncated or corrupt zip archive (not a complete torch checkpoint)")
        return "zip"
    if head[:1] == b"\x80":  # pickle protocol marker: torch's legacy format starts with a pickled magic number
        return "legacy"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        raise BadInput(path, "this is a text file, not a torch checkpoint")
    raise BadInput(path, "not a torch checkpoint (unknown file format)")


def load(path: str | Path, *, trust: bool = False) -> tuple[Any, str]:
    """Return (object, serialization). Tensors of zip files are mmap-backed: nothing is read until touched."""
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "no such file")
    if path.is_dir():
        raise BadInput(path, "is a directory, expected a checkpoint file")
    kind = serialization_of(path)
    try:
        if trust:
            obj = torch.load(path, map_location="cpu", weights_only=False, mmap=kind == "zip")
        else:
            with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as e:
        m = _UNSUPPORTED.search(str(e))
        if m:
            raise UnsafeCheckpoint(path, next(g for g in m.groups() if g)) from e
        raise BadInput(path, f"corrupt or unsafe checkpoint pickle ({_first_line(e)})") from e
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError,
            OverflowError, MemoryError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise BadInput(path, f"truncated or corrupt torch checkpoint ({_first_line(e)})") from e
    return obj, kind


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
