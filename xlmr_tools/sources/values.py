"""The type and range of every value a source's metadata hands us: config.json's fields and a fairseq checkpoint's
training arguments, checked when they are read and before anything uses them.

A value of the wrong type (`"num_attention_heads": "abc"`, `activation_fn=5`) or out of range (a negative size,
`"max_position_embeddings": 1e11`, a `null` pad id) is bad input, refused with one line naming the file and the
field; it must never surface later as a Python error (exit 70) or size an allocation. Each field's rule is stated
once, here. Fields not listed are not read by xlmr or by the model transformers/fairseq builds, and pass as they are.
Sizes are only checked for their type and sign here: whether they agree with the weights is the readers' and the
comparisons' business (a config that builds another model than its weights is refused before the model is built).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import torch

from xlmr_tools.errors import BadInput

INT_MAX = 2**31 - 1
# What a weight can be: dense, in memory, one of the floating types safetensors and transformers' XLM-R classes take.
# Sparse, meta (no data), quantized, integer or complex tensors are refused by name before anything reads them.
WEIGHT_DTYPES = (
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
)  # a size beyond this is no model (tensor dimensions and ids are int32-safe everywhere)


@dataclass(frozen=True)
class Rule:
    kind: str  # int | number | bool | str | str_list | names | token_ids | labels | layer_list
    low: float = -math.inf
    high: float = math.inf
    nullable: bool = False  # `null` allowed (any field may be absent)

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks this rule, or None."""
        if value is None:
            return None if self.nullable else f"null, expected {self.expected()}"
        kind = self.kind
        if kind == "int":
            if not _is_int(value):
                return f"not an integer (expected {self.expected()})"
            return self._range(value)
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"not a number (expected {self.expected()})"
            if isinstance(value, float) and not math.isfinite(value):
                return "not a finite number"
            return self._range(value)
        if kind == "bool":
            return None if isinstance(value, bool) or (_is_int(value) and value in (0, 1)) else "not true or false"
        if kind == "str":
            return None if _is_text(value) else "not a string"
        if kind == "names":
            return None if _is_text(value) else Rule("str_list").problem(value)
        if kind == "str_list":
            ok = isinstance(value, (list, tuple)) and all(_is_text(v) for v in value)
            return None if ok else "not a list of strings"
        if kind == "token_ids":  # eos_token_id: an id or a list of ids
            ids = value if isinstance(value, (list, tuple)) else [value]
            ok = bool(ids) and all(_is_int(v) and 0 <= v <= INT_MAX for v in ids)
            return None if ok else "not a token id (a non-negative integer, or a list of them)"
        if kind == "labels":  # id2label / label2id
            ok = isinstance(value, Mapping) and all(_is_text(k) or _is_int(k) for k in value)
            return None if ok else "not an object of labels"
        if kind == "layer_list":  # fairseq's encoder_layers_to_keep: "0,2,4" (or a single layer number)
            if _is_int(value) and value >= 0:
                return None
            ok = isinstance(value, str) and bool(
                not value.strip() or re.fullmatch(r"\s*\d{1,9}(\s*,\s*\d{1,9})*\s*", value)
            )
            return None if ok else "not a comma-separated list of layer numbers"
        raise ValueError(f"unknown rule kind {kind!r}")

    def expected(self) -> str:
        what = {"int": "an integer", "number": "a number"}.get(self.kind, self.kind)
        if self.low > -math.inf and self.high < math.inf:
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        if self.low > -math.inf:
            return f"{what} of at least {_num(self.low)}"
        return what

    def _range(self, value: float) -> str | None:
        if self.low <= value <= self.high:
            return None
        return f"out of range (expected {self.expected()})"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    """A string, or an enum whose value is one (fairseq's ChoiceEnum members, read with --trust-checkpoint)."""
    return isinstance(value, str) or (isinstance(value, enum.Enum) and isinstance(value.value, str))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def shown(value: Any) -> str:
    """A value as an error line can quote it: short, and safe for a 100,000-digit integer (whose repr raises)."""
    if _is_int(value) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


SIZE = Rule("int", 1, INT_MAX)
PROBABILITY = Rule("number", 0, 1)
FLAG = Rule("bool")
TEXT = Rule("str")

