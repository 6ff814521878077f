"""A tensor as flat chunks of bounded size, cast one chunk at a time: how the writer streams, and how every
comparison reads two tensors side by side, without a full-size temporary (an XL embedding is 2.6 GB)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

CHUNK_BYTES = 64 * 1024 * 1024


def iter_chunks(t: torch.Tensor, dtype: torch.dtype | None = None) -> Iterable[torch.Tensor]:
    """Flat chunks of about CHUNK_BYTES, cast to `dtype` one chunk at a time."""
    flat = t.contiguous().reshape(-1)
    step = max(1, CHUNK_BYTES // max(flat.element_size(), 1))
    for i in range(0, flat.numel(), step):
        part = flat[i : i + step]
        yield part if dtype is None or part.dtype == dtype else part.to(dtype)
