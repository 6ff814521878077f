"""The weight-level proof and the source digest: they must catch what they claim to catch, and start early."""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import copy_fixture, fixture, leftovers

from xlmr_tools import VerificationFailed, convert
from xlmr_tools.compare.written import (
    AHEAD_SHARE,
    MAX_AHEAD,
    MIN_AHEAD,
    Written,
    WrittenCheck,
    _all_finite,
    same_bits,
    write_ahead,
)
from xlmr_tools.io.digest import SourceDigest, digest_for
from xlmr_tools.io.memory import memory_room
from xlmr_tools.io.safetensors import TensorToWrite, write_shards
from xlmr_tools.io.torch_zip import tensor_offsets
from xlmr_tools.sources.hf import open_folder
from xlmr_tools.sources.locate import find_checkpoint_file

convert_module = importlib.import_module("xlmr_tools.ops.convert")  # the attribute is the function
written_module = importlib.import_module("xlmr_tools.compare.written")
digest_module = importlib.import_module("xlmr_tools.io.digest")


def test_wrong_copy_offset_is_caught(cli, tmp_path, monkeypatch):
    """The writer copies zip bytes from computed offsets; the check reads the source through torch. A copy from
    a wrong offset must fail the conversion (exit 1) and publish nothing, with or without --no-verify."""

    def shifted(path, tensors):
        offsets = tensor_offsets(path, tensors)
        name = "encoder.sentence_encoder.layers.1.fc1.weight"
        return {**offsets, name: offsets[name] + 4}

    monkeypatch.setattr(convert_module, "tensor_offsets", shifted)
    with pytest.raises(VerificationFailed, match=r"layer\.1\.intermediate\.dense\.weight differs from its source"):
        convert(fixture("preln"), tmp_path / "api")
    r = cli("convert", fixture("preln"), tmp_path / "out", "--no-verify")
    assert r.exit_code == 1 and "differs from its source" in r.stderr, r.output
    assert not (tmp_path / "api").exists() and not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_headers_must_place_each_checked_tensor(tmp_path):
    tensors = [
        TensorToWrite(n, (lambda n=n: torch.full((3, 5), float(n[-1]))), torch.float32, (3, 5)) for n in ("t1", "t2")
    ]
    check = WrittenCheck("src", lambda n: None, threading.Event())
    files = write_shards(tmp_path, tensors, 10**9, on_tensor=lambda t, p, o: check.put(Written(t, p, o)))
    check.close()
    assert check.run() is None and check.headers_agree(tmp_path, files) is None
    moved = check.checked[1]
    check.checked[1] = Written(moved.tensor, moved.path, moved.offset + 4)
    assert check.headers_agree(tmp_path, files) == "t2"


def test_bit_equality_and_finiteness():
    a = torch.randn(1000)
    b = a.clone()
    assert same_bits(a, b) and same_bits(a[:0], b[:0])
    b[7] = torch.nextafter(b[7], torch.tensor(9.0))
    assert not same_bits(a, b)
    assert not same_bits(torch.tensor([0.0]), torch.tensor([-0.0]))  # equal values, different bits
    assert not same_bits(torch.zeros(4), torch.zeros(2, 2))
    assert _all_finite(a) and not _all_finite(torch.tensor([1.0, float("nan")]))
    assert _all_finite(torch.tensor([6e4, 6e4], dtype=torch.float16))  # the sum overflows fp16, the values do not
    assert _all_finite(torch.tensor([3e38, 3e38]))  # nor does it make fp32 values infinite
    assert not _all_finite(torch.tensor([3e38, float("-inf")], dtype=torch.bfloat16))


def test_digest_is_the_files_sha256_and_is_reused_for_that_file_only(tmp_path):
    src = copy_fixture("preln", tmp_path / "src")
    ckpt = find_checkpoint_file(src)
    expected = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    started = SourceDigest(ckpt)
    assert digest_for(ckpt, started) is started  # the CLI's early start is used
    assert started.result() == expected
    assert digest_for(ckpt) is not started  # nothing handed over: hashed anew
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: still hashing when handed over
    other = SourceDigest(big)
    assert digest_for(ckpt, other) is not other  # another file's digest is not this file's …
    with pytest.raises(RuntimeError, match="cancelled"):
        other.result()  # … and stops: nothing converts the file it reads
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert SourceDigest(empty).result() == hashlib.sha256(b"").hexdigest()


