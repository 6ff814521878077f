"""Hostile files built from the fixtures, byte by byte: corrupt zip archives, allocation bombs, hostile configs.

Shared by the generated bad-input suite (tests/test_bad_inputs.py) and the tests that establish with torch itself
what these files do (tests/test_corrupt_archives.py).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

# ------------------------------------------------------------------------------------------------ zip archives


def central_entries(data: bytes) -> dict[str, tuple[int, int]]:
    """{record name: (offset of its central-directory header, offset of its local header)}."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, eocd + 10)
    out: dict[str, tuple[int, int]] = {}
    p = start
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, p + 28)
        (local,) = struct.unpack_from("<I", data, p + 42)
        out[data[p + 46 : p + 46 + name_len].decode()] = (p, local)
        p += 46 + name_len + extra_len + comment_len
    return out


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _add(data: bytes, offset: int, fmt: str, delta: int) -> bytes:
    return _patch(data, offset, fmt, struct.unpack_from(fmt, data, offset)[0] + delta)


def _entry(data: bytes, suffix: str) -> tuple[int, int]:
    return next(v for k, v in central_entries(data).items() if k.endswith(suffix))


# A mid-sized tensor record and the pickle: (central header, local header) offsets are found in each file.
DATA = "/data/5"
PICKLE = "/data.pkl"


def _cd(field: int, fmt: str, value: int | None = None, delta: int = 0, record: str = DATA):
    def edit(data: bytes) -> bytes:
        cd, _ = _entry(data, record)
        return _patch(data, cd + field, fmt, value) if value is not None else _add(data, cd + field, fmt, delta)

    return edit


def _local(field: int, fmt: str, value: int | None = None, delta: int = 0, record: str = DATA):
    def edit(data: bytes) -> bytes:
        _, lo = _entry(data, record)
        return _patch(data, lo + field, fmt, value) if value is not None else _add(data, lo + field, fmt, delta)

    return edit


def _both_sizes(delta: int):
    return lambda data: _cd(20, "<I", delta=delta)(_cd(24, "<I", delta=delta)(data))


def _local_name(data: bytes) -> bytes:
    _, lo = _entry(data, DATA)
    return data[: lo + 30] + b"b" + data[lo + 31 :]


def _recompressed(record: str) -> Callable[[bytes], bytes]:
    """The archive rewritten by zipfile with one record really deflated (a valid zip: torch reads the pickle fine,
    a tensor record through mmap as other bytes)."""

    def edit(data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                method = zipfile.ZIP_DEFLATED if info.filename.endswith(record) else zipfile.ZIP_STORED
                zout.writestr(info.filename, zin.read(info.filename), compress_type=method)
        return out.getvalue()

    return edit


# name -> (edit of a torch zip checkpoint's bytes, what it does). CD = central directory (what miniz looks up).
ZIP_CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "cd-says-deflate-data": (_cd(10, "<H", 8), "central directory calls a stored tensor record deflated"),
    "cd-says-deflate-pickle": (_cd(10, "<H", 8, record=PICKLE), "central directory calls data.pkl deflated"),
    "local-says-deflate": (_local(8, "<H", 8), "local header calls a tensor record deflated"),
    "record-size-smaller": (_both_sizes(-4), "central directory gives a tensor record 4 bytes less"),
    "record-size-larger": (_both_sizes(4), "central directory gives a tensor record 4 bytes more"),
    "stored-size-disagrees": (_cd(24, "<I", delta=-4), "stored size and content size of a record differ"),
    "local-header-damaged": (_local(0, "<I", 0x05034B50), "a local header's signature is damaged"),
    "local-name-differs": (_local_name, "a local header names another record"),
    "local-extra-length": (_local(28, "<H", delta=4), "a local header's extra length moves the data by 4 bytes"),
    "crc-pickle": (_cd(16, "<I", 0x12345678, record=PICKLE), "data.pkl's CRC in the central directory is wrong"),
    "crc-tensor": (_cd(16, "<I", 0x12345678), "a small tensor record's CRC is wrong"),
    "local-header-past-eof": (_cd(42, "<I", 1 << 31), "central directory puts a record past the end of the file"),
    "deflated-pickle": (_recompressed(PICKLE), "data.pkl really deflated (zipfile)"),
    "deflated-tensor": (_recompressed(DATA), "a tensor record really deflated (zipfile)"),
}


# ------------------------------------------------------------------------------------------------ allocation bombs


def _legacy(main: bytes) -> bytes:
    """torch's legacy (pre-zip) format around a main pickle: magic, protocol, system info, the object, storage keys."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    f = io.BytesIO()
    pickle.dump(MAGIC_NUMBER, f, protocol=2)
    pickle.dump(PROTOCOL_VERSION, f, protocol=2)
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}  # fmt: skip
    pickle.dump(info, f, protocol=2)
    f.write(main)
    pickle.dump([], f, protocol=2)
    return f.getvalue()


def bytearray_pickle(n: int) -> bytes:
    """A protocol-2 pickle of `bytearray(n)`: torch's weights-only unpickler allows bytearray and zero-fills n bytes."""
    return b"\x80\x02c__builtin__\nbytearray\n\x8a\x05" + n.to_bytes(5, "little") + b"\x85R."


