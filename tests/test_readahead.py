"""Read-ahead is a hint: it must never change a result, fail a run, or read what it was not asked to."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import torch

from benchmarks.measure import evict
from xlmr_tools.io.direct import DirectFiles, resident
from xlmr_tools.io.readahead import ReadAhead, will_need
from xlmr_tools.io.safetensors import SafetensorsFile, TensorToWrite, write_shards


def test_will_need_takes_any_cpu_tensor(tmp_path):
    """Mapped file pages, anonymous memory, views at odd offsets, empty tensors: asked for, never changed."""
    t = torch.arange(3 * 1024 * 1024, dtype=torch.float32)
    write_shards(tmp_path, [TensorToWrite("w", lambda: t, torch.float32, tuple(t.shape))], 10**9)
    mapped = SafetensorsFile(tmp_path / "model.safetensors").tensor("w")
    for x in (mapped, mapped[12345:], mapped[::7], torch.randn(5), torch.empty(0), t.view(1024, -1)[3]):
        before = x.clone()
        will_need(x)
        assert torch.equal(x, before)


def test_read_ahead_runs_getters_in_order_on_its_thread_and_survives_failures():
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def get(name: str):
        def run():
            seen.append((name, threading.current_thread().name))
            if name == "bad":
                raise KeyError(name)  # e.g. a tensor the check stopped proving: the reader meets it, not this
            if name == "last":
                done.set()
            return [torch.ones(4)]

        return run

    ahead = ReadAhead()
    for name in ("first", "bad", "last"):
        ahead.submit(name, get(name))
    ahead.close()
    assert done.wait(10)
    assert [n for n, _ in seen] == ["first", "bad", "last"]
    assert {t for _, t in seen} == {"xlmr-readahead"}


def _evict(*paths: Path) -> None:
    """Drop the files' pages from the page cache, as a cold run finds them (the benchmarks' own eviction)."""
    for path in paths:
        evict(path)


def _mapped_tensors(tmp_path: Path) -> dict[str, torch.Tensor]:
    """Tensors mapped from a safetensors file and a torch zip checkpoint, as the sources open them."""
    g = torch.Generator().manual_seed(0)
    big = torch.randn(3 * 1024 * 1024 + 5, generator=g)
    half = torch.randn(1000, 37, generator=g).to(torch.bfloat16)
    (tmp_path / "st").mkdir()
    write_shards(
        tmp_path / "st",
        [TensorToWrite(n, lambda t=t: t, t.dtype, tuple(t.shape)) for n, t in (("big", big), ("half", half))],
        10**9,
    )
    torch.save({"big": big, "half": half}, tmp_path / "model.pt")
    _evict(tmp_path / "st" / "model.safetensors", tmp_path / "model.pt")
    st = SafetensorsFile(tmp_path / "st" / "model.safetensors")
    pt = torch.load(tmp_path / "model.pt", mmap=True, weights_only=True)
    out = {f"st.{n}": st.tensor(n) for n in ("big", "half")} | {f"pt.{n}": pt[n] for n in ("big", "half")}
    for name in list(out):  # odd offsets: O_DIRECT reads whole blocks around them
        out[name + "[12345:]"] = out[name].reshape(-1)[12345:]
    return out


def test_view_hands_out_the_file_bytes_read_ahead(tmp_path):
    """Cold tensors are read (O_DIRECT where the file system allows it) into a private copy equal to the mapping;
    where that cannot be done the mapping itself comes back. Either way the same values, dtype and shape."""
    tensors = _mapped_tensors(tmp_path)
    cold = {n: not resident(t) for n, t in tensors.items()}
    direct = {n: DirectFiles().read(t) is not None for n, t in tensors.items()}
    with ReadAhead() as ahead:
        ahead.submit("all", lambda: list(tensors.values()))
        views = {name: ahead.view(t) for name, t in tensors.items()}  # before any comparison touches a mapping
        for name, t in tensors.items():
            v = views[name]
            assert v.dtype == t.dtype and v.shape == t.shape and torch.equal(v, t), name
            copied = v.data_ptr() != t.data_ptr()
            assert copied == (cold[name] and direct[name]), name
        ahead.release("all")
        assert all(ahead.view(t).data_ptr() == t.data_ptr() for t in tensors.values())  # released: the mapping


def test_view_waits_for_a_submission_it_has_not_looked_at_yet(tmp_path):
    tensors = _mapped_tensors(tmp_path)
    t = tensors["st.big"]
    started, go = threading.Event(), threading.Event()

    def slow():
        started.set()
        go.wait(10)
        return [t]

    with ReadAhead() as ahead:
        ahead.submit("first", slow)
        ahead.submit("second", lambda: [t])
        assert started.wait(10)
        threading.Timer(0.2, go.set).start()
        assert torch.equal(ahead.view(t), t)  # waited for both submissions to be looked at, not raced past them


def test_view_is_the_identity_where_nothing_is_read(tmp_path):
    tensors = _mapped_tensors(tmp_path)
    t = tensors["pt.big"]
    off = ReadAhead(enabled=False)
    off.submit("k", lambda: [t])
    assert off.view(t) is t
    with ReadAhead() as ahead:
        assert ahead.view(t) is t  # never submitted
        ahead.submit("bad", lambda: (_ for _ in ()).throw(KeyError("x")))
        assert ahead.view(t) is t
    closed = ReadAhead()
    closed.submit("k", lambda: [t])
    closed.close()
    assert torch.equal(closed.view(t), t)
    anon = torch.randn(10)
    assert DirectFiles().read(anon) is None


def test_a_replaced_file_is_never_read_in_place_of_the_mapped_one(tmp_path):
    """The mapped file was replaced on disk (a conversion with --force): its path now names another file, which
    must not be read; the mapping still holds the old bytes."""
    tensors = _mapped_tensors(tmp_path)
    t = tensors["st.big"]
    before = t.clone()
    replacement = tmp_path / "other.safetensors"
    replacement.write_bytes(b"\0" * (tmp_path / "st" / "model.safetensors").stat().st_size)
    os.replace(replacement, tmp_path / "st" / "model.safetensors")
    assert DirectFiles().read(t) is None
    with ReadAhead() as ahead:
        ahead.submit("k", lambda: [t])
        assert torch.equal(ahead.view(t), before)


def test_verify_reading_ahead_from_a_cold_folder_finds_a_perturbed_layer(converted, tmp_path):
    """verify on files out of the page cache: the staged copies are what both the forward and the weight
    comparison see, so a changed element is found in its layer, in the weights and in the outputs."""
    from conftest import fixture
    from test_verify_diff import _perturb

    from xlmr_tools import verify

    src = shutil.copytree(fixture("preln"), tmp_path / "src")
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(converted["preln"], good)
    tensor = "roberta.encoder.layer.1.intermediate.dense.weight"
    _perturb(converted["preln"], bad, tensor)
    _evict(*src.glob("*.pt"), good / "model.safetensors", bad / "model.safetensors")
    assert verify(src, good).ok
    _evict(*src.glob("*.pt"), bad / "model.safetensors")
    report = verify(src, bad)
    assert not report.ok
    assert [d.name for d in report.weights.diffs if not d.ok] == [tensor]
    stages = {row.stage: row.ok for row in report.outputs.rows}
    assert stages["layer 0"] and not stages["layer 1"]


def test_copies_held_at_once_stay_within_the_limit(tmp_path):
    """Beyond `limit` bytes of copies a tensor is left to the page cache (the mapping); released copies make room."""
    tensors = _mapped_tensors(tmp_path)
    big, half = tensors["st.big"], tensors["st.half"]
    if resident(big) or DirectFiles().read(big) is None:
        return  # nothing is copied on this file system (no O_DIRECT, or pages that cannot be evicted)
    n = big.numel() * big.element_size()
    with ReadAhead(limit=n + 3 * 4096) as ahead:  # the copy is read in whole 4 KiB blocks, one more to align
        ahead.submit("first", lambda: [big, half])
        assert ahead.view(big).data_ptr() != big.data_ptr()  # copied
        assert ahead.view(half).data_ptr() == half.data_ptr()  # would pass the limit: the mapping
        assert torch.equal(ahead.view(half), half)
        ahead.submit("again", lambda: [big])  # a second copy of the same bytes would pass the limit too
        assert ahead.view(big).data_ptr() != big.data_ptr()  # (the first one is shared)
        ahead.release("first")
        ahead.release("again")
        assert ahead.view(big).data_ptr() == big.data_ptr()
        ahead.submit("second", lambda: [big])
        assert ahead.view(big).data_ptr() != big.data_ptr()  # room again


def test_a_released_buffer_is_read_into_again_only_once_nothing_holds_it(tmp_path):
    """Buffers are reused (fresh memory costs the kernel a fault and a zeroing per page), but never while a view of
    them lives: a module still holding its weights in a released copy keeps its values."""
    tensors = _mapped_tensors(tmp_path)
    first, second = tensors["st.big"], tensors["pt.big"]  # same size, other files
    if resident(first) or resident(second) or DirectFiles().read(first) is None:
        return  # nothing is copied on this file system
    with ReadAhead() as ahead:
        ahead.submit("a", lambda: [first])
        kept = ahead.view(first)  # still held after its release, as a loaded module holds its weights
        before = kept.clone()
        ahead.release("a")
        ahead.submit("b", lambda: [second])
        other = ahead.view(second)
        assert abs(other.data_ptr() - kept.data_ptr()) > 4 * 4096  # not read into the held buffer
        assert torch.equal(kept, before) and torch.equal(other, before)  # the same values, from the other file
        where = other.data_ptr()
        del other
        ahead.release("b")  # nothing holds it now
        ahead.submit("c", lambda: [first])
        again = ahead.view(first)
        assert abs(again.data_ptr() - where) < 4 * 4096  # read into the released buffer
        assert torch.equal(again, before) and torch.equal(kept, before)
