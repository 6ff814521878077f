"""A zip-format torch checkpoint's records, validated as torch's reader reads them, and where each lies in the file.

torch's PyTorchFileReader (miniz) finds a record through the central directory and reads its bytes from where the
record's *local* header says they start; `torch.load(mmap=True)` maps the file and takes a storage's bytes from that
offset as they are, while `torch.load()` without mmap extracts them (inflating a record the central directory calls
deflated, refusing one whose local header is damaged or whose size disagrees with the tensor). A file where those
readings can differ is refused before torch touches it (tested against `torch.load` both ways in
tests/test_corrupt_archives.py): every record stored (torch.save never compresses, and a compressed record reads
as other bytes through mmap; a deflated data.pkl can also expand to gigabytes), local headers intact and agreeing
with the central directory (name, method), every record's bytes inside the file and apart from the others, its
data descriptor where the flags promise one (which also pins where the bytes end), and the CRC of every small
record (the pickle, the small tensors: cheap; the large tensor records are not re-read).

The same records give the file offsets of mmapped tensors: a storage's address minus the mapping base is its file
offset, which lets the writer copy uncast tensors kernel-side with `os.copy_file_range`, as `cp` does.
"""

from __future__ import annotations

import itertools
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from xlmr_tools.errors import BadInput

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, crc, sizes, lengths
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_HAS_DESCRIPTOR = 0x08  # general-purpose flag bit 3: crc and sizes follow the data
_ZIP64_SIZE = 0xFFFFFFFF
CRC_CHECKED_BYTES = 1 << 20  # records up to this size have their CRC checked (data.pkl and small tensors)


@dataclass(frozen=True)
class Record:
    name: str
    offset: int  # file offset of the record's first byte, as the local header places it
    size: int
    crc: int


def records(path: Path) -> list[Record]:
    """Every record of the archive, validated (see the module docstring); BadInput naming the first problem."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise BadInput(path, f"corrupt zip archive ({e})") from e
    size = path.stat().st_size
    names = [i.filename for i in infos]
    twice = next((n for n in names if names.count(n) > 1), None) if len(set(names)) != len(names) else None
    if twice is not None:
        raise BadInput(path, f"corrupt torch archive: record '{twice}' is listed twice in the central directory")
    out: list[Record] = []
    with open(path, "rb") as f:
        for info in infos:
            out.append(_record(path, f, info, size))
        ends = sorted((r.offset, r.offset + r.size, r.name) for r in out)
        for (_, end, name), (begin, _, after) in itertools.pairwise(ends):
            if end > begin:
                raise BadInput(path, f"corrupt torch archive: records '{name}' and '{after}' overlap")
        for r in out:
            if r.crc and r.size <= CRC_CHECKED_BYTES:
                f.seek(r.offset)
                if zlib.crc32(f.read(r.size)) != r.crc:
                    raise BadInput(path, f"corrupt torch archive: record '{r.name}' fails its CRC check")
    return out


def _record(path: Path, f, info: zipfile.ZipInfo, size: int) -> Record:
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise BadInput(
            path,
            f"corrupt torch archive: record '{name}' is compressed (zip method {info.compress_type}); torch.save "
            "stores every record uncompressed, and torch reads a compressed record as other bytes when it maps "
            "the file",
        )
    if info.compress_size != info.file_size:
        raise BadInput(
            path,
            f"corrupt torch archive: record '{name}' is stored, but the central directory gives it "
            f"{info.compress_size} bytes stored and {info.file_size} bytes of content",
        )
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size:
        raise BadInput(path, f"corrupt torch archive: the local header of record '{name}' lies outside the file")
    sig, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = _LOCAL_HEADER.unpack(raw)
    if sig != _LOCAL_SIGNATURE:
        raise BadInput(path, f"corrupt torch archive: the local header of record '{name}' is damaged")
    local_name = f.read(name_len)
    if local_name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
        raise BadInput(
            path,
            f"corrupt torch archive: record '{name}' is named {local_name[:80]!r} in its local header",
        )
    if method != zipfile.ZIP_STORED:
        raise BadInput(
            path, f"corrupt torch archive: record '{name}' has zip method {method} in its local header, 0 (stored) "
            "in the central directory",
        )  # fmt: skip
    offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    end = offset + info.file_size
    if end > size:
        raise BadInput(
            path, f"corrupt torch archive: record '{name}' ({info.file_size} bytes) runs past the end of the file"
        )
    if flags & _HAS_DESCRIPTOR:  # torch's writer: signature, crc, then the sizes (8 bytes each in a zip64 archive)
        f.seek(end)
        tail = f.read(24)
        if not tail.startswith(_DESCRIPTOR_SIGNATURE) or len(tail) < 16:
            raise BadInput(
                path,
                f"corrupt torch archive: record '{name}' is not followed by its data descriptor where its local "
                "header places it (the local header or the record's size is damaged)",
            )
        if struct.unpack_from("<II", tail, 8) != (info.file_size,) * 2 and (
            len(tail) < 24 or struct.unpack_from("<QQ", tail, 8) != (info.file_size,) * 2
        ):
            raise BadInput(
                path,
                f"corrupt torch archive: record '{name}' has {info.file_size} bytes in the central directory but "
                f"{struct.unpack_from('<I', tail, 12)[0]} in its data descriptor",
            )
        if struct.unpack_from("<I", tail, 4)[0] != info.CRC:
            raise BadInput(
                path, f"corrupt torch archive: the CRC of record '{name}' differs between the central directory and "
                "its data descriptor",
            )  # fmt: skip
    elif not (crc == info.CRC and csize in (info.file_size, _ZIP64_SIZE) and usize in (info.file_size, _ZIP64_SIZE)):
        raise BadInput(
            path,
            f"corrupt torch archive: the local header of record '{name}' (crc {crc:#x}, {usize} bytes) disagrees "
            f"with the central directory (crc {info.CRC:#x}, {info.file_size} bytes)",
        )
    return Record(name, offset, info.file_size, info.CRC)


def pickle_record(path: Path, found: list[Record]) -> Record:
    """The archive's data.pkl (torch reads the first record's folder as the archive's name)."""
    pickles = [r for r in found if r.name.endswith("/data.pkl") or r.name == "data.pkl"]
    if not pickles:
        raise BadInput(path, "not a torch checkpoint: the zip archive has no data.pkl record")
    return pickles[0]


def data_offsets(path: Path) -> dict[int, int]:
    """{file offset of a tensor data record: its size}."""
    return {r.offset: r.size for r in records(path) if "/data/" in r.name}


def tensor_offsets(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """{tensor name: file offset of its first byte} for contiguous tensors; {} when the layout cannot be proven."""
    try:
        entries = data_offsets(path)
    except (OSError, BadInput):
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
