"""Where each mmapped tensor's bytes lie inside a zip-format torch checkpoint.

torch stores every storage uncompressed as `<archive>/data/<key>`; `torch.load(mmap=True)` maps the whole file, so a
storage's address minus the mapping base is its file offset. Knowing it lets the writer copy uncast tensors
kernel-side with `os.copy_file_range`, as `cp` does, instead of faulting pages through Python.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import torch

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def data_offsets(path: Path) -> dict[int, int]:
    """{file offset of an uncompressed data entry: its size}."""
    out: dict[int, int] = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            if "/data/" not in info.filename or info.compress_type != zipfile.ZIP_STORED:
                continue
            f.seek(info.header_offset)
            header = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
            if header[0] != b"PK\x03\x04":
                continue
            out[info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]] = info.file_size
    return out


def tensor_offsets(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """{tensor name: file offset of its first byte} for contiguous tensors; {} when the layout cannot be proven."""
    try:
        entries = data_offsets(path)
    except (OSError, zipfile.BadZipFile, struct.error):
        return {}
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors.values()}
    if not storages or not entries:
        return {}
    ptr, nbytes = max(storages.items(), key=lambda kv: kv[1])
    for off, size in entries.items():
        if size != nbytes:
            continue
        base = ptr - off
        if all(entries.get(p - base) == n for p, n in storages.items()):
            return {
                name: t.untyped_storage().data_ptr() - base + int(t.storage_offset()) * t.element_size()
                for name, t in tensors.items()
                if t.is_contiguous()
            }
    return {}
