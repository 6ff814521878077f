"""Per-stage max/mean |Δ| between two sets of activations, over non-pad tokens only, against a tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from xlmr_tools.compare.flops import Performance
from xlmr_tools.errors import BadInput
from xlmr_tools.model import PRE_LN, ModelDescription

# Default output tolerances by the dtype the models run in (fp32 default 1e-5, as promised in the docs).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1.5e-1}


# On CUDA, fp32 results of the two libraries differ by rounding alone, and the LM logits by more than 1e-5 while every
# layer is bit-identical (docs/benchmarks.md, "GPU check"; most likely the decoder bias: added inside the matmul by
# transformers' nn.Linear, after it by fairseq). fp16/bf16 tolerances already cover such rounding.
CUDA_FP32_TOLERANCE = 1e-4


def check_tol(tol: float | None, flag: str = "--tol") -> None:
    """A tolerance is a number >= 0 (None: the default by dtype); a negative or NaN one would fail or pass
    everything."""
    if tol is not None and not tol >= 0:
        raise BadInput(None, f"{flag} must be a number >= 0, not {tol:g}")


def streamed_stages(description: ModelDescription, tokenizer: bool, head: bool = True) -> int:
    """How many stages a streamed comparison names through on_stage (the tokenizer when compared, embeddings, each
    layer, the final norm of pre-LN models, the head unless the encoder alone is compared): a progress counter's
    total."""
    return int(tokenizer) + 1 + description.layers + int(description.family == PRE_LN) + int(head)


def default_tol(dtype: torch.dtype, device: str = "cpu") -> float:
    if dtype == torch.float32 and torch.device(device).type == "cuda":
        return CUDA_FP32_TOLERANCE
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
    languages: list[str] = field(default_factory=list)  # X-MOD: the language adapters the texts ran through
    performance: Performance | None = None  # compute against the FLOP bound (streamed comparisons)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def worst(self) -> StageRow | None:
        bad = [r for r in self.rows if not r.ok]
        return bad[0] if bad else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dtype": self.dtype,
            "texts": self.texts,
            "tokens": self.tokens,
            "languages": self.languages,
            "performance": self.performance.to_dict() if self.performance else None,
            "stages": [r.to_dict() for r in self.rows],
        }


class StageAccumulator:
    """Running max/mean |Δ| for one stage over micro-batches, so no stage's outputs are ever held whole
    (XL logits for a 512-token batch would be gigabytes)."""

    def __init__(self, stage: str, tol: float) -> None:
        self.stage, self.tol = stage, tol
        self.max_abs, self.sum_abs, self.count = -1.0, 0.0, 0
        self.text = self.token = -1
        self.shape_mismatch = False

    def update(self, a: torch.Tensor, b: torch.Tensor, text: int, token_offset: int = 0) -> None:
        """a, b: one text's outputs, [tokens, dim] (non-pad only; tokens from `token_offset`) or [classes]."""
        if a.shape != b.shape:
            self.shape_mismatch = True
            return
        d = (a.float() - b.float()).abs()
        if d.dim() == 2:
            per_token = d.amax(dim=-1)
            token = int(per_token.argmax())
            mx = per_token[token].item()
            token += token_offset
        else:
            token, mx = -1, d.max().item()
        self.sum_abs += d.sum().item()
        self.count += d.numel()
        if mx > self.max_abs or mx != mx:
            self.max_abs, self.text, self.token = mx, text, token

    def row(self) -> StageRow:
        if self.shape_mismatch or self.count == 0:
            return StageRow(self.stage, float("inf"), float("inf"), -1, -1, self.tol, False)
        mx = self.max_abs
        return StageRow(
            self.stage,
            mx,
            self.sum_abs / self.count,
            self.text,
            self.token,
            self.tol,
            bool(mx <= self.tol) and mx == mx,
        )  # NaN never passes


BATCH_TOKENS = 2048  # padded tokens per micro-batch: big enough for efficient matrix products (every batch
# streams all of a layer's weights through the CPU once), small enough that activations stay small (XL: 84 MB)
BATCH_COST = 32  # what one more micro-batch costs, in padded tokens' time: at XL width on 2 cores a layer's products
# over M tokens took ~(30 + M) tokens' time (15 ms + 0.5 ms per token), and never less than ~66 tokens' (memory-bound)
SMALLEST_BATCH = 66


