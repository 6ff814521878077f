"""Generated bad inputs for every command: each gives exit 2 (or 1 for a failed comparison), one stderr line that
names the file and the problem, no traceback, no output or temporary folder left, and no payload ever runs.

The cases are generated from the fixtures with a seeded generator (truncations at many offsets, bit flips, …), so
the count is stable; docs/reliability.md quotes it and test_reliability_doc_matches_the_suite keeps them in sync.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, error_lines, fixture

SEED = 20261128
MARKER = "XLMR_PAYLOAD_RAN"
GOOD_FAIRSEQ = "preln_heads"


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # inspect | convert | verify | diff
    make: Callable[[Path, Path], list[str]]  # (tmp, converted folder) -> argv after the command
    allowed: tuple[int, ...] = (2,)  # exit codes that are correct for this input
    names: bool = True  # the error line must name one of the paths given


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------------ input factories


def _fairseq_copy(tmp: Path, name: str = GOOD_FAIRSEQ) -> Path:
    dest = tmp / "src"
    shutil.copytree(FIXTURES / name, dest)
    (dest / "reference.pt").unlink()
    return dest


def _hf_copy(tmp: Path, converted: Path) -> Path:
    dest = tmp / "hf"
    shutil.copytree(converted, dest)
    return dest


def _with_model_bytes(data_fn: Callable[[bytes], bytes], name: str = GOOD_FAIRSEQ):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp, name)
        model = src / "model.pt"
        model.write_bytes(data_fn(model.read_bytes()))
        return src

    return make


def _flip(data: bytes, rng: random.Random, n: int) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _hostile(kind: str):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        good = torch.load(src / "model.pt", weights_only=False)
        if kind == "system":
            good["extra_state"] = {"x": Payload(tmp / MARKER)}
        else:
            good["extra_state"] = {"x": shutil.rmtree}
        torch.save(good, src / "model.pt")
        return src

    return make


def _zip_not_torch(tmp: Path) -> Path:
    src = _fairseq_copy(tmp)
    with zipfile.ZipFile(src / "model.pt", "w") as z:
        z.writestr("hello.txt", "not a torch archive")
    return src


def _nonfinite(value: float):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        ckpt = torch.load(src / "model.pt", weights_only=False)
        ckpt["model"]["encoder.sentence_encoder.layers.1.fc2.weight"][3, 5] = value
        torch.save(ckpt, src / "model.pt")
        return src

    return make


def _dict_edit(fn: Callable[[list[str]], list[str]]):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        lines = (src / "dict.txt").read_text().splitlines()
        (src / "dict.txt").write_text("\n".join(fn(lines)) + "\n")
        return src

    return make


def _garbage_spm(tmp: Path) -> Path:
    src = _fairseq_copy(tmp)
    (src / "sentencepiece.bpe.model").write_bytes(random.Random(SEED).randbytes(4096))
    return src


def _hf_edit(fn: Callable[[Path], None]):
    def make(tmp: Path, converted: Path) -> Path:
        dest = _hf_copy(tmp, converted)
        fn(dest)
        return dest

    return make


def _shard_lies(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = "roberta.encoder.layer.0.output.dense.weight"
    header[name]["shape"] = [header[name]["shape"][0] * 4, header[name]["shape"][1]]
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(data[8 + n :]))


def _hf_nan(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    begin = 8 + n + header["roberta.encoder.layer.1.output.dense.weight"]["data_offsets"][0]
    data[begin : begin + 4] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(data))


def _split_shards(folder: Path) -> None:
    """Re-shard an HF folder by converting again with a small shard size, then drop shard 2."""
    from xlmr_tools import convert

    shutil.rmtree(folder)
    convert(fixture(GOOD_FAIRSEQ), folder, verify=False, max_shard_size="100KB")
    next(folder.glob("model-00002-*.safetensors")).unlink()


def _hostile_bin(tmp: Path, converted: Path) -> Path:
    dest = _hf_copy(tmp, converted)
    from xlmr_tools.io.safetensors import SafetensorsFile

    st = SafetensorsFile(dest / "model.safetensors")
    state = {n: st.tensor(n).clone() for n in st.infos}
    state["x"] = Payload(tmp / MARKER)
    (dest / "model.safetensors").unlink()
    torch.save(state, dest / "pytorch_model.bin")
    return dest


# ------------------------------------------------------------------------------------------------ the case table


def _fairseq_inputs() -> list[tuple[str, Callable[[Path], Path], tuple[int, ...], bool]]:
    """(id, factory, allowed exit codes for convert, detectable by inspect without reading tensor data)."""
    rng = random.Random(SEED)
    zip_size = (FIXTURES / GOOD_FAIRSEQ / "model.pt").stat().st_size
    legacy_size = (FIXTURES / "postln_legacy" / "model.pt").stat().st_size
    out: list[tuple[str, Callable[[Path], Path], tuple[int, ...], bool]] = []
    for cut in sorted({0, 1, 7, 64, 512} | {rng.randrange(zip_size) for _ in range(12)}):
        out.append((f"zip-truncated-{cut}", _with_model_bytes(lambda d, c=cut: d[:c]), (2,), True))
    for cut in sorted({1, 100} | {rng.randrange(legacy_size) for _ in range(8)}):
        out.append((f"legacy-truncated-{cut}", _with_model_bytes(lambda d, c=cut: d[:c], "postln_legacy"), (2,), True))
    for i in range(10):
        flips = rng.choice([1, 4, 64])
        seed = rng.randrange(2**32)
        # A flip inside tensor data is a valid file with other numbers: converting it is correct (0); a flip that
        # makes a NaN, or breaks the pickle or the zip, is bad input (2). Never a traceback, never a leftover.
        # A flip to a huge exponent is a valid file whose model computes Inf/NaN: convert's output check fails (1).
        out.append(
            (
                f"bitflip-{i}-x{flips}",
                _with_model_bytes(lambda d, s=seed, n=flips: _flip(d, random.Random(s), n)),
                (0, 1, 2),
                False,
            )
        )
    out += [
        ("empty-file", _with_model_bytes(lambda d: b""), (2,), True),
        ("text-file", _with_model_bytes(lambda d: b"just some text\n" * 10), (2,), True),
        ("zip-not-torch", _zip_not_torch, (2,), True),
        ("payload-os-system", _hostile("system"), (2,), True),
        ("payload-module-import", _hostile("import"), (2,), True),
        ("nan-weight", _nonfinite(float("nan")), (2,), False),
        ("inf-weight", _nonfinite(float("inf")), (2,), False),
    ]
    return out


def _tokenizer_inputs() -> list[tuple[str, Callable[[Path], Path]]]:
    return [
        ("dict-bad-line", _dict_edit(lambda ls: ls[:10] + ["this line has no count"] + ls[10:])),
        ("dict-too-many-symbols", _dict_edit(lambda ls: ls + ["madeupword9999 0"])),
        ("dict-too-few-symbols", _dict_edit(lambda ls: ls[:-3])),
        # a sentencepiece piece renamed away: dict.txt lacks it (another order alone is a valid dictionary)
        ("dict-lacks-a-piece", _dict_edit(lambda ls: ["notapiece " + ls[0].split()[-1], *ls[1:]])),
        (
            "dict-not-utf8",
            lambda tmp: (lambda s: ((s / "dict.txt").write_bytes(b"\xff\xfe 1\n"), s)[1])(_fairseq_copy(tmp)),
        ),
        ("spm-garbage", _garbage_spm),
    ]


def _hf_inputs() -> list[tuple[str, Callable[[Path, Path], Path], tuple[int, ...]]]:
    return [
        ("hf-config-not-json", _hf_edit(lambda f: (f / "config.json").write_text("{not json")), (2,)),
        ("hf-no-config", _hf_edit(lambda f: (f / "config.json").unlink()), (2,)),
        ("hf-missing-shard", _hf_edit(_split_shards), (2,)),
        ("hf-shard-header-lies", _hf_edit(_shard_lies), (2,)),
        (
            "hf-shard-truncated",
            _hf_edit(lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000])),
            (2,),
        ),
        ("hf-nan-weight", _hf_edit(_hf_nan), (1,)),
        ("hf-payload-bin", _hostile_bin, (2,)),
        ("hf-is-a-file", lambda tmp, conv: (lambda p: (p.write_text("x"), p)[1])(tmp / "file"), (2,)),
    ]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for cid, make, convert_codes, structural in _fairseq_inputs():
        cases.append(
            Case(f"inspect-{cid}", "inspect", lambda tmp, conv, m=make: [str(m(tmp))], (2,) if structural else (0, 2))
        )
        cases.append(
            Case(f"convert-{cid}", "convert", lambda tmp, conv, m=make: [str(m(tmp)), str(tmp / "out")], convert_codes)
        )
        cases.append(
            Case(
                f"verify-{cid}",
                "verify",
                lambda tmp, conv, m=make: [str(m(tmp)), str(conv)],
                (1, 2) if 0 not in convert_codes else (0, 1, 2),
            )
        )
        cases.append(
            Case(
                f"diff-{cid}",
                "diff",
                lambda tmp, conv, m=make: [str(conv), str(m(tmp))],
                (1, 2) if 0 not in convert_codes else (0, 1, 2),
            )
        )
    for cid, make in _tokenizer_inputs():
        cases.append(Case(f"convert-{cid}", "convert", lambda tmp, conv, m=make: [str(m(tmp)), str(tmp / "out")], (2,)))
    for cid, make, codes in _hf_inputs():
        cases.append(
            Case(
                f"verify-{cid}",
                "verify",
                lambda tmp, conv, m=make: [str(fixture(GOOD_FAIRSEQ)), str(m(tmp, conv))],
                codes,
            )
        )
        cases.append(Case(f"diff-{cid}", "diff", lambda tmp, conv, m=make: [str(conv), str(m(tmp, conv))], codes))
        cases.append(
            Case(
                f"inspect-{cid}",
                "inspect",
                lambda tmp, conv, m=make: [str(m(tmp, conv))],
                (0,) if cid == "hf-nan-weight" else codes,
            )
        )
    cases += [
        Case(
            "convert-missing-head",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str(tmp / "out"), "--head", "sst2"],
            (2,),
        ),
        Case(
            "verify-missing-head",
            "verify",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str(conv), "--head", "sst2"],
            (2,),
        ),
        Case("convert-src-is-dir-without-checkpoint", "convert", lambda tmp, conv: [str(tmp), str(tmp / "out")], (2,)),
        Case(
            "convert-out-is-a-file",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str((tmp / "f").write_text("x") and tmp / "f")],
            (2,),
        ),
        Case(
            "convert-out-parent-unwritable",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), "/proc/xlmr-out"],
            (2,),
        ),
        Case("inspect-missing", "inspect", lambda tmp, conv: [str(tmp / "missing")], (2,)),
        Case("diff-missing", "diff", lambda tmp, conv: [str(conv), str(tmp / "missing")], (2,)),
    ]
    return cases


CASES = _cases()
TALLY = {"inputs": 0, "tracebacks": 0, "leftovers": 0, "payloads run": 0, "wrong exit code": 0}  # printed at the end


@pytest.fixture(scope="module")
def hf_good(converted) -> Path:
    return converted[GOOD_FAIRSEQ]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(cli, case: Case, tmp_path: Path, hf_good: Path):
    work = tmp_path / "work"
    work.mkdir()
    before = set(hf_good.parent.iterdir())
    argv = case.make(work, hf_good)
    r = cli(case.command, *argv)
    left = [p for p in work.rglob("*") if ".xlmr-partial-" in p.name]
    TALLY["inputs"] += 1
    TALLY["tracebacks"] += "Traceback" in r.output
    TALLY["leftovers"] += bool(left) or ((work / "out").exists() and r.exit_code != 0)
    TALLY["payloads run"] += (work / MARKER).exists()
    TALLY["wrong exit code"] += r.exit_code not in case.allowed
    assert r.exit_code in case.allowed, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    assert not (work / MARKER).exists(), "a checkpoint payload ran"
    assert not (work / "out").exists() or r.exit_code == 0
    assert not left, "temporary folder left behind"
    assert set(hf_good.parent.iterdir()) == before
    if r.exit_code != 0:
        lines = error_lines(r.stderr)
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("error: ")
        paths = [a for a in argv if "/" in a] + [str(work)]
        assert any(p in lines[0] or str(Path(p).parent) in lines[0] for p in paths), lines[0]


def test_reliability_doc_matches_the_suite():
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    m = re.search(r"(\d+) generated bad inputs", doc)
    assert m and int(m.group(1)) == len(CASES), f"docs/reliability.md must say {len(CASES)} generated bad inputs"
