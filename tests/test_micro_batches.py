"""How texts are grouped for the streamed forward: least modelled time, budget kept, padding always tested."""

from __future__ import annotations

import itertools
import random

from xlmr_tools.compare.stages import BATCH_COST, BATCH_TOKENS, SMALLEST_BATCH, micro_batches


def _cost(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(SMALLEST_BATCH, BATCH_COST + len(b) * max(lengths[i] for i in b)) for b in batches)


def _padded(lengths: list[int], batches: list[list[int]]) -> bool:
    return any(len({lengths[i] for i in b}) > 1 for b in batches)


def _can_pad(lengths: list[int], budget: int) -> bool:
    s = sorted(lengths)
    return any(a != b and 2 * b <= budget for a, b in itertools.pairwise(s))


def _best_by_brute_force(lengths: list[int], budget: int) -> int:
    """Every split of the length-sorted texts into runs, within the budget, padded where that is possible."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    best = None
    for cuts in itertools.product((False, True), repeat=len(order) - 1):
        batches, current = [], [order[0]]
        for cut, i in zip(cuts, order[1:]):
            if cut:
                batches.append(current)
                current = []
            current.append(i)
        batches.append(current)
        if any(len(b) > 1 and len(b) * max(lengths[i] for i in b) > budget for b in batches):
            continue
        if _can_pad(lengths, budget) and not _padded(lengths, batches):
            continue
        cost = _cost(lengths, batches)
        best = cost if best is None else min(best, cost)
    assert best is not None
    return best


def test_default_texts_split_where_padding_costs_more_than_a_batch():
    lengths = [26, 48, 39, 18, 30, 10, 512]  # the default texts under XLM-R's tokenizer
    batches = micro_batches(lengths)
    assert [[lengths[i] for i in b] for b in batches] == [[26, 18, 30, 10], [48, 39], [512]]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded == 728  # 800 when the six short texts shared one batch


def test_least_cost_within_budget_and_padding_tested():
    rng = random.Random(0)
    for _ in range(300):
        lengths = [rng.choice([rng.randint(1, 12), rng.randint(1, 512)]) for _ in range(rng.randint(1, 9))]
        budget = rng.choice([BATCH_TOKENS, 600, 64])
        batches = micro_batches(lengths, budget)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget for b in batches)
        if _can_pad(lengths, budget):
            assert _padded(lengths, batches), lengths
        assert _cost(lengths, batches) == _best_by_brute_force(lengths, budget), (lengths, budget)


def test_equal_lengths_and_edge_cases():
    assert micro_batches([]) == []
    assert micro_batches([7]) == [[0]]
    assert micro_batches([512] * 7) == [[0, 1, 2, 3], [4, 5, 6]]  # 4 x 512 = the 2048-token budget
    assert micro_batches([5, 6]) == [[0, 1]]  # the one way to test padding
