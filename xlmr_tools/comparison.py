"""Per-stage max/mean |Δ| between two sets of activations, over non-pad tokens only, against a tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

# Default output tolerances by the dtype the models run in (fp32 default 1e-5, as promised in the docs).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1.5e-1}


def default_tol(dtype: torch.dtype) -> float:
    return TOLERANCE.get(dtype, 1e-5)


@dataclass
class StageRow:
    stage: str
    max_abs: float
    mean_abs: float
    text: int  # where the max occurs: text index ...
    token: int  # ... and token position (-1 for per-sentence outputs)
    tol: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OutputReport:
    rows: list[StageRow] = field(default_factory=list)
    dtype: str = "float32"
    texts: int = 0
    tokens: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def worst(self) -> StageRow | None:
        bad = [r for r in self.rows if not r.ok]
        return bad[0] if bad else None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "dtype": self.dtype, "texts": self.texts, "tokens": self.tokens,
                "stages": [r.to_dict() for r in self.rows]}


def compare_stages(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], lengths: list[int],
                   tol: float) -> list[StageRow]:
    rows = []
    for stage in a:
        if stage not in b:
            continue
        x, y = a[stage].float(), b[stage].float()
        if x.shape != y.shape:
            rows.append(StageRow(stage, float("inf"), float("inf"), -1, -1, tol, False))
            continue
        if x.dim() == 3:  # per token: keep non-pad positions
            mask = torch.zeros(x.shape[:2], dtype=torch.bool)
            for i, n in enumerate(lengths):
                mask[i, :n] = True
            d = (x - y).abs().amax(dim=-1).masked_fill(~mask, -1.0)
            mean = (x - y).abs()[mask].mean().item()
            flat = int(d.argmax())
            text, token = divmod(flat, d.shape[1])
            mx = d.view(-1)[flat].item()
        else:  # per sentence (classification heads)
            d = (x - y).abs()
            mx, mean = d.max().item(), d.mean().item()
            text, token = int(d.amax(dim=-1).argmax()), -1
        ok = bool(mx <= tol) and mx == mx  # NaN never passes
        rows.append(StageRow(stage, mx, mean, text, token, tol, ok))
    return rows
