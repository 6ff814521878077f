"""The last stage of a streamed comparison: the masked-LM logits by vocabulary blocks, or a classification head on
each text's first token."""

from __future__ import annotations

import functools

import torch

from xlmr_tools.compare.batches import Batch
from xlmr_tools.compare.runner import Runner
from xlmr_tools.compare.side import Side
from xlmr_tools.compare.stages import BATCH_TOKENS, StageAccumulator
from xlmr_tools.errors import BadInput
from xlmr_tools.io.readahead import ReadAhead

VOCAB_BLOCK = 8192  # LM-head rows per block: 8192 x 2560 (XL) = 84 MB of weight, x 2048 tokens = 67 MB of logits


def compare_lm_logits(
    a: Runner,
    b: Runner,
    ha: torch.Tensor,
    hb: torch.Tensor,
    batches: list[Batch],
    s: StageAccumulator,
    side: Side,
    ahead: ReadAhead,
) -> None:
    """The logits of both masked-LM heads from their features before the decoder (`ha`, `hb`: [tokens, hidden],
    the real tokens in batch order), into `s`. Vocabulary blocks outside, tokens inside: each page of the
    (memory-mapped) decoder matrix is read once per model, not once per token chunk, so a memory cap below its size
    costs no re-reads; `ahead` reads the next block while one computes."""
    spans, at = [], 0  # (text, first row in ha, tokens)
    for batch in batches:
        for text, n in zip(batch.texts, batch.lengths):
            spans.append((text, at, n))
            at += n
    rows = a.vocab_rows
    if rows != b.vocab_rows:
        raise BadInput(None, f"the two models have {rows} and {b.vocab_rows} vocabulary rows")
    wa, wb = a.lm_weight(), b.lm_weight()
    ahead.submit(("vocab", 0), functools.partial(list, (wa[:VOCAB_BLOCK], wb[:VOCAB_BLOCK])))
    for start in range(0, rows, VOCAB_BLOCK):
        end = min(rows, start + VOCAB_BLOCK)
        if end < rows:
            after = slice(end, end + VOCAB_BLOCK)
            ahead.submit(("vocab", end), functools.partial(list, (wa[after], wb[after])))
        la, lb = a.lm_block(start, end), b.lm_block(start, end)
        for part in range(0, at, BATCH_TOKENS):  # logits of at most BATCH_TOKENS x VOCAB_BLOCK at once
            stop = min(at, part + BATCH_TOKENS)
            ya, yb = side.run(functools.partial(la, ha[part:stop]), functools.partial(lb, hb[part:stop]))
            ya, yb = ya.cpu(), yb.cpu()
            for text, first, n in spans:
                lo, hi = max(first, part), min(first + n, stop)
                if lo < hi:
                    s.update(ya[lo - part : hi - part], yb[lo - part : hi - part], text, lo - first)
        del la, lb
        ahead.release(("vocab", start))


def compare_sentence_heads(
    a: Runner, b: Runner, fa: list[torch.Tensor], fb: list[torch.Tensor], batches: list[Batch], s: StageAccumulator
) -> None:
    """Both classification heads on the final features (batch first, per micro-batch), into `s`. A sentence head
    reads each text's first token (features[:, 0, :] in both libraries): it is given those."""
    for batch, u, v in zip(batches, fa, fb):
        firsts = [(row, pos) for row, pos, _ in batch.spans]
        ya = a.run_head(torch.stack([u[row, pos] for row, pos in firsts])[:, None])
        yb = b.run_head(torch.stack([v[row, pos] for row, pos in firsts])[:, None])
        for i, text in enumerate(batch.texts):
            s.update(ya[i].cpu(), yb[i].cpu(), text)
