"""fairseq's load-time rewrites of a checkpoint's state dict, applied as fairseq applies them when it loads the
model, so every reader sees the tensors under the names (and with the values) fairseq's loaded model has:

- renames of older checkpoints (RobertaModel.upgrade_state_dict_named: `decoder.` → `encoder.`, `emb_layer_norm`);
- the 2019 fused attention `in_proj` split in thirds into q/k/v (MultiheadAttention.upgrade_state_dict_named);
- encoder_layers_to_keep (LayerDrop): checkpoint_utils.prune_state_dict keeps the listed layers, sorted, and
  renumbers them 0..n-1;
- --spectral-norm-classification-head: torch's spectral_norm keeps weight_orig and the power-iteration vectors u, v;
  in eval mode the weight it uses is weight_orig / (u . (weight_orig @ v)), with u and v as stored: computed here.

The names these rules work on are data in mapping/weights.py. compare/oracle.py runs fairseq's own code on the file's
tensors, so each rule here is checked against fairseq's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.mapping.weights import (
    FUSED_IN_PROJ,
    FUSED_PARTS,
    LAYER_NUMBER,
    LEGACY_RENAMES,
    SPECTRAL,
    SPECTRAL_VECTORS,
    check_layers,
)


def normalize_fairseq_name(name: str) -> str:
    """A tensor's name after fairseq's renames of older checkpoints (`decoder.` → `encoder.`, `emb_layer_norm`)."""
    for pattern, repl in LEGACY_RENAMES:
        name = pattern.sub(repl, name)
    return name


@dataclass
class FairseqState:
    """A checkpoint's tensors under the names fairseq's model uses once loaded (every load-time rule applied).

    `origin` gives the file's own name behind each tensor; `derived` the ones computed rather than stored as they
    are (their bytes are nowhere in the file); `dropped` the file's tensors fairseq discards, with why."""

    tensors: dict[str, torch.Tensor]
    origin: dict[str, str]
    derived: set[str] = field(default_factory=set)
    dropped: dict[str, str] = field(default_factory=dict)
    pruned_layers: tuple[int, ...] = ()  # the file's layers that encoder_layers_to_keep drops


def layers_to_keep(args: Mapping[str, Any]) -> list[int] | None:
    """The layers encoder_layers_to_keep names, sorted as fairseq keeps them (None: every layer is kept)."""
    value = args.get("encoder_layers_to_keep")
    if not value:
        return None
    return sorted(int(x) for x in str(value).split(","))


def normalize_fairseq_state(raw: Mapping[str, torch.Tensor], args: Mapping[str, Any], where: str) -> FairseqState:
    """Apply fairseq's load-time rules, in fairseq's order: renames, the in_proj split, layer pruning, then fold
    spectral norm into the weight it computes. Slices stay views of the (mmapped) file: nothing is copied."""
    tensors: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for name, t in raw.items():
        norm = normalize_fairseq_name(name)
        m = FUSED_IN_PROJ.match(norm)
        if m:
            if t.shape[0] % 3:
                raise BadInput(where, f"{name} has {t.shape[0]} rows, not three equal q/k/v parts")
            third = t.shape[0] // 3
            for i, part in enumerate(FUSED_PARTS):
                key = f"{m['base']}{part}.{m['kind']}"
                tensors[key] = t[i * third : (i + 1) * third]
                origin[key] = name
            continue
        tensors[norm] = t
        origin[norm] = name
    state = FairseqState(tensors, origin)
    check_layers(tensors, where)
    keep = layers_to_keep(args)
    if keep is not None:
        _prune(state, keep, str(args.get("encoder_layers_to_keep")), where)
    for name in [n for n in state.tensors if SPECTRAL.match(n)]:
        base = SPECTRAL.match(name)["base"]  # type: ignore[index]
        vectors = [base + suffix for suffix in SPECTRAL_VECTORS]
        u, v = (state.tensors.get(key) for key in vectors)
        if u is None or v is None:
            pair = "/".join(SPECTRAL_VECTORS)
            raise BadInput(where, f"{state.origin[name]} without its spectral-norm vectors {pair}")
        weight = state.tensors.pop(name)
        state.tensors[base + "weight"] = spectral_weight(weight, u, v)
        state.origin[base + "weight"] = state.origin.pop(name)
        state.derived.add(base + "weight")
        for key in vectors:
            state.tensors.pop(key)
            state.dropped[state.origin.pop(key)] = (
                "spectral-norm vector, folded into out_proj.weight "
                "(weight_orig / σ, σ = u·(W v), as torch computes it in eval)"
            )
    return state


def spectral_weight(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch.nn.utils.spectral_norm's weight in eval mode, computed with the same operations (so the same bits)."""
    matrix = weight.reshape(weight.shape[0], -1)
    sigma = torch.dot(u, torch.mv(matrix, v))
    return weight / sigma


def _prune(state: FairseqState, keep: list[int], spec: str, where: str) -> None:
    """Keep the layers `keep` names, renumbered 0..n-1 in that order; the others' tensors are dropped, with why."""
    present = sorted({int(m["n"]) for n in state.tensors if (m := LAYER_NUMBER.match(n))})
    missing = [k for k in keep if k not in present]
    if missing:
        raise BadInput(
            where,
            f"encoder_layers_to_keep={spec} names layer {missing[0]}, but the checkpoint has "
            f"layers {present[0]}..{present[-1]}",
        )
    new_number = {old: new for new, old in enumerate(keep)}
    state.pruned_layers = tuple(n for n in present if n not in new_number)
    for name in list(state.tensors):
        m = LAYER_NUMBER.match(name)
        if m is None:
            continue
        t, source = state.tensors.pop(name), state.origin.pop(name)
        old = int(m["n"])
        if old in new_number:
            key = f"{m['head']}{new_number[old]}{m['tail']}"
            state.tensors[key] = t
            state.origin[key] = source
        else:
            state.dropped[source] = f"layer {old} pruned by encoder_layers_to_keep={spec} (as fairseq does at load)"
