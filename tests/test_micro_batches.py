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


def _run_cost(lengths: list[int], texts: list[int], packed: bool, attention: float) -> float:
    if packed:
        tokens = sum(lengths[i] for i in texts)
        work = tokens + attention * tokens * tokens
    else:
        longest = max(lengths[i] for i in texts)
        work = len(texts) * (longest + attention * longest * longest)
    return max(SMALLEST_BATCH, BATCH_COST + work)


def _cost(lengths: list[int], groups: list[Group], attention: float) -> float:
    return sum(_run_cost(lengths, g.texts, g.packed, attention) for g in groups)


def _padded(lengths: list[int], groups: list[Group]) -> bool:
    return any(not g.packed and len({lengths[i] for i in g.texts}) > 1 for g in groups)


def _can_pad(lengths: list[int], budget: int) -> bool:
    s = sorted(lengths)
    return any(a != b and 2 * b <= budget for a, b in itertools.pairwise(s))


def _best_by_brute_force(lengths: list[int], budget: int, attention: float, pack: bool) -> float:
    """Every split of the length-sorted texts into runs and every choice of padded or packed for each run, within
    the budget, with a padded batch of different lengths where that is possible."""
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
        kinds = [(False, True) if pack and len(r) > 1 else (False,) for r in runs]
        for choice in itertools.product(*kinds):
            groups = [Group(r, packed) for r, packed in zip(runs, choice)]
            over = [
                len(g.texts) > 1
                and (sum if g.packed else lambda xs: len(xs) * max(xs))([lengths[i] for i in g.texts]) > budget
                for g in groups
            ]
            if any(over) or (must_pad and not _padded(lengths, groups)):
                continue
            cost = _cost(lengths, groups, attention)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


def test_default_texts_pack_all_but_one_padded_batch():
    lengths = [26, 48, 39, 18, 30, 10, 512]  # the default texts under XLM-R's tokenizer
    groups = micro_batches(lengths, attention=XL)
    assert [([lengths[i] for i in g.texts], g.packed) for g in groups] == [
        ([18, 10], False),  # padding tested on the cheapest pair
        ([26, 48, 39, 30, 512], True),  # 655 real tokens in one row: the products over every real token at once
    ]
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
            tokens = [lengths[i] for i in g.texts]
            assert len(tokens) == 1 or (sum(tokens) if g.packed else len(tokens) * max(tokens)) <= budget
            assert pack or not g.packed
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
