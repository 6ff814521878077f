"""Opening a side: a fairseq checkpoint or a Hugging Face folder, each a TensorSource.

Every command opens its inputs through `open_source`; the layers above see names, shapes, lazy tensors and a
normalized description, never a file format. (Importing this package imports no torch: the readers load on use.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from xlmr_tools.model import ModelDescription
    from xlmr_tools.sources.fairseq import FairseqCheckpoint
    from xlmr_tools.sources.hf import HFFolder


class TensorSource(Protocol):
    """One model's tensors, read lazily: fairseq's under fairseq's load-time names, an HF folder's under the names
    its *For* model uses."""

    path: Path
    description: ModelDescription

    def names(self) -> list[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def dtype(self, name: str) -> torch.dtype: ...
    def tensor(self, name: str) -> torch.Tensor: ...


def open_source(path: str | Path, *, trust: bool = False, ema: bool = False) -> FairseqCheckpoint | HFFolder:
    """An HF folder (config.json inside) or a fairseq checkpoint (a .pt file, or a folder holding one); `ema`: a
    checkpoint's EMA weights (--store-ema) instead of its live ones (an HF folder has only its own)."""
    from xlmr_tools.sources.fairseq import open_checkpoint
    from xlmr_tools.sources.hf import open_folder
    from xlmr_tools.sources.locate import find_checkpoint_file, is_hf_folder

    path = Path(path)
    if is_hf_folder(path):
        return open_folder(path, trust=trust)
    find_checkpoint_file(path)  # a clear error for a missing path or an empty folder
    return open_checkpoint(path, trust=trust, ema=ema)
