"""Load torch pickles without running code: `weights_only=True`, an explicit allowlist, mmap for zip files.

fairseq checkpoints need `argparse.Namespace` (the training args). Anything else a pickle asks for is refused by
name; only `trust=True` (the CLI's `--trust-checkpoint`) falls back to full unpickling, and never silently.
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from xlmr_tools.errors import BadInput, UnsafeCheckpoint
from xlmr_tools.io import torch_zip

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
    if kind == "zip":
        found = torch_zip.records(path)  # refuses an archive torch's two readers (mmap or not) would read apart
    if not trust:  # a trusted file may hold anything (and run anything): only untrusted pickles are bounded
        size = path.stat().st_size
        with open(path, "rb") as f:
            if kind == "zip":
                record = torch_zip.pickle_record(path, found)
                f.seek(record.offset)
                check_allocations(io.BytesIO(f.read(record.size)), size, path)
            else:  # magic number, protocol, system info, the object, the storage keys: five pickles in a row
                check_allocations(_Bounded(f, size), size, path, pickles=5)
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


class _Bounded:
    """A file read no further than its size: a pickle opcode that claims more bytes than the file has gets a short
    read (and pickletools stops) instead of allocating the claimed size first."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.f.tell(), 0)
        return self.f.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.f.readline(max(self.size - self.f.tell(), 0))

    def tell(self) -> int:
        return self.f.tell()


class _Global(str):
    """A global a pickle names (`module name`), as the scan below tracks it on its stack."""


_MARK = object()


def check_allocations(f: Any, limit: int, path: Path, pickles: int = 1) -> None:
    """Follow a pickle's opcodes (pickletools.genops: nothing is executed or built) far enough to see every number
    handed straight to a call (REDUCE, NEWOBJ) and every storage's element count (BINPERSID). None may exceed
    `limit`, the file's size: a pickle that asks for more (`bytearray(6_000_000_000)` in a 183-byte file makes
    torch's weights-only unpickler allocate and zero 6 GB) is refused before torch reads it. Torch's own unpickler
    reports anything malformed: the scan stops quietly where pickletools cannot follow."""
    for _ in range(pickles):
        stack: list[Any] = []
        memo: dict[Any, Any] = {}
        try:
            for op, arg, _pos in pickletools.genops(f):
                _step(op, arg, stack, memo, limit, path)
        except (ValueError, IndexError, KeyError, TypeError, EOFError, UnicodeDecodeError, OverflowError):
            return


def _step(op: Any, arg: Any, stack: list[Any], memo: dict[Any, Any], limit: int, path: Path) -> None:
    name = op.name
    if name == "MARK":
        stack.append(_MARK)
        return
    if name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = stack[-1]
        return
    if name == "MEMOIZE":
        memo[len(memo)] = stack[-1]
        return
    if name == "DUP":
        stack.append(stack[-1])
        return
    before = [p.name for p in op.stack_before]
    if "mark" in before:
        at = len(stack) - 1 - stack[::-1].index(_MARK)
        items, before = stack[at + 1 :], before[: before.index("mark")]
        del stack[at:]
    else:
        items = []
    popped = stack[len(stack) - len(before) :] if before else []
    del stack[len(stack) - len(popped) :]
    if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX") and isinstance(popped[1], tuple):
        big = [a for a in popped[1] if isinstance(a, int) and not isinstance(a, bool) and a > limit]
        if big:
            raise BadInput(
                path,
                f"the checkpoint's pickle calls {str(popped[0]).replace(' ', '.') or 'a constructor'} with "
                f"{big[0]:,}, more than the file's {limit:,} bytes could fill: refusing to allocate it",
            )
    if name == "BINPERSID" and isinstance(popped[0], tuple) and len(popped[0]) >= 5 and popped[0][0] == "storage":
        numel = popped[0][4]
        if isinstance(numel, int) and numel > limit:
            raise BadInput(
                path,
                f"the checkpoint's pickle declares a storage of {numel:,} elements in a file of {limit:,} bytes",
            )
    after = [p.name for p in op.stack_after]
    if name == "GLOBAL":
        stack.append(_Global(arg))
    elif name == "STACK_GLOBAL":
        stack.append(_Global(" ".join(str(p) for p in popped)))
    elif name in ("BINGET", "GET", "LONG_BINGET"):
        stack.append(memo.get(arg))
    elif name.startswith("TUPLE") or name == "EMPTY_TUPLE":
        stack.append(tuple(items if name == "TUPLE" else popped))
    elif len(after) == 1 and (isinstance(arg, int) or (isinstance(arg, str) and len(arg) <= 200)):
        stack.append(arg)  # a number or a short string as the pickle pushes it
    else:
        stack.extend([None] * len(after))


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


CONFIG_DEPTH = 64  # a training config nests a few levels (cfg -> model -> a list of values)
CONFIG_VALUES = 100_000  # values read out of one config; fairseq's whole cfg has a few hundred


def config_to_plain(value: Any, where: Path | str) -> Any:
    """A stand-in omegaconf container or node (as pickled by omegaconf 2.0-2.3) as plain Python values. A pickle
    can make a config that contains itself, nests thousands deep, or shares one list at every level so that reading
    it out doubles per level (the unpickler builds all three from a few bytes without recursing): each is refused
    as bad input (`where` names the file) before Python's recursion limit or the memory is reached."""
    budget = [CONFIG_VALUES]

    def plain(value: Any, depth: int, inside: frozenset[int]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise BadInput(where, f"the checkpoint's config holds more than {CONFIG_VALUES:,} values")
        if isinstance(value, (ConfigStandIn, dict, list, tuple)):
            if id(value) in inside:
                raise BadInput(where, "the checkpoint's config contains itself (a cycle in its pickled cfg)")
            if depth >= CONFIG_DEPTH:
                raise BadInput(where, f"the checkpoint's config nests deeper than {CONFIG_DEPTH} levels")
            inside = inside | {id(value)}
        if isinstance(value, ConfigStandIn):
            state: dict[str, Any] = value.state if isinstance(value.state, dict) else {}
            if "_content" in state:
                return plain(state["_content"], depth + 1, inside)
            if "_val" in state:
                return plain(state["_val"], depth + 1, inside)
            if value.args:  # an enum member or a value class: its pickled value
                return plain(value.args[0], depth + 1, inside)
            return None
        if isinstance(value, dict):
            return {k: plain(v, depth + 1, inside) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v, depth + 1, inside) for v in value]
        return value

    return plain(value, 0, frozenset())


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
