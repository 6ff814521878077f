"""compare.side: the two models' work side by side, each on half the threads, and back to all of them after."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from xlmr_tools.compare.side import Side


@pytest.fixture
def threads():
    """Set this process's intra-op threads for a test (a setting: it works whatever the machine's cores)."""
    before = torch.get_num_threads()

    def set_to(n: int) -> None:
        torch.set_num_threads(n)

    yield set_to
    torch.set_num_threads(before)


def _where() -> tuple[str, int, bool]:
    return threading.current_thread().name, torch.get_num_threads(), torch.is_grad_enabled()


def test_side_by_side_on_half_the_threads_each(threads):
    threads(4)
    side = Side("cpu")
    try:
        with torch.no_grad():
            (name_a, threads_a, grad_a), (name_b, threads_b, grad_b) = side.run(_where, _where)
        assert name_a != name_b == threading.current_thread().name
        assert threads_a == threads_b == 2
        assert not grad_a and not grad_b  # the caller's gradient mode, on the helper too
        assert torch.get_num_threads() == 4  # all of them again between the side-by-side parts
        (_, _, grad_a), _ = side.run(_where, _where)
        assert grad_a
    finally:
        side.close()


@pytest.mark.parametrize(("n", "device"), [(3, "cpu"), (1, "cpu"), (2, "meta")])
def test_sequential_where_halves_cannot_help(threads, n, device):
    threads(n)
    side = Side(device)
    order: list[str] = []
    a = lambda: order.append("a") or _where()
    b = lambda: order.append("b") or _where()
    (name_a, threads_a, _), (name_b, threads_b, _) = side.run(a, b)
    side.close()
    assert order == ["a", "b"]
    assert name_a == name_b == threading.current_thread().name
    assert threads_a == threads_b == n


def test_an_interrupt_inside_the_helpers_start_waits_for_its_work(threads, sigterm_inside_start):
    from xlmr_tools.errors import Terminated

    threads(2)
    fired = sigterm_inside_start("xlmr-side")
    done: list[str] = []

    def fa() -> None:
        time.sleep(0.3)
        done.append("a")

    side = Side("cpu")
    try:
        with pytest.raises(Terminated):
            side.run(fa, lambda: done.append("b"))
        assert fired and done == ["a"]  # fb never began; fa was done before the interrupt went up
    finally:
        side.close()


def test_an_error_on_either_side_is_raised_after_both_are_done(threads):
    threads(2)
    side = Side("cpu")
    started, finished = threading.Event(), threading.Event()

    def slow_ok() -> int:
        started.set()
        time.sleep(0.2)
        finished.set()
        return 1

    def fail_once_a_runs() -> int:
        started.wait(5)
        raise ValueError("b broke")

    def a_breaks() -> int:
        raise RuntimeError("a broke")

    try:
        with pytest.raises(ValueError, match="b broke"):
            side.run(slow_ok, fail_once_a_runs)
        assert finished.is_set()  # the helper was done with its model before the error went up
        with pytest.raises(RuntimeError, match="a broke"):
            side.run(a_breaks, lambda: 2)
        assert torch.get_num_threads() == 2
    finally:
        side.close()


def test_layers_side_by_side_give_the_figures_of_one_at_a_time(threads):
    """The same products on half the threads, two at once: an exact model pair still compares 0.0 (kernels on the
    same thread count on both sides), and the figures match a sequential run."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True).eval()
    x = torch.randn(3, 17, 64)
    threads(2)
    side = Side("cpu")
    with torch.no_grad():
        ya, yb = side.run(lambda: layer(x), lambda: layer(x))
        side.close()
        threads(1)
        alone = layer(x)
    assert torch.equal(ya, yb)
    torch.testing.assert_close(ya, alone, rtol=1e-5, atol=1e-6)
