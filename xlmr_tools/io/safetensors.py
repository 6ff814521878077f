"""Read safetensors lazily (own header parser + mmap) and write them in streamed shards.

Reading: the header is validated against the file size before any tensor is touched, so a shard whose header lies
is refused by name. Tensors are views of a private (copy-on-write) mmap: no data is read until used.
Writing: the header is computed from shapes and dtypes up front, then tensor bytes are streamed in bounded chunks,
so peak memory is one chunk, not one shard or one model.
"""

from __future__ import annotations

import ctypes
import json
import math
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

# Imported here, not where it is used: the writer runs in a worker thread, and an import there can wait forever on
# an import lock that a Ctrl-C left held in the main thread (seen: SIGINT during `import transformers`).
from huggingface_hub import split_state_dict_into_shards_factory

from xlmr_tools.errors import BadInput
from xlmr_tools.io.chunks import CHUNK_BYTES, iter_chunks
from xlmr_tools.io.libc import libc_function

_sync_file_range = libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
_SYNC_FILE_RANGE_WRITE = 2

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
SAFETENSORS_NAMES = {v: k for k, v in SAFETENSORS_DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsFile:
    """One .safetensors file: validated header, lazy tensors.

    The safetensors library's own reader (what transformers loads with) must accept the file first: its rules are
    stricter than a plain reading of the format (integer shapes and offsets, no gap between tensors, a string map
    as `__metadata__`), and a file it refuses is one no user can load, whatever our own parser makes of it. Our
    parser then gives the offsets the lazy tensors are mapped from, and must agree with the library."""

    def __init__(self, path: Path) -> None:
        self.path = path
        library = library_header(path)
        self.infos, self.metadata, self.data_start = _read_header(path)
        ours = {name: (SAFETENSORS_NAMES[i.dtype], i.shape) for name, i in self.infos.items()}
        if ours != library:
            raise BadInput(path, "the safetensors library reads another header than this file's own parser")
        self._mm: mmap.mmap | None = None

    def tensor(self, name: str) -> torch.Tensor:
        info = self.infos[name]
        if info.end == info.begin:
            return torch.empty(info.shape, dtype=info.dtype)
        if self._mm is None:
            with open(self.path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        raw = torch.frombuffer(
            self._mm, dtype=torch.uint8, count=info.end - info.begin, offset=self.data_start + info.begin
        )
        return raw.view(info.dtype).reshape(info.shape)


def library_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor: (dtype name, shape)} as the safetensors library reads the file (transformers loads through it);
    BadInput with the library's own reason where it refuses the file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for name in f.keys():  # noqa: SIM118 - safe_open is no dict: keys() is its API
                part = f.get_slice(name)
                out[name] = (str(part.get_dtype()), tuple(int(d) for d in part.get_shape()))
            return out
    except (SafetensorError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise BadInput(
            path, f"the safetensors library refuses this file, so transformers cannot load it ({reason})"
        ) from None


def _read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise BadInput(path, "truncated safetensors file (no header)")
        (n,) = struct.unpack("<Q", first)
        if n > min(MAX_HEADER, size - 8):
            raise BadInput(path, f"safetensors header claims {n} bytes but the file has {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(path, f"safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise BadInput(path, "safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - n
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadInput(path, f"safetensors header entry for '{name}' is malformed ({e!r})") from e
        if any(d < 0 for d in shape):
            raise BadInput(path, f"tensor '{name}' has a negative dimension in the header")
        if not 0 <= begin <= end <= data_size or end - begin != math.prod(shape) * dtype.itemsize:
            raise BadInput(
                path,
                f"header lies about tensor '{name}': {shape} {entry['dtype']} at "
                f"[{begin}, {end}) does not fit the {data_size} data bytes",
            )
        infos[name] = TensorInfo(dtype, shape, begin, end)
    return infos, metadata, 8 + n


# ----------------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class TensorToWrite:
    name: str
    source: Callable[[], torch.Tensor]  # called once, when its bytes are written: keeps reading lazy
    dtype: torch.dtype
    shape: tuple[int, ...]
    copy_from: tuple[Path, int] | None = None  # (file, offset) holding exactly these bytes: copied kernel-side

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def plan_shards(
    tensors: list[TensorToWrite], max_shard_bytes: int
) -> tuple[dict[str, list[TensorToWrite]], dict[str, int]]:
    """{shard file name: its tensors} and the index metadata, planned by huggingface_hub exactly as
    `save_pretrained` plans them (in order; a tensor larger than the limit gets a shard of its own). Only the plan
    comes from there: its writer (`save_file`) would hold a whole shard in memory; ours streams."""
    by_name = {t.name: t for t in tensors}
    split = split_state_dict_into_shards_factory(
        by_name,
        get_storage_size=lambda t: t.nbytes,
        filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_bytes,
    )
    return (
        {fname: [by_name[n] for n in names] for fname, names in split.filename_to_tensors.items()},
        dict(split.metadata),
    )


OnTensor = Callable[[TensorToWrite, Path, int], None]  # (tensor, shard file, offset of its bytes) once written


def write_shards(
    folder: Path,
    tensors: list[TensorToWrite],
    max_shard_bytes: int,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_tensor: OnTensor = lambda t, path, offset: None,
    before_tensor: Callable[[TensorToWrite], None] = lambda t: None,
) -> dict[str, str]:
    """Write all tensors as safetensors shards (+ index when more than one). Returns {tensor name: file name}.
    `before_tensor(t)` is called before t's bytes are written (a reader may pace the writer there)."""
    shards, metadata = plan_shards(tensors, max_shard_bytes)
    weight_map: dict[str, str] = {}
    for fname, shard in shards.items():
        _write_one(folder / fname, shard, on_bytes, on_tensor, before_tensor)
        weight_map.update({t.name: fname for t in shard})
    if len(shards) > 1:
        index = {"metadata": metadata, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return weight_map


def _write_one(
    path: Path,
    tensors: list[TensorToWrite],
    on_bytes: Callable[[int], None],
    on_tensor: OnTensor,
    before_tensor: Callable[[TensorToWrite], None],
) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        header[t.name] = {
            "dtype": SAFETENSORS_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb", buffering=0) as f:
        _write_all(f, struct.pack("<Q", len(blob)) + blob)
        offset = 8 + len(blob)
        for t in tensors:
            before_tensor(t)
            if t.copy_from is not None:
                _copy_range(t.copy_from, f, t.nbytes, on_bytes)
            else:
                src = t.source()
                if tuple(src.shape) != t.shape:
                    raise ValueError(f"{t.name}: source shape {tuple(src.shape)} != planned {t.shape}")
                for chunk in iter_chunks(src, t.dtype):
                    _write_all(f, _bytes_view(chunk))
                    on_bytes(chunk.numel() * chunk.element_size())
                    start_writeback(f.fileno(), chunk.numel() * chunk.element_size())
                del src
            on_tensor(t, path, offset)
            offset += t.nbytes


def _write_all(f, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[f.write(view) :]


def _copy_range(source: tuple[Path, int], f, nbytes: int, on_bytes: Callable[[int], None]) -> None:
    """Copy bytes file-to-file in the kernel (copy_file_range; read/write where unsupported), in chunks."""
    path, offset = source
    with open(path, "rb", buffering=0) as src:
        done = 0
        while done < nbytes:
            n = min(CHUNK_BYTES, nbytes - done)
            try:
                copied = os.copy_file_range(src.fileno(), f.fileno(), n, offset + done)
            except OSError:
                src.seek(offset + done)
                copied = f.write(src.read(n))
            if copied <= 0:
                raise OSError(f"{path}: unexpected end of file while copying tensor bytes")
            done += copied
            on_bytes(copied)
            start_writeback(f.fileno(), copied)


def start_writeback(fd: int, nbytes: int) -> None:
    """Start writing the last `nbytes` before the file position to disk, without waiting (sync_file_range WRITE):
    under a memory cap the kernel can then reclaim clean pages instead of stalling the writer on dirty ones."""
    if _sync_file_range is not None:
        end = os.lseek(fd, 0, os.SEEK_CUR)
        _sync_file_range(fd, end - nbytes, nbytes, _SYNC_FILE_RANGE_WRITE)


def _bytes_view(t: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (bf16 has no numpy dtype: view it as int16 first)."""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.view(torch.uint8)
    return t.numpy().data.cast("B")
