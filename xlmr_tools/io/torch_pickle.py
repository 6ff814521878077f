"""Load torch pickles without running code: `weights_only=True`, an explicit allowlist, mmap for zip files.

fairseq checkpoints need `argparse.Namespace` (the training args). Anything else a pickle asks for is refused by
name; only `trust=True` (the CLI's `--trust-checkpoint`) falls back to full unpickling, and never silently.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.errors import BadInput, UnsafeCheckpoint

ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
# fairseq 0.10 (2020-21) pickled its training cfg as an omegaconf DictConfig. Such a file is read with inert
# stand-ins for the config classes (omegaconf's containers and nodes, fairseq's config dataclasses and enums,
# typing markers): nothing of omegaconf or fairseq is imported or run, each stand-in only records what the pickle
# gives it. Plain constructors the config needs are allowed as themselves. Any other global is still refused.
CONFIG_STAND_IN_MODULES = ("omegaconf.", "fairseq.", "typing.")
CONFIG_CONSTRUCTORS: dict[str, Any] = {
    f"builtins.{t.__name__}": t for t in (int, float, str, bool, dict, list, tuple, set)
} | {"collections.defaultdict": collections.defaultdict, "collections.OrderedDict": collections.OrderedDict}
ZIP_MAGIC = b"PK\x03\x04"
_UNSUPPORTED = re.compile(
    r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)|global ([\w.]+) was not an allowed"
)


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
        try:
            return _load(path, kind, trust, []), kind
        except UnsafeCheckpoint as e:
            if kind != "zip" or not e.global_name.startswith(CONFIG_STAND_IN_MODULES):
                raise
            return _load(path, kind, trust, _config_stand_ins(path, e)), kind
    except pickle.UnpicklingError as e:
        raise BadInput(path, f"corrupt or unsafe checkpoint pickle ({_first_line(e)})") from e
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
    ) as e:
        raise BadInput(path, f"truncated or corrupt torch checkpoint ({_first_line(e)})") from e


def _load(path: Path, kind: str, trust: bool, extra: list[Any]) -> Any:
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=kind == "zip")
    # torch's safe_globals removes its globals on exit even where the caller had allowed them already (a library
    # user inside their own safe_globals block): add only what is not allowed yet, so only that is removed
    have = torch.serialization.get_safe_globals()
    ours = [g for g in [*ALLOWED_GLOBALS, *extra] if g not in have]
    try:
        with torch.serialization.safe_globals(ours):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as e:
        m = _UNSUPPORTED.search(str(e))
        if m:
            raise UnsafeCheckpoint(path, next(g for g in m.groups() if g)) from e
        raise


class ConfigStandIn:
    """An inert record of a pickled config object (see CONFIG_STAND_IN_MODULES): its constructor arguments and its
    state, nothing else. `pickled_name` is the global it stands in for."""

    pickled_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _config_stand_ins(path: Path, first: UnsafeCheckpoint) -> list[Any]:
    """Stand-ins for every config global the pickle names (read from its opcodes, nothing executed); refuse by
    name any global that is neither a config class nor a plain constructor."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - an unreadable pickle: report the global that stopped the first load
        raise first from None
    extra: list[Any] = []
    for name in names:
        if name in CONFIG_CONSTRUCTORS:
            extra.append((CONFIG_CONSTRUCTORS[name], name))
        elif name.startswith(CONFIG_STAND_IN_MODULES):
            extra.append((type(name.rsplit(".", 1)[-1], (ConfigStandIn,), {"pickled_name": name}), name))
        elif name not in {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}:
            raise UnsafeCheckpoint(path, name)
    return extra


def config_to_plain(value: Any) -> Any:
    """A stand-in omegaconf container or node (as pickled by omegaconf 2.0-2.3) as plain Python values."""
    if isinstance(value, ConfigStandIn):
        state: dict[str, Any] = value.state if isinstance(value.state, dict) else {}
        if "_content" in state:
            return config_to_plain(state["_content"])
        if "_val" in state:
            return config_to_plain(state["_val"])
        if value.args:  # an enum member or a value class: its pickled value
            return config_to_plain(value.args[0])
        return None
    if isinstance(value, dict):
        return {k: config_to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_plain(v) for v in value]
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
