"""Per-stage activations of a fairseq and an HF XLM-R model, captured with forward hooks on their own modules.

Stages: "embeddings" (input of layer 0), "layer i" (output of each block), "final norm" (pre-LN only),
and the head output ("lm logits" or "head <name>"). All returned as batch-first tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _capture(model: nn.Module, points: list[tuple[str, nn.Module, str]], run: Callable[[], torch.Tensor],
             time_major: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    handles = []
    for stage, module, kind in points:
        def hook(mod, args, result=None, stage=stage, kind=kind):
            x = _first(args) if kind == "input" else _first(result)
            out[stage] = (x.transpose(0, 1) if time_major else x).detach()
        handles.append(module.register_forward_pre_hook(hook) if kind == "input" else module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            final = run()
    finally:
        for h in handles:
            h.remove()
    return {**out, "_final": final}


def fairseq_stages(model: nn.Module, tokens: torch.Tensor, head: str | None) -> dict[str, torch.Tensor]:
    enc = model.encoder.sentence_encoder
    points = [("embeddings", enc.layers[0], "input")]
    points += [(f"layer {i}", layer, "output") for i, layer in enumerate(enc.layers)]
    if enc.layer_norm is not None:
        points.append(("final norm", enc.layer_norm, "output"))

    def run() -> torch.Tensor:
        if head is None:
            return model(tokens)[0]
        return model(tokens, classification_head_name=head)[0]

    out = _capture(model, points, run, time_major=True)
    out[head_stage(head)] = out.pop("_final")
    return out


def hf_stages(model: nn.Module, tokens: torch.Tensor, pad_id: int, head: str | None) -> dict[str, torch.Tensor]:
    base = model.roberta
    points = [("embeddings", base.encoder.layer[0], "input")]
    points += [(f"layer {i}", layer, "output") for i, layer in enumerate(base.encoder.layer)]
    if hasattr(base.encoder, "LayerNorm"):
        points.append(("final norm", base.encoder.LayerNorm, "output"))
    mask = (tokens != pad_id).long()
    out = _capture(model, points, lambda: model(input_ids=tokens, attention_mask=mask).logits, time_major=False)
    out[head_stage(head)] = out.pop("_final")
    return out


def head_stage(head: str | None) -> str:
    return "lm logits" if head is None else f"head {head}"