# config.json: the fields xlmr reads and those the XLM-R / RoBERTa / X-MOD config classes build the model from.
CONFIG_RULES: dict[str, Rule] = {
    "model_type": TEXT,
    "architectures": Rule("names", nullable=True),  # a list of class names; transformers takes one name too
    "vocab_size": SIZE,
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": SIZE,
    "max_position_embeddings": SIZE,
    "type_vocab_size": SIZE,
    "hidden_act": TEXT,
    "hidden_dropout_prob": PROBABILITY,
    "attention_probs_dropout_prob": PROBABILITY,
    "classifier_dropout": Rule("number", 0, 1, nullable=True),
    "initializer_range": Rule("number", 0),
    "layer_norm_eps": Rule("number", 0, 1),
    "pad_token_id": Rule("int", 0, INT_MAX),  # XLM-R's position ids are counted from it: null cannot run
    "bos_token_id": Rule("int", 0, INT_MAX, nullable=True),
    "eos_token_id": Rule("token_ids", nullable=True),
    "tie_word_embeddings": FLAG,
    "is_decoder": FLAG,
    "add_cross_attention": FLAG,
    "use_cache": FLAG,
    "num_labels": SIZE,
    "id2label": Rule("labels", nullable=True),
    "label2id": Rule("labels", nullable=True),
    "dtype": Rule("str", nullable=True),
    "torch_dtype": Rule("str", nullable=True),
    "position_embedding_type": TEXT,
    # X-MOD
    "languages": Rule("str_list"),
    "default_language": Rule("str", nullable=True),
    "adapter_reduction_factor": SIZE,
    "adapter_layer_norm": FLAG,
    "adapter_reuse_layer_norm": FLAG,
    "ln_before_adapter": FLAG,
}

# fairseq's training arguments that xlmr reads or fairseq's RoBERTa/X-MOD build uses. `null` is fairseq's "unset":
# its architecture functions then fill in their default (safe_getattr), so it passes everywhere.
FAIRSEQ_ARG_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        ["encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads", "max_positions",
         "bottleneck"],
        Rule("int", 1, INT_MAX, nullable=True),
    ),
    **dict.fromkeys(
        ["dropout", "attention_dropout", "activation_dropout", "pooler_dropout", "encoder_layerdrop", "quant_noise_pq"],
        Rule("number", 0, 1, nullable=True),
    ),
    **dict.fromkeys(
        ["arch", "_name", "task", "activation_fn", "pooler_activation_fn", "classification_head_name"],
        Rule("str", nullable=True),
    ),
    **dict.fromkeys(
        ["untie_weights_roberta", "encoder_normalize_before", "no_token_positional_embeddings", "encoder_learned_pos",
         "no_scale_embedding", "adaptive_input", "layernorm_embedding", "spectral_norm_classification_head",
         "adapter_reuse_layer_norm", "ln_before_adapter", "adapter_layer_norm"],
        Rule("bool", nullable=True),
    ),
    "encoder_layers_to_keep": Rule("layer_list", nullable=True),
    "languages": Rule("str_list", nullable=True),
}  # fmt: skip


def check_config(config: Mapping[str, Any], path: Path) -> None:
    """config.json's values against CONFIG_RULES, then the rules between fields transformers enforces when it
    builds the model (heads divide the hidden size; the pad id is a row of the embedding)."""
    _check(config, CONFIG_RULES, path, "")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if _is_int(hidden) and _is_int(heads) and hidden % heads:
        raise BadInput(
            path, f"num_attention_heads={heads} does not divide hidden_size={hidden}: transformers "
            "cannot build the attention",
        )  # fmt: skip
    vocab, pad = config.get("vocab_size"), config.get("pad_token_id")
    if _is_int(vocab) and _is_int(pad) and pad >= vocab:
        raise BadInput(path, f"pad_token_id={pad} is no row of the {vocab}-row embedding (vocab_size)")


def check_fairseq_args(args: Mapping[str, Any], path: Path) -> None:
    """A checkpoint's training arguments against FAIRSEQ_ARG_RULES."""
    _check(args, FAIRSEQ_ARG_RULES, path, "fairseq argument ")


def _check(values: Mapping[str, Any], rules: Mapping[str, Rule], path: Path, what: str) -> None:
    """`what` prefixes the field's name in the message (the path already names config.json)."""
    for key, rule in rules.items():
        if key not in values:
            continue
        problem = rule.problem(values[key])
        if problem is not None:
            raise BadInput(path, f"{what}{key}={shown(values[key])} is {problem}")


def check_tensor(
    path: Path, name: str, dtype: torch.dtype, *, layout: torch.layout = torch.strided, meta: bool = False,
    weight: bool = True,
) -> None:  # fmt: skip
    """A tensor of a checkpoint or folder is something xlmr can read, copy and compare: dense and holding data;
    a weight (not a bookkeeping buffer such as fairseq's `version` or transformers' `position_ids`) also floating."""
    if layout != torch.strided:
        raise BadInput(path, f"tensor '{name}' is {str(layout).removeprefix('torch.')}, not a dense tensor")
    if meta:
        raise BadInput(path, f"tensor '{name}' is on the meta device: it holds no data")
    if weight and dtype not in WEIGHT_DTYPES:
        raise BadInput(
            path,
            f"tensor '{name}' is {str(dtype).removeprefix('torch.')}: weights are "
            + ", ".join(str(d).removeprefix("torch.") for d in WEIGHT_DTYPES),
        )
