"""What `AutoModel*.from_pretrained(folder)` would build from a written config: its class, keys and shapes,
checked on the meta device (no weights read, no memory: cheap enough to run with --no-verify too)."""

from __future__ import annotations

from pathlib import Path

import torch

from xlmr_tools.errors import BadInput, VerificationFailed


def check_auto_class(folder: Path, head: str | None, expected_class: str, weights: dict[str, tuple[int, ...]]) -> None:
    """What `AutoModel*.from_pretrained(folder)` would build — class, expected keys and their shapes — checked on
    the meta device, so it costs nothing even for XXL: the class the config selects, no missing/unexpected keys,
    no shape transformers would refuse (a refusal of what cannot be represented: BadInput, exit 2)."""
    from transformers import (
        AutoConfig,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    auto = AutoModelForMaskedLM if head is None else AutoModelForSequenceClassification
    with torch.device("meta"):
        model = auto.from_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))
    if type(model).__name__ != expected_class:
        raise VerificationFailed(folder, f"AutoModel* would build {type(model).__name__}, not {expected_class}")
    tied = set(getattr(model, "_tied_weights_keys", None) or {}) if model.config.tie_word_embeddings else set()
    state = model.state_dict()
    expected = set(state) - tied
    weight_names = set(weights)
    missing, unexpected = sorted(expected - weight_names), sorted(weight_names - expected)
    if missing or unexpected:
        raise VerificationFailed(
            folder,
            f"transformers would report missing {missing[:3]} / unexpected {unexpected[:3]} keys for {expected_class}",
        )
    for name in sorted(weight_names):
        if tuple(state[name].shape) != tuple(weights[name]):
            raise BadInput(
                folder,
                f"cannot be represented in transformers: {expected_class} expects {name} of "
                f"shape {list(state[name].shape)}, the checkpoint gives {list(weights[name])}",
            )
