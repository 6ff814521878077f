"""Read-ahead is a hint: it must never change a result, fail a run, or read what it was not asked to."""

from __future__ import annotations

import threading

import torch

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
        ahead.submit(get(name))
    ahead.close()
    assert done.wait(10)
    assert [n for n, _ in seen] == ["first", "bad", "last"]
    assert {t for _, t in seen} == {"xlmr-readahead"}