def test_digest_refuses_a_file_that_changed(tmp_path):
    src = copy_fixture("preln", tmp_path / "src")
    ckpt = find_checkpoint_file(src)
    digest = SourceDigest(ckpt)
    digest._thread.join()
    with open(ckpt, "ab") as f:
        f.write(b"\0")
    with pytest.raises(Exception, match="changed while"):
        digest.result()


def test_cancelled_digest_stops_early(tmp_path):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: hashing it all would take seconds
    digest = SourceDigest(big)
    digest.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        digest.result()


@pytest.mark.parametrize("handed", ["its own", "another file's", "none"])
def test_convert_uses_the_digest_it_is_handed(tmp_path, monkeypatch, handed):
    """The CLI starts the hash before torch imports and hands it to convert() (no registry between them): convert
    hashes no second time where the digest is of the file it opens, and hashes that file where it is not."""
    src = copy_fixture("preln", tmp_path / "src")
    ckpt = find_checkpoint_file(src)
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3)
    given = {"its own": lambda: SourceDigest(ckpt), "another file's": lambda: SourceDigest(big), "none": lambda: None}
    digest = given[handed]()
    started: list[Path] = []

    class Counted(SourceDigest):
        def __init__(self, source, *args, **kwargs):
            started.append(Path(getattr(source, "path", source)))
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(digest_module, "SourceDigest", Counted)
    result = convert(src, tmp_path / "out", verify=False, digest=digest)
    assert result.source_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert started == ([] if handed == "its own" else [ckpt])


def test_model_card_records_the_sources_sha256(converted):
    card = (converted["preln_heads:mnli"] / "README.md").read_text()
    assert hashlib.sha256((fixture("preln_heads") / "model.pt").read_bytes()).hexdigest() in card


