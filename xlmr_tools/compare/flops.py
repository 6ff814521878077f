"""How far a verification is from the hardware's limit: the FLOPs of the real (non-pad) tokens against a GEMM peak
measured on the same device, dtype and threads, in the same run.

Per model, per text of n tokens, per layer (hidden H, FFN F): q/k/v/out projections 8·n·H², FFN 4·n·H·F, attention
scores and mix 4·n²·H; the masked-LM head 2·n·H² + 2·n·H·V. Norms, activations and X-MOD's adapters (2 % of a
layer) are left out, so the bound is a floor. A verification runs two models.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch


def text_flops(n: int, hidden: int, ffn: int, layers: int, vocab: int | None) -> float:
    """One model's forward FLOPs on one text of n tokens (vocab: the masked-LM head's rows, None for a classifier)."""
    per_layer = 8 * n * hidden * hidden + 4 * n * hidden * ffn + 4 * n * n * hidden
    head = 2 * n * hidden * hidden + 2 * n * hidden * vocab if vocab else 2 * hidden * hidden
    return float(layers * per_layer + head)


def gemm_peak(device: str, dtype: torch.dtype, hidden: int, windows: int = 5, seconds: float = 0.2) -> float:
    """FLOP/s of a large matrix product in the model's shapes ([1024, H] x [H, 4H]) on this device, dtype and
    thread count: the roof the verification is measured against. The median of `windows` timed windows: a shared
    machine's CPU speed drifts, even within an hour (docs/benchmarks.md)."""
    n = max(hidden, 256)
    a = torch.randn(1024, n, device=device).to(dtype)
    b = torch.randn(n, 4 * n, device=device).to(dtype)
    torch.mm(a, b)  # warm-up (kernel selection, page faults)
    _sync(device)
    rates = []
    for _ in range(windows):
        runs, start = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            runs += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                rates.append(runs * 2.0 * 1024 * n * 4 * n / elapsed)
                break
    return sorted(rates)[len(rates) // 2]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Performance:
    """The output comparison's compute against the FLOP bound of its real tokens."""

    tokens: int  # real (non-pad) tokens, every text once
    padded_tokens: int  # tokens the micro-batches ran, pads included
    flops: float  # both models, real tokens only
    seconds: float  # wall time of the streamed forward comparison (loading modules, so reading them, included)
    peak_flops: float  # the GEMM peak measured in the same run (before and after the forward, the higher)
    weights_seconds: float = 0.0  # verify's weight comparison run between the stages (not in `seconds`)

    @property
    def bound_seconds(self) -> float:
        return self.flops / self.peak_flops if self.peak_flops else 0.0

    @property
    def achieved_flops(self) -> float:
        return self.flops / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bound_seconds": self.bound_seconds, "achieved_flops": self.achieved_flops,
                "ratio_to_bound": self.seconds / self.bound_seconds if self.bound_seconds else None}  # fmt: skip


class Clock:
    """A streamed comparison's wall time against the roof: the GEMM peak measured just before the run starts and
    again once it ends, the higher kept (a shared machine's speed drifts, and a roof measured in a slow moment
    flatters the ratio); time set aside (verify's weight comparison between stages) is not the forward's."""

    def __init__(self, device: str, dtype: torch.dtype, hidden: int, flops: float) -> None:
        self.device, self.dtype, self.hidden, self.flops = device, dtype, hidden, flops
        # the roof, measured for about 1 % of the run's nominal time (at 100 GFLOPS): 0.1 s on a tiny model, 1 s at XL
        self.window = min(0.2, max(0.02, flops / 1e11 * 0.01 / 5))
        self.peak = gemm_peak(device, dtype, hidden, seconds=self.window)
        self.aside = 0.0
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def set_aside(self) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.aside += time.perf_counter() - t

    def performance(self, tokens: int, run_tokens: int) -> Performance:
        """The run so far (`tokens` real, `run_tokens` with the pads the micro-batches ran), the roof measured again."""
        seconds = time.perf_counter() - self.started - self.aside
        peak = max(self.peak, gemm_peak(self.device, self.dtype, self.hidden, seconds=self.window))
        return Performance(tokens, run_tokens, self.flops, seconds, peak, self.aside)
