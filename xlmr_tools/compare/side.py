"""Two models' work side by side on a CPU, each on half the intra-op threads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch

from xlmr_tools.interrupts import deferred_interrupts

T = TypeVar("T")
U = TypeVar("U")


class Side:
    """Runs the two models' work side by side on a CPU: model a's on a helper thread while the caller runs model
    b's, each on half the intra-op threads. Why: with two threads on one product, time one core loses to the
    read-ahead's I/O (interrupts, its thread) stalls the other at every product's end; two independent products
    lose only that time (faster on 2 cores, quiet and beside an O_DIRECT reader: docs/benchmarks.md). Sequential
    where it cannot help: another device, an
    odd thread count. Both models still run the same kernels on the same thread count, so identical weights still
    give identical outputs."""

    def __init__(self, device: str) -> None:
        threads = torch.get_num_threads()
        self.half = threads // 2 if torch.device(device).type == "cpu" and threads % 2 == 0 else 0
        self._threads = threads
        self._pool = ThreadPoolExecutor(1, "xlmr-side", torch.set_num_threads, (self.half,)) if self.half else None

    def run(self, fa: Callable[[], T], fb: Callable[[], U]) -> tuple[T, U]:
        """fa() and fb(), at once where the device allows; fa runs with the caller's gradient mode."""
        if self._pool is None:
            return fa(), fb()
        grad = torch.is_grad_enabled()  # thread-local: the helper takes the caller's

        def on_helper() -> T:
            with torch.set_grad_enabled(grad):
                return fa()

        pending = None
        with self._split():
            try:
                with deferred_interrupts():  # the helper's first start: interrupted inside it, fa would run unjoined
                    pending = self._pool.submit(on_helper)
                yb = fb()
            except BaseException:
                if pending is not None:
                    wait([pending])  # the helper is done with its model before the error goes up
                raise
            return pending.result(), yb

    @contextlib.contextmanager
    def _split(self) -> Iterator[None]:
        torch.set_num_threads(self.half)  # this thread's share; the rest of the run keeps all of them
        try:
            yield
        finally:
            torch.set_num_threads(self._threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