def test_cli_starts_without_torch():
    """`xlmr --help` is instant, and convert can start hashing before torch is imported (~2 s)."""
    code = (
        "import sys, xlmr_tools.cli.app, xlmr_tools; assert 'torch' not in sys.modules; "
        "import xlmr_tools.ops.convert; assert callable(xlmr_tools.convert) and callable(xlmr_tools.verify); "
        "from xlmr_tools import ConvertResult, BadInput"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr


def _paced_write(tmp_path, sizes: list[int], reader, ahead: int):
    """Write float32 tensors of `sizes` elements through a paced WrittenCheck while `reader(check, tensors)` runs."""
    tensors = [
        TensorToWrite(f"t{i}", (lambda i=i, n=n: torch.arange(n, dtype=torch.float32) + i), torch.float32, (n,))
        for i, n in enumerate(sizes)
    ]
    check = WrittenCheck("src", lambda n: None, threading.Event(), ahead)

    def write():
        try:
            return write_shards(tmp_path, tensors, 10**9, on_tensor=lambda t, p, o: check.put(Written(t, p, o)),
                                before_tensor=check.pace)  # fmt: skip
        finally:
            check.close()

    with ThreadPoolExecutor(2) as pool:
        files, checked = pool.submit(write), pool.submit(check.run)
        try:
            reader(check, tensors)
        finally:
            check.release()
        assert checked.result() is None and check.headers_agree(tmp_path, files.result()) is None


def test_paced_writer_stays_a_bounded_distance_ahead_of_the_reader(tmp_path):
    """convert verifies layer k while later layers are written: the writer may not run more than `ahead` bytes
    ahead of what the verification asked for (so a memory cap keeps both sides cached), and the reader gets each
    tensor's written bytes only once they are proven equal to the source."""
    size = 4 * 1000
    seen = []

    def reader(check, tensors):
        for i, t in enumerate(tensors):
            got = check.tensor(t.name)
            assert torch.equal(got, t.source()) and t.name in {w.tensor.name for w in check.checked}
            time.sleep(0.02)  # let the writer run as far as it may
            seen.append((i, check._written))

    _paced_write(tmp_path, [1000] * 12, reader, 2 * size)
    for i, started in seen:
        assert started <= (i + 1) * size + 2 * size + size, (i, started)  # asked + ahead + the next tensor
    assert seen[0][1] < 12 * size  # it did wait


def test_paced_writer_never_deadlocks_a_reader_asking_far_ahead(tmp_path):
    """A reader asking for a tensor the pace would not reach yet (the folder's final norm, asked late but written
    early, or the reverse) must get it: while the reader waits, the writer is never held back."""

    def reader(check, tensors):
        assert torch.equal(check.tensor("t9"), tensors[9].source())  # far beyond ahead = 0
        for t in tensors:
            assert torch.equal(check.tensor(t.name), t.source())

    _paced_write(tmp_path, [100] * 10, reader, 0)


def test_convert_paced_to_the_tightest_window_is_exact(tmp_path, monkeypatch):
    """With no write-ahead at all the writer moves only when the verification asks for the next layer: the
    conversion still completes, proves every stage, and writes the same bytes as an unpaced --no-verify run."""
    monkeypatch.setattr(written_module, "MIN_AHEAD", 0)
    monkeypatch.setattr(written_module, "MAX_AHEAD", 0)
    paced = convert(fixture("preln"), tmp_path / "paced")
    assert paced.outputs is not None and paced.outputs.worst is None
    paced_layers = open_folder(tmp_path / "paced").description.layers
    assert [r.stage for r in paced.outputs.rows][1 : paced_layers + 1] == [f"layer {k}" for k in range(paced_layers)]
    convert(fixture("preln"), tmp_path / "plain", verify=False)
    for f in (tmp_path / "plain").iterdir():
        if f.suffix in (".safetensors", ".json") and f.name != "README.md":
            assert f.read_bytes() == (tmp_path / "paced" / f.name).read_bytes(), f.name


def test_write_ahead_is_a_share_of_the_memory_room_within_bounds(tmp_path):
    """The window follows the memory the process may fill (a cgroup cap or MemAvailable), within its bounds."""
    assert write_ahead(None) == MAX_AHEAD and write_ahead(10**12) == MAX_AHEAD
    assert write_ahead(0) == MIN_AHEAD and write_ahead(AHEAD_SHARE * (MIN_AHEAD + 2)) == MIN_AHEAD + 2
    room = memory_room()
    assert room is None or room > 0  # this test process can always keep some page cache


def test_convert_failing_its_output_check_mid_write_publishes_nothing(tmp_path, monkeypatch):
    """The output check fails while the paced writer still has layers to write: the conversion raises, the writer
    and the check are joined, and neither OUT nor a temporary folder is left behind."""
    from xlmr_tools.compare import stages

    monkeypatch.setattr(written_module, "MIN_AHEAD", 0)
    monkeypatch.setattr(written_module, "MAX_AHEAD", 0)
    # no |Δ| is below a negative tolerance (which --tol refuses, so the default by dtype is made one)
    monkeypatch.setitem(stages.TOLERANCE, torch.float32, -1.0)
    before = set(threading.enumerate())
    with pytest.raises(VerificationFailed, match="outputs differ from fairseq at embeddings"):
        convert(fixture("preln"), tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert [t.name for t in set(threading.enumerate()) - before if not t.daemon] == []  # writer and check joined


def test_paced_digest_waits_for_the_reader_and_still_hashes_everything(tmp_path):
    """convert keeps the source hash just ahead of its writer (so the writer finds the pages cached under a memory
    cap); held at the reader's position it does not finish, and released it hashes the whole file exactly."""
    data = os.urandom(5 * 1024 * 1024 + 123)
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    digest = SourceDigest(path, ahead=0)
    time.sleep(0.3)
    assert digest._thread.is_alive() and digest._hex is None  # held at the first chunk
    digest.advance(2 * 1024 * 1024)
    digest.pace(1024 * 1024)
    time.sleep(0.3)
    assert digest._thread.is_alive() and digest._hex is None  # up to 3 MiB of 5: still held
    digest.release()
    assert digest.result() == hashlib.sha256(data).hexdigest()
