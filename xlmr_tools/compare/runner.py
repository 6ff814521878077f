"""One model run one module at a time (a Runner), so peak memory does not grow with depth.

A runner builds its model on the meta device, then materializes one module at a time from the lazily read (mmapped)
tensors — embeddings, layer k, final norm, head — for compare_streamed (compare/streamed.py) to run on every
micro-batch, and frees it again. Each library's runner (compare/fairseq_runner.py, compare/hf_runner.py) provides the
module names and the glue between modules, mirroring its library's own forward.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from xlmr_tools.errors import BadInput, VerificationFailed
from xlmr_tools.model import head_kind


class Runner(ABC):
    """One model, streamed. Subclasses provide the module names and the glue, mirroring their library's forward."""

    model: Any  # fairseq's RobertaModel or a transformers *For* model, built on the meta device
    layers: int
    vocab_rows: int
    hidden: int
    ffn: int
    has_final_norm: bool
    head: str | None  # None: masked-LM; else the classification head's name
    head_stage: str | None  # None: no head (the encoder alone)
    languages: list[str]  # X-MOD: the language adapters, in the model's order; [] for other models

    def __init__(self, tensor: Callable[[str], torch.Tensor], dtype: torch.dtype, device: str) -> None:
        self._tensor, self.dtype, self.device = tensor, dtype, device
        self.view: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # the read-ahead's copy of a tensor's bytes

    def _load(
        self,
        name: str,
        state: dict[str, torch.Tensor] | None = None,
        raw: tuple[str, ...] = (),
        rows: tuple[str, torch.Tensor] | None = None,
    ) -> Any:
        """Module `name` given its tensors, cast to the run's dtype — except `raw` keys, kept as stored (the LM
        head's decoder, cast one vocabulary block at a time) and, for `rows` (key, token ids), only those rows of
        that matrix cast: an embedding lookup reads no other row, and a cast XXL embedding would be 4 GB a model."""
        module = self.model.get_submodule(name)
        if state is None:
            keys = [k for k, _ in persistent(module)]
            state = {k: self._tensor(f"{name}.{k}") for k in keys}
        state = {k: self.view(v) for k, v in state.items()}
        if rows is not None and state[rows[0]].dtype != self.dtype:
            state[rows[0]] = rows_cast(state[rows[0]], rows[1], self.dtype)
        state = {k: v.to(self.device) if k in raw else cast(v, self.dtype).to(self.device) for k, v in state.items()}
        missing, unexpected = nn.Module.load_state_dict(module, state, strict=False, assign=True)
        if missing or unexpected:
            raise VerificationFailed(None, f"{name}: missing {missing[:3]} unexpected {unexpected[:3]}")
        return module

    def _free(self, name: str) -> None:
        self.model.get_submodule(name).to_empty(device="meta")

    @abstractmethod
    def layer_name(self, k: int) -> str:
        """The module path of layer k in this library's model."""

    def load_layer(self, k: int) -> None:
        self._load(self.layer_name(k))

    def free_layer(self, k: int) -> None:
        self._free(self.layer_name(k))

    def layer_tensors(self, k: int) -> list[torch.Tensor]:
        """Layer k's tensors as stored (lazy views: nothing is read), for read-ahead."""
        name = self.layer_name(k)
        return [self._tensor(f"{name}.{key}") for key, _ in persistent(self.model.get_submodule(name))]

    @abstractmethod
    def load_embeddings(self, ids: torch.Tensor) -> None:
        """Load the embedding modules for a run over these token ids (all of the run's)."""

    @abstractmethod
    def free_embeddings(self) -> None: ...

    @abstractmethod
    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Token ids -> (the input of layer 0, whatever the layers need besides it: the padding mask)."""

    @abstractmethod
    def packed_context(self, x: torch.Tensor, segments: torch.Tensor, pad: torch.Tensor) -> Any:
        """What the layers need besides x ([1, T, hidden]) for a packed row: `segments` [1, T] numbers each token's
        text (attention stays within a text), `pad` [1, T] marks padding (never attended to) — as the library itself
        masks attention."""

    def pack(self, x: torch.Tensor, lengths: list[int], slots: list[int]) -> tuple[torch.Tensor, Any]:
        """A padded batch's embeddings (each row's first `lengths[row]` tokens real) as one packed row, row r taking
        its first `slots[r]` positions: its real tokens and, where the slot is longer, its padding."""
        rows = self.batch_first(x)
        flat = torch.cat([rows[row, :slot] for row, slot in enumerate(slots)])[None]
        segments = torch.repeat_interleave(torch.arange(len(slots)), torch.tensor(slots))[None].to(x.device)
        pad = torch.cat([torch.arange(slot) >= n for slot, n in zip(slots, lengths)])[None].to(x.device)
        return self.batch_first(flat), self.packed_context(flat, segments, pad)

    @abstractmethod
    def layer(self, k: int, x: torch.Tensor, ctx: Any, languages: list[str] | None) -> torch.Tensor:
        """Layer k on x; `languages`: X-MOD's adapter for each row (None for other models)."""

    @abstractmethod
    def final_norm(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def batch_first(self, x: torch.Tensor) -> torch.Tensor:
        """Activations as [batch, tokens, hidden] (fairseq's layers run time-major); its own inverse."""

    @abstractmethod
    def load_head(self) -> None: ...

    @abstractmethod
    def run_head(self, features: torch.Tensor) -> torch.Tensor:
        """A classification head on the final features."""

    @abstractmethod
    def lm_features(self, features: torch.Tensor) -> torch.Tensor:
        """The masked-LM head up to its decoder (dense, activation, LayerNorm), as the library's head computes it."""

    @abstractmethod
    def lm_block(self, start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The decoder for vocabulary rows start..end (the logits of those words), as the library computes it."""

    @abstractmethod
    def lm_weight(self) -> torch.Tensor:
        """The loaded decoder matrix as stored (read-ahead takes the next vocabulary block of it)."""


def head_stage(head: str | None) -> str | None:
    """The name of the head's stage (None: the encoder alone, whose last stage is its last layer or final norm)."""
    kind = head_kind(head)
    return "lm logits" if kind == "masked-lm" else f"head {head}" if kind == "classifier" else None


def persistent(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """A module's saved tensors (its state dict, buffers that are not saved left out): what a runner loads."""
    return list(module.state_dict(keep_vars=True).items())


def cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A floating tensor in the run's dtype; integer tensors (ids, counters) as they are."""
    return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t


def rows_cast(t: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`t` in `dtype` where only rows `ids` hold values: an uninitialised tensor (its pages are not committed until
    written) with those rows cast in. Exact for a lookup of `ids`, which reads nothing else."""
    out = torch.empty(t.shape, dtype=dtype)
    rows = ids.unique()
    out[rows] = t[rows].to(dtype)
    return out


def check_device(device: str, dtype: torch.dtype) -> None:
    """The device a runner runs on exists here and can run `dtype`."""
    if device not in ("cpu", "cuda"):
        raise BadInput(None, f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput(None, "--device cuda: no CUDA device is available here")
    if device == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise BadInput(None, "--dtype bfloat16: this CUDA device cannot run bfloat16")
