"""How texts are grouped for the streamed forward: least modelled time, budget kept, padding always tested."""

from __future__ import annotations

import itertools
import random

from xlmr_tools.compare.stages import (
    BATCH_COST,
    BATCH_TOKENS,
    SMALLEST_BATCH,
    Group,
    attention_weight,
    micro_batches,
)

XL = attention_weight(2560, 10240)


def _cost(lengths: list[int], groups: list[Group], attention: float) -> float:
    total = 0.0
    for g in groups:
        tokens = g.positions(lengths)
        row = tokens if g.packed else max(lengths[i] for i in g.texts)
        rows = 1 if g.packed else len(g.texts)
        total += max(SMALLEST_BATCH, BATCH_COST + tokens + rows * attention * row * row)
    return total


def _padded(lengths: list[int], groups: list[Group]) -> bool:
    return any(g.padded(lengths) for g in groups)


def _can_pad(lengths: list[int], budget: int) -> bool:
    s = sorted(lengths)
    return any(a != b and 2 * b <= budget for a, b in itertools.pairwise(s))


def _layouts(lengths: list[int], run: list[int], pack: bool) -> list[Group]:
    """Every way to lay out one run of texts: padded rows; packed; packed with any one text padded in its slot to
    the length of any longer text of the run."""
    out = [Group(run)]
    if pack and len(run) > 1:
        out.append(Group(run, True))
        for t in run:
            for longer in {lengths[u] for u in run if lengths[u] > lengths[t]}:
                out.append(Group(run, True, [longer if u == t else lengths[u] for u in run]))
    return out


def _best_by_brute_force(lengths: list[int], budget: int, attention: float, pack: bool) -> float:
    """Every split of the length-sorted texts into runs and every layout of each run, within the budget, with
    padding run where that is possible."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    must_pad = _can_pad(lengths, budget)
    best = None
    for cuts in itertools.product((False, True), repeat=len(order) - 1):
        runs, current = [], [order[0]]
        for cut, i in zip(cuts, order[1:]):
            if cut:
                runs.append(current)
                current = []
            current.append(i)
        runs.append(current)
        for groups in itertools.product(*(_layouts(lengths, sorted(r), pack) for r in runs)):
            if any(len(g.texts) > 1 and g.positions(lengths) > budget for g in groups):
                continue
            if must_pad and not _padded(lengths, list(groups)):
                continue
            cost = _cost(lengths, list(groups), attention)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


def test_default_texts_run_as_one_packed_row_with_a_padded_slot():
    lengths = [26, 48, 39, 18, 30, 10, 512]  # the default texts under XLM-R's tokenizer
    groups = micro_batches(lengths, attention=XL)
    # one row: the products over every real token at once, each layer's weights streamed once; padding tested in
    # it — the 26-token text padded to 30, the nearest longer length, its 4 pads masked by the padding mask
    assert groups == [Group([0, 1, 2, 3, 4, 5, 6], True, [30, 48, 39, 18, 30, 10, 512])]
    assert groups[0].padded(lengths)
    unpacked = micro_batches(lengths, pack=False)  # X-MOD (an adapter per row), and the full-forward reference
    assert [[lengths[i] for i in g.texts] for g in unpacked] == [[26, 18, 30, 10], [48, 39], [512]]
    assert sum(len(g.texts) * max(lengths[i] for i in g.texts) for g in unpacked) == 728  # 800 in one batch


def test_least_cost_within_budget_and_padding_tested():
    rng = random.Random(0)
    for _ in range(300):
        lengths = [rng.choice([rng.randint(1, 12), rng.randint(1, 512)]) for _ in range(rng.randint(1, 7))]
        budget = rng.choice([BATCH_TOKENS, 600, 64])
        attention = rng.choice([0.0, XL, attention_weight(64, 128)])
        pack = rng.random() < 0.8
        groups = micro_batches(lengths, budget, attention, pack)
        assert sorted(i for g in groups for i in g.texts) == list(range(len(lengths)))
        for g in groups:
            assert len(g.texts) == 1 or g.positions(lengths) <= budget
            assert pack or not g.packed
            if g.slots is not None:  # a slot holds its text, padded at most to another text's length of the group
                assert all(s == lengths[i] or s in {lengths[u] for u in g.texts} for i, s in zip(g.texts, g.slots))
                assert all(s >= lengths[i] for i, s in zip(g.texts, g.slots))
        if _can_pad(lengths, budget):
            assert _padded(lengths, groups), lengths
        want = _best_by_brute_force(lengths, budget, attention, pack)
        assert abs(_cost(lengths, groups, attention) - want) < 1e-6, (lengths, budget, attention, pack)


def test_equal_lengths_and_edge_cases():
    assert micro_batches([]) == []
    assert micro_batches([7]) == [Group([0])]
    assert micro_batches([512] * 7, attention=XL) == [Group([0, 1, 2, 3]), Group([4, 5, 6])]  # 2048 tokens
    assert micro_batches([5, 6]) == [Group([0, 1])]  # the one way to test padding
    many = micro_batches([100] * 40, attention=XL)  # equal lengths: padded rows pad nothing, packing adds attention
    assert [(len(g.texts), g.packed) for g in many] == [(20, False), (20, False)]