@dataclass(frozen=True)
class Group:
    """Texts that run through the layers together: a padded batch (a row each), or packed — back to back in one row,
    each text's attention kept within its own tokens — so the products run on real tokens only. `slots` (packed):
    the positions each text takes in the row, in `texts` order — its length, or more where it is padded there to
    another text's length, as a padded batch would pad it (its padding masked by each library's padding mask)."""

    texts: list[int]
    packed: bool = False
    slots: list[int] | None = None  # None: each text its own length

    def positions(self, lengths: list[int]) -> int:
        """The token positions the layers run for this group, padding included: a row each at the longest length,
        or the packed row's slots."""
        if self.packed:
            return sum(self.slots) if self.slots is not None else sum(lengths[i] for i in self.texts)
        return len(self.texts) * max(lengths[i] for i in self.texts)

    def padded(self, lengths: list[int]) -> bool:
        """Whether padding runs here: texts of different lengths in a padded batch, or a padded slot."""
        if self.packed:
            return self.slots is not None and any(s > lengths[i] for i, s in zip(self.texts, self.slots))
        return len({lengths[i] for i in self.texts}) > 1


def attention_weight(hidden: int, ffn: int) -> float:
    """A row of T tokens' attention (scores and mix, 4·T²·H FLOPs) in tokens' time of the layer's products
    (8·H² + 4·H·F FLOPs a token), counted twice: attention ran at about half the products' speed (profiled)."""
    return 2 * 4 * hidden / (8 * hidden * hidden + 4 * hidden * ffn)


_ROWS, _PACKED, _PACKED_PADDED = range(3)  # how a run of texts is laid out (micro_batches)


def micro_batches(
    lengths: list[int], budget: int = BATCH_TOKENS, attention: float = 0.0, pack: bool = True
) -> list[Group]:
    """Group texts into micro-batches of at most `budget` tokens (padded, or packed) so that the time the layers take
    — tokens run plus BATCH_COST per batch plus `attention` per row's squared length, no batch under SMALLEST_BATCH —
    is least: padding small, products large. `pack`: packed groups allowed (not for X-MOD, whose adapters are chosen
    per row). Padding is still tested: where texts differ in length, one text is padded to another's length — in a
    padded batch, or in its slot of a packed row (the cheapest such grouping: a separate padded batch streams every
    layer's weights once more, ~14 % of an XL layer on 2 cores). Groups are runs of the texts sorted by length
    (dynamic programming over them)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    if n == 0:
        return []
    size = [lengths[i] for i in order]
    inf = float("inf")
    # best[i][p]: the least cost of the first i sorted texts, p = whether padding runs among them
    best = [[inf, inf] for _ in range(n + 1)]
    came: list[list[tuple[int, int, int] | None]] = [[None, None] for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(1, n + 1):
        packed_tokens, gap = 0, 0  # gap: the least positive difference of neighbouring lengths in the run
        for j in range(i - 1, -1, -1):
            packed_tokens += size[j]
            if j + 1 < i and size[j + 1] > size[j]:
                gap = min(gap or size[j + 1], size[j + 1] - size[j])
            rows, longest = i - j, size[i - 1]
            if packed_tokens > budget and rows > 1:
                break  # padded tokens are at least as many
            options = []
            if rows * longest <= budget or rows == 1:
                options.append((rows * (longest + attention * longest * longest), int(size[j] != longest), _ROWS))
            if pack and rows > 1:
                options.append((packed_tokens + attention * packed_tokens * packed_tokens, 0, _PACKED))
                padded = packed_tokens + gap
                if gap and padded <= budget:
                    options.append((padded + attention * padded * padded, 1, _PACKED_PADDED))
            for tokens, padded_here, kind in options:
                cost = max(SMALLEST_BATCH, BATCH_COST + tokens)
                for p in (0, 1):
                    if best[j][p] + cost < best[i][p | padded_here]:
                        best[i][p | padded_here] = best[j][p] + cost
                        came[i][p | padded_here] = (j, p, kind)
    p = 1 if best[n][1] < inf else 0
    groups: list[Group] = []
    i = n
    while i:
        j, p, kind = came[i][p] or (0, 0, _ROWS)  # always set: every reachable state records where it came from
        texts = sorted(order[j:i])
        if kind == _ROWS:
            groups.append(Group(texts))
        else:
            slot = {order[m]: size[m] for m in range(j, i)}
            if kind == _PACKED_PADDED:  # the first text whose next longer neighbour is nearest: padded to it
                m = min((m for m in range(j, i - 1) if size[m + 1] > size[m]), key=lambda m: size[m + 1] - size[m])
                slot[order[m]] = size[m + 1]
            groups.append(Group(texts, True, [slot[t] for t in texts]))
        i = j
    return groups[::-1]
