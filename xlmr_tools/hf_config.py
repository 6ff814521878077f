"""The transformers config for a described model: every value from the checkpoint, none hard-coded."""

from __future__ import annotations

from typing import Any

import torch

from .errors import BadInput
from .model_description import PRE_LN, ModelDescription

# fairseq activation_fn -> transformers hidden_act (both exact erf gelu for XLM-R releases)
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_accurate": "gelu_pytorch_tanh", "gelu_fast": "gelu_pytorch_tanh"}


def model_class_name(desc: ModelDescription, head: str | None) -> str:
    base = "XLMRobertaXL" if desc.family == PRE_LN else "XLMRoberta"
    return base + ("ForMaskedLM" if head is None else "ForSequenceClassification")


def validate(desc: ModelDescription, args: dict[str, Any], head: str | None, where: str) -> None:
    """Refuse what transformers' XLM-R classes cannot reproduce (cheap: no transformers import)."""
    if desc.activation not in ACTIVATIONS:
        raise BadInput(where, f"activation {desc.activation!r} has no transformers equivalent")
    if head is None and desc.activation != "gelu":
        raise BadInput(where, f"activation {desc.activation!r}: transformers' XLM-R LM head always applies gelu, "
                              "so its logits would differ; convert a classification head instead")
    if head is not None and args.get("pooler_activation_fn", "tanh") != "tanh":
        raise BadInput(where, "classification head uses pooler activation "
                              f"{args.get('pooler_activation_fn')!r}; transformers' head is tanh")


def build_config(desc: ModelDescription, args: dict[str, Any], head: str | None, dtype: torch.dtype,
                 where: str):
    from transformers import XLMRobertaConfig, XLMRobertaXLConfig

    validate(desc, args, head, where)
    cls = XLMRobertaXLConfig if desc.family == PRE_LN else XLMRobertaConfig
    kwargs: dict[str, Any] = dict(
        vocab_size=desc.vocab_rows, hidden_size=desc.hidden, num_hidden_layers=desc.layers,
        num_attention_heads=desc.heads, intermediate_size=desc.ffn, hidden_act=ACTIVATIONS[desc.activation],
        hidden_dropout_prob=float(args.get("dropout", 0.1)),
        attention_probs_dropout_prob=float(args.get("attention_dropout", 0.1)),
        max_position_embeddings=desc.position_rows, type_vocab_size=1, layer_norm_eps=desc.layer_norm_eps,
        pad_token_id=desc.padding_idx, bos_token_id=0, eos_token_id=2,
        tie_word_embeddings=desc.tied_lm_head or head is not None,
        architectures=[model_class_name(desc, head)],
    )
    if head is not None:
        n = desc.classification_heads[head]
        kwargs.update(num_labels=n, id2label={i: f"LABEL_{i}" for i in range(n)},
                      label2id={f"LABEL_{i}": i for i in range(n)},
                      classifier_dropout=float(args.get("pooler_dropout", 0.0)))
    config = cls(**kwargs)
    config.dtype = dtype
    return config