def legacy_bytearray(n: int) -> bytes:
    """A ~180-byte legacy checkpoint whose object is bytearray(n)."""
    return _legacy(bytearray_pickle(n))


def legacy_storage_claim(fixture_legacy: bytes, numel: int) -> bytes:
    """A legacy checkpoint whose first storage claims `numel` elements: in its persistent id ('storage', type, key,
    location, numel), the element count rewritten (the data after it is the fixture's)."""
    f = io.BytesIO(fixture_legacy)
    for _ in range(3):
        pickle.load(f)
    values = [
        (op.name, arg, pos)
        for op, arg, pos in pickletools.genops(fixture_legacy[f.tell() :])
        if not op.name.endswith("PUT") and op.name != "MEMOIZE"
    ]
    at = next(i for i, (_, arg, _) in enumerate(values) if arg == "storage")
    name, _, pos = values[at + 4]  # after the type, the key and the location
    if name not in ("BININT1", "BININT2", "BININT"):
        raise ValueError(f"unexpected element count opcode {name}")
    start = f.tell() + pos
    width = {"BININT1": 1, "BININT2": 2, "BININT": 4}[name]
    return fixture_legacy[:start] + b"J" + numel.to_bytes(4, "little") + fixture_legacy[start + 1 + width :]


def zip_with_pickle(pickled: bytes) -> bytes:
    """A torch-style zip archive (every record stored) whose data.pkl is `pickled`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def deflate_bomb(expanded: int) -> bytes:
    """A small zip whose data.pkl inflates to a pickle of `expanded` zero bytes (torch inflates records it is told
    are deflated, then unpickles them)."""
    head = b"\x80\x02\x8e" + struct.pack("<Q", expanded)  # BINBYTES8: that many bytes follow
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compresslevel=1) as z:
        info = zipfile.ZipInfo("archive/data.pkl")
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = 1  # type: ignore[attr-defined]  # zeros deflate ~1000:1 at any level; this is fastest
        with z.open(info, "w", force_zip64=True) as w:
            w.write(head)
            zero = bytes(1 << 24)
            left = expanded
            while left:
                w.write(zero[: min(left, len(zero))])
                left -= min(left, len(zero))
            w.write(b".")
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ hostile configs


def dictconfig_state(model_pt: Path) -> dict:
    """A fairseq 0.10 checkpoint (its cfg an omegaconf DictConfig), fully unpickled (the test trusts its fixture)."""
    return torch.load(model_pt, weights_only=False)


def save_deep(state: dict, path: Path) -> None:
    """torch.save through the pure-Python pickler with room to recurse: nested thousands deep is fine to write."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        torch.save(state, path, pickle_module=types.SimpleNamespace(Pickler=pickle._Pickler, __name__="pickle"))
    finally:
        sys.setrecursionlimit(old)


def hostile_cfg(kind: str) -> Callable[[dict], None]:
    """Edit a DictConfig cfg's content: `cycle` (it contains itself), `deep` (5,000 nested levels), `doubling` (one
    list shared at every level of 40: read out naively, 2**40 values)."""

    def edit(state: dict) -> None:
        cfg = state["cfg"]
        content = cfg.__dict__["_content"]
        if kind == "cycle":
            content["loop"] = cfg
        elif kind == "deep":
            deep: dict = {}
            for _ in range(5000):
                deep = {"a": deep}
            content["deep"] = deep
        else:
            wide: list = []
            for _ in range(40):
                wide = [wide, wide]
            content["wide"] = wide

    return edit


# ------------------------------------------------------------------------------------------------ config.json values

# (id, field, value) of config.json values of the wrong type or range; written into a converted folder's config
BAD_CONFIG_VALUES: list[tuple[str, str, object]] = [
    ("heads-text", "num_attention_heads", "abc"),
    ("heads-zero", "num_attention_heads", 0),
    ("heads-not-dividing", "num_attention_heads", 3),
    ("eps-text", "layer_norm_eps", "x"),
    ("eps-negative", "layer_norm_eps", -1e-5),
    ("eps-nan", "layer_norm_eps", float("nan")),  # json.dumps writes NaN, which json (and transformers) reads
    ("eps-infinite", "layer_norm_eps", float("inf")),
    ("pad-null", "pad_token_id", None),
    ("pad-past-vocab", "pad_token_id", 100_000),
    ("hidden-negative", "hidden_size", -64),
    ("hidden-float", "hidden_size", 64.5),
    ("ffn-negative", "intermediate_size", -1),
    ("positions-1e11", "max_position_embeddings", 1e11),
    ("vocab-text", "vocab_size", "x"),
    ("activation-number", "hidden_act", 5),
    ("tie-text", "tie_word_embeddings", "no"),
    ("model-type-list", "model_type", [1]),
    ("architectures-number", "architectures", 5),
    ("type-vocab-negative", "type_vocab_size", -1),
]
