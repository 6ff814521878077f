"""Micro-batches as the runners take them: each group of texts (compare/stages.py) as padded token ids, and where
each text's tokens are — as embedded (a row each) and as the layers run them (a row each, or back to back in one
packed row); X-MOD's plan of which texts run through which language's adapters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from xlmr_tools.compare.stages import Group

Span = tuple[int, int, int]  # where a text's tokens are in a batch's activations: row, first position, tokens


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] padded with the pad id
    texts: list[int]  # text index of each row
    lengths: list[int]  # non-pad length of each row
    languages: list[str] | None = None  # X-MOD: the language adapter each row runs through
    packed: bool = False  # the layers run the texts back to back in one row (stages.Group)
    slots: list[int] | None = None  # packed: the positions each text takes there, padding included (stages.Group)

    @property
    def rows(self) -> list[Span]:
        """The texts as embedded: a row each, padded."""
        return [(row, 0, n) for row, n in enumerate(self.lengths)]

    @property
    def packed_slots(self) -> list[int]:
        """The positions each text takes in the packed row: its length, or more where it is padded there."""
        return self.slots or self.lengths

    @property
    def spans(self) -> list[Span]:
        """The texts as the layers run them: a row each, or back to back in row 0 when packed."""
        if not self.packed:
            return self.rows
        slots = self.packed_slots
        return [(0, start, n) for start, n in zip(itertools.accumulate([0, *slots]), self.lengths)]


def make_batches(
    ids: list[torch.Tensor], groups: list[Group], pad: int, device: str, languages: list[str] | None
) -> list[Batch]:
    """Each group's texts padded into one tensor on `device` (`languages`: X-MOD's adapter of each text)."""
    lengths = [len(t) for t in ids]
    batches = []
    for group in groups:
        idx = group.texts
        padded = torch.nn.utils.rnn.pad_sequence([ids[i] for i in idx], batch_first=True, padding_value=pad)
        langs = [languages[i] for i in idx] if languages is not None else None
        batches.append(Batch(padded.to(device), idx, [lengths[i] for i in idx], langs, group.packed, group.slots))
    return batches


def real_tokens(batches: list[Batch], features: list[torch.Tensor]) -> torch.Tensor:
    """[tokens, hidden]: every text's tokens (batch first, as the layers ran them), in batch order."""
    return torch.cat([x[row, at : at + n] for batch, x in zip(batches, features) for row, at, n in batch.spans])


def language_plan(texts: int, languages: list[str]) -> list[tuple[int, str]]:
    """(text, language) pairs so that every text and every language's adapters run at least once: max(texts,
    languages) pairs, the k-th being text k mod texts through language k mod languages."""
    return [(k % texts, languages[k % len(languages)]) for k in range(max(texts, len(languages)))]
