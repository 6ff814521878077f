"""Tensor-by-tensor comparison of two aligned sets of weights, grouped per layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from xlmr_tools.io.chunks import iter_chunks


@dataclass
class TensorDiff:
    name: str
    group: str
    shape: list[int]
    dtype_a: str
    dtype_b: str
    max_abs: float
    rel: float  # max|Δ| / max|a|
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WeightReport:
    diffs: list[TensorDiff] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the reference (A / the checkpoint), not in B
    extra: list[str] = field(default_factory=list)  # in B only
    misshaped: list[dict[str, Any]] = field(default_factory=list)
    tol: float = 0.0

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.diffs) and not (self.missing or self.extra or self.misshaped)

    def groups(self) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for d in self.diffs:
            g = out.setdefault(
                d.group, {"group": d.group, "tensors": 0, "max_abs": 0.0, "worst": d.name, "rel": 0.0, "ok": True}
            )
            g["tensors"] += 1
            if d.max_abs > g["max_abs"] or d.max_abs != d.max_abs:
                g["max_abs"], g["worst"], g["rel"] = d.max_abs, d.name, d.rel
            g["ok"] = g["ok"] and d.ok
        return list(out.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tol": self.tol,
            "groups": self.groups(),
            "tensors": [d.to_dict() for d in self.diffs],
            "missing": self.missing,
            "extra": self.extra,
            "misshaped": self.misshaped,
        }


def tensor_diff(
    name: str, group: str, a: torch.Tensor, b: torch.Tensor, tol: float, cast_to_b: bool = False
) -> TensorDiff:
    """max|Δ| in float32, chunk by chunk (no full-size temporaries). cast_to_b: round A to B's dtype first, so a
    faithful cast compares equal."""
    mx = peak = 0.0
    for x, y in zip(iter_chunks(a, b.dtype if cast_to_b else None), iter_chunks(b)):
        if not x.numel() or (x.dtype == y.dtype and torch.equal(x, y)):  # the usual case, in one pass (NaN: never)
            continue
        d = (x.float() - y.float()).abs().max().item()
        mx = d if d != d or mx != mx else max(mx, d)  # a NaN anywhere is kept: it never compares equal
    if mx != 0:  # only a differing tensor needs its peak, for the relative figure: a second pass, rarely taken
        for x in iter_chunks(a, b.dtype if cast_to_b else None):
            peak = max(peak, x.float().abs().max().item()) if x.numel() else peak
    rel = mx / peak if peak else (0.0 if mx == 0 else float("inf"))
    return TensorDiff(
        name,
        group,
        list(a.shape),
        str(a.dtype).removeprefix("torch."),
        str(b.dtype).removeprefix("torch."),
        mx,
        rel,
        bool(mx <= tol) and mx == mx,
    )


def compare_weights(
    pairs: list[tuple[str, str]],
    a: Callable[[str], torch.Tensor],
    b: Callable[[str], torch.Tensor],
    shapes_b: dict[str, tuple[int, ...]],
    group: Callable[[str], str],
    tol: float,
    cast_to_b: bool = False,
    on_tensor: Callable[[], None] = lambda: None,
) -> WeightReport:
    """pairs: (name in A, name in B). Names of B not in any pair are reported by the caller as extra."""
    report = WeightReport(tol=tol)
    for name_a, name_b in pairs:
        if name_b not in shapes_b:
            report.missing.append(name_b)
            continue
        ta = a(name_a)
        if tuple(ta.shape) != tuple(shapes_b[name_b]):
            report.misshaped.append({"name": name_b, "a": list(ta.shape), "b": list(shapes_b[name_b])})
            continue
        report.diffs.append(tensor_diff(name_b, group(name_b), ta, b(name_b), tol, cast_to_b))
        on_tensor()
    return report
