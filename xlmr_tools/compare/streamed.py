"""Two models compared one module at a time, so peak memory does not grow with depth: embeddings, each layer, the
final norm and the head are loaded, run on every micro-batch, compared and freed in turn.

A micro-batch is padded (a row each) or packed (its texts back to back in one row after the embeddings, attention
kept within each text by each library's own mask: Runner.packed_context), so the layers' products can run on real
tokens only. tests/test_packed_rows.py and tests/helpers/full_forward.py check the streamed figures equal full
forwards of both libraries.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from xlmr_tools.compare.batches import Batch, language_plan, make_batches, real_tokens
from xlmr_tools.compare.flops import Clock, text_flops
from xlmr_tools.compare.heads import compare_lm_logits, compare_sentence_heads
from xlmr_tools.compare.runner import Runner
from xlmr_tools.compare.side import Side
from xlmr_tools.compare.stages import Group, OutputReport, StageAccumulator, attention_weight, micro_batches
from xlmr_tools.errors import BadInput
from xlmr_tools.io.readahead import ReadAhead


def compare_streamed(
    a: Runner,
    b: Runner,
    ids: list[torch.Tensor],
    pad: int,
    tol: float,
    dtype: torch.dtype,
    on_stage: Callable[[str], None] = lambda s: None,
    languages: list[str] | None = None,
    on_loaded: Callable[[str], None] = lambda s: None,
    ahead: ReadAhead | None = None,
    groups: list[Group] | None = None,
    ahead_layers: bool = True,
) -> OutputReport:
    """Run both models one module at a time over micro-batches and accumulate |Δ| per stage (pads excluded).
    X-MOD: the texts run through `languages`' adapters (default: every language's; see batches.language_plan).
    `on_loaded(stage)`: called once a stage has run, while its tensors' pages are still in memory (verify compares
    that part's weights then, through `ahead.view`). `ahead`: reads the next layer while one computes
    (io.readahead); None: no read-ahead; `ahead_layers=False`: only the LM decoder's vocabulary blocks (convert: a
    layer may not be written yet when the next is submitted, and its pages are cached once it is). `groups`: how the
    texts run (default: stages.micro_batches')."""
    if a.layers != b.layers:
        raise BadInput(None, f"the two models have {a.layers} and {b.layers} layers")
    if a.languages != b.languages:
        raise BadInput(None, f"the two models have language adapters {a.languages} and {b.languages}")
    if a.languages:
        pairs = language_plan(len(ids), languages or a.languages)
        ids, languages = [ids[t] for t, _ in pairs], [lang for _, lang in pairs]
    else:
        languages = None
    lengths = [len(t) for t in ids]
    device = a.device
    if groups is None:
        groups = micro_batches(lengths, attention=attention_weight(a.hidden, a.ffn), pack=languages is None)
    if languages is not None and any(g.packed for g in groups):
        raise ValueError("X-MOD runs padded batches only: its adapters are chosen per row")
    batches = make_batches(ids, groups, pad, device, languages)
    acc: dict[str, StageAccumulator] = {}
    vocab = a.vocab_rows if a.head_stage == "lm logits" else None
    clock = Clock(device, dtype, a.hidden, 2 * sum(text_flops(n, a.hidden, a.ffn, a.layers, vocab) for n in lengths))

    def loaded(stage: str) -> None:
        with clock.set_aside():  # verify's weight comparison: not the forward's time
            on_loaded(stage)

    def compare(stage: str, xa: list[torch.Tensor], xb: list[torch.Tensor], embedded: bool = False) -> None:
        """Per-token outputs, batch first, laid out as the layers run them (as embedded: a row each)."""
        s = acc.setdefault(stage, StageAccumulator(stage, tol))
        for batch, ya, yb in zip(batches, xa, xb):
            for text, (row, at, n) in zip(batch.texts, batch.rows if embedded else batch.spans):
                s.update(ya[row, at : at + n].cpu(), yb[row, at : at + n].cpu(), text)

    ahead = ahead or ReadAhead(enabled=False)
    a.view = b.view = ahead.view
    side = Side(device)
    with torch.no_grad(), contextlib.closing(side):
        if ahead_layers:
            ahead.submit(("layer", 0), functools.partial(_layer_tensors, a, b, 0))
        on_stage("embeddings")
        every = torch.cat([batch.ids.reshape(-1) for batch in batches])
        a.load_embeddings(every)
        b.load_embeddings(every)
        sa = [a.embed(batch.ids) for batch in batches]
        sb = [b.embed(batch.ids) for batch in batches]
        a.free_embeddings()  # not needed again (the LM head takes the decoder matrix as stored)
        b.free_embeddings()
        xa, xb = [s[0] for s in sa], [s[0] for s in sb]
        compare("embeddings", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb], embedded=True)
        loaded("embeddings")
        for i, batch in enumerate(batches):
            if batch.packed:
                slots = batch.packed_slots
                sa[i], sb[i] = a.pack(xa[i], batch.lengths, slots), b.pack(xb[i], batch.lengths, slots)
                xa[i], xb[i] = sa[i][0], sb[i][0]
        for k in range(a.layers):
            on_stage(f"layer {k}")
            if k + 1 < a.layers and ahead_layers:  # read while this layer computes
                ahead.submit(("layer", k + 1), functools.partial(_layer_tensors, a, b, k + 1))
            a.load_layer(k)
            b.load_layer(k)
            xa, xb = side.run(
                functools.partial(_run_layer, a, k, xa, sa, batches),
                functools.partial(_run_layer, b, k, xb, sb, batches),
            )
            a.free_layer(k)
            b.free_layer(k)
            compare(f"layer {k}", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb])
            loaded(f"layer {k}")
            ahead.release(("layer", k))
        if a.has_final_norm != b.has_final_norm:
            raise BadInput(None, "one model has a final LayerNorm (pre-LN) and the other not (post-LN)")
        if a.has_final_norm:
            on_stage("final norm")
            xa = [a.final_norm(x) for x in xa]
            xb = [b.final_norm(x) for x in xb]
            compare("final norm", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb])
            loaded("final norm")
        fa = [a.batch_first(x) for x in xa]
        fb = [b.batch_first(x) for x in xb]
        del xa, xb
        if a.head_stage is None or b.head_stage is None:  # the encoder alone: its last stage was the last compared
            if a.head_stage != b.head_stage:
                raise BadInput(None, "one side has a head and the other is the encoder alone")
            loaded("encoder")
        else:
            on_stage(a.head_stage)
            a.load_head()
            b.load_head()
            s = acc.setdefault(a.head_stage, StageAccumulator(a.head_stage, tol))
            if a.head is None and b.head is None:
                # The head is per token: it runs on the real tokens only, packed (no padded rows in its products)
                ha, hb = a.lm_features(real_tokens(batches, fa)), b.lm_features(real_tokens(batches, fb))
                del fa, fb
                compare_lm_logits(a, b, ha, hb, batches, s, side, ahead)
            else:
                compare_sentence_heads(a, b, fa, fb, batches, s)
            loaded(a.head_stage)
    run_tokens = sum(g.positions(lengths) for g in groups)
    return OutputReport(
        [s.row() for s in acc.values()],
        str(dtype).removeprefix("torch."),
        len(ids),
        sum(lengths),
        sorted(set(languages), key=languages.index) if languages else [],
        clock.performance(sum(lengths), run_tokens),
    )


def _run_layer(r: Runner, k: int, xs: list[torch.Tensor], ctx: list[Any], batches: list[Batch]) -> list[torch.Tensor]:
    """Layer k of runner r on every micro-batch (ctx: what embed/pack returned for each)."""
    return [r.layer(k, x, s[1], batch.languages) for x, s, batch in zip(xs, ctx, batches)]


def _layer_tensors(a: Runner, b: Runner, k: int) -> list[torch.Tensor]:
    return a.layer_tensors(k) + b.layer_tensors(k)
