"""The transformers config for a described model: every value from the checkpoint, none hard-coded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.model import CLASSIFIER, ENCODER, ModelDescription, head_kind

# fairseq activation_fn (fairseq.utils.get_activation_fn) -> transformers hidden_act, each the same formula:
# gelu is erf-gelu in both; fairseq's gelu_accurate (and its deprecated alias gelu_fast) is the tanh approximation
# written exactly as transformers' gelu_new (bit-identical; gelu_pytorch_tanh is a fused kernel that is not).
ACTIVATIONS = {
    "gelu": "gelu",
    "relu": "relu",
    "gelu_accurate": "gelu_new",
    "gelu_fast": "gelu_new",
    "tanh": "tanh",
    "linear": "linear",
}


CLASS_SUFFIX = {"masked-lm": "ForMaskedLM", "classifier": "ForSequenceClassification", "encoder": "Model"}


def model_class_name(desc: ModelDescription, head: str | None) -> str:
    return desc.hf_classes[1] + CLASS_SUFFIX[head_kind(head)]


def choose_head(desc: ModelDescription, head: str | None, where: str) -> str | None:
    """The head a conversion takes, decided here once: the one asked for (a classification head of the checkpoint,
    or `--head none`: the encoder alone); else the masked-LM head, or the encoder alone where the checkpoint has no
    head at all (data2vec-text's student, an encoder trained without one)."""
    if head is not None:
        if head != ENCODER and head not in desc.classification_heads:
            have = ", ".join(sorted(desc.classification_heads)) or "none"
            raise BadInput(where, f"no classification head named '{head}' (heads in this checkpoint: {have})")
        return head
    if desc.lm_head:
        return None
    if not desc.classification_heads:
        return ENCODER
    raise BadInput(
        where,
        "the checkpoint has no masked-LM head: name one of its classification heads with --head "
        f"({', '.join(sorted(desc.classification_heads))}), or --head {ENCODER} for the encoder alone",
    )


def folder_head(folder: ModelDescription, head: str | None) -> str | None:
    """The head an HF folder is compared by: the one asked for; else the one it holds — the masked-LM head (None),
    its classification head (model.CLASSIFIER: transformers' `classifier`, whatever fairseq named it), or the encoder
    alone."""
    if head is not None:
        return head
    return None if folder.lm_head else CLASSIFIER if folder.classification_heads else ENCODER


def compared_head(
    desc: ModelDescription, folder: ModelDescription, head: str | None, where: str | Path, folder_where: str | Path
) -> str | None:
    """The checkpoint's head compared with an HF folder (verify; diff's fairseq side), decided here once: the one asked
    for (as choose_head checks it); else the one the folder holds (folder_head), its classifier being the
    checkpoint's one classification head."""
    if head is not None:
        return choose_head(desc, head, str(where))
    held = folder_head(folder, None)
    if held is None and not desc.lm_head:  # else: "checkpoint lacks ... encoder.lm_head.*", blaming the checkpoint
        heads = ", ".join(sorted(desc.classification_heads)) or "none"
        raise BadInput(
            folder_where,
            f"the folder holds a masked-LM head and the checkpoint has none (its classification heads: {heads}); "
            f"compare the encoder alone with --head {ENCODER}",
        )
    if held != CLASSIFIER:
        return held
    if len(desc.classification_heads) == 1:
        return next(iter(desc.classification_heads))
    raise BadInput(
        folder_where,
        "the folder holds a classifier; name the checkpoint's head with --head "
        f"(heads: {', '.join(sorted(desc.classification_heads)) or 'none'})",
    )


def problems(desc: ModelDescription, args: dict[str, Any], head: str | None) -> list[str]:
    """What transformers' XLM-R classes cannot reproduce for this model and output head, each naming the fairseq
    option and why (docs/formats.md has the whole table)."""
    out = [f"cannot be represented in transformers: {p}" for p in desc.unsupported]
    if desc.activation not in ACTIVATIONS:
        out.append(f"activation_fn={desc.activation!r} has no transformers equivalent")
    elif head is None and desc.activation != "gelu":
        out.append(
            f"activation_fn={desc.activation!r}: transformers' XLM-R LM head always applies erf-gelu "
            "where fairseq's applies the model's activation, so the logits would differ; "
            f"convert a classification head (--head) or the encoder alone (--head {ENCODER}) instead"
        )
    if head_kind(head) == "classifier" and args.get("pooler_activation_fn", "tanh") != "tanh":
        out.append(
            f"pooler_activation_fn={args.get('pooler_activation_fn')!r}: transformers' classification head "
            f"always applies tanh; the encoder alone converts (--head {ENCODER})"
        )
    return out


def check_language(desc: ModelDescription, language: str | None, where: str) -> None:
    """--lang names one of an X-MOD model's adapters, and only for X-MOD."""
    if language is None:
        return
    if desc.adapters is None:
        raise BadInput(where, f"--lang {language}: not an X-MOD model (it has no language adapters)")
    if language not in desc.adapters.languages:
        raise BadInput(
            where, f"--lang {language}: no adapter for it; the model's languages: {', '.join(desc.adapters.languages)}"
        )


def validate(desc: ModelDescription, args: dict[str, Any], head: str | None, where: str) -> None:
    """Refuse what transformers' XLM-R classes cannot reproduce (cheap: no transformers import)."""
    found = problems(desc, args, head)
    if found:
        raise BadInput(where, found[0])


def build_config(
    desc: ModelDescription,
    args: dict[str, Any],
    head: str | None,
    dtype: torch.dtype,
    where: str,
    labels: list[str] | None = None,
    specials: dict[str, int] | None = None,
    settings: dict[str, Any] | None = None,
    regression: bool = False,
):
    """`specials`: fairseq's ids for <s>, <pad>, </s> (the tokenizer's; CamemBERT's dict.txt moves <s> and </s>).
    `settings`: what the model's family adds (families.base.Family.config_settings: X-MOD's adapters).
    `regression`: the head was trained with fairseq's --regression-target (problem_type "regression": transformers'
    text-classification pipeline then returns the raw output, as fairseq does, not its sigmoid)."""
    import transformers

    validate(desc, args, head, where)
    cls = getattr(transformers, desc.hf_classes[1] + "Config")
    ids = specials or {"<s>": 0, "</s>": 2}
    kwargs: dict[str, Any] = dict(
        vocab_size=desc.vocab_rows,
        hidden_size=desc.hidden,
        num_hidden_layers=desc.layers,
        num_attention_heads=desc.heads,
        intermediate_size=desc.ffn,
        hidden_act=ACTIVATIONS[desc.activation],
        hidden_dropout_prob=float(args.get("dropout", 0.1)),
        attention_probs_dropout_prob=float(args.get("attention_dropout", 0.1)),
        max_position_embeddings=desc.position_rows,
        type_vocab_size=1,
        layer_norm_eps=desc.layer_norm_eps,
        pad_token_id=desc.padding_idx,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        tie_word_embeddings=desc.tied_lm_head or head is not None,  # (no decoder to tie but the masked-LM head's)
        architectures=[model_class_name(desc, head)],
    )
    if head_kind(head) == "classifier" and head is not None:
        n = desc.classification_heads[head]
        names = labels or [f"LABEL_{i}" for i in range(n)]
        kwargs.update(
            num_labels=n,
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            classifier_dropout=float(args.get("pooler_dropout", 0.0)),
        )
        if regression:
            kwargs["problem_type"] = "regression"
    kwargs.update(settings or {})
    config = cls(**kwargs)
    config.dtype = dtype
    return config


def read_labels(path: Path, classes: int) -> list[str]:
    """Class names from a fairseq label dictionary (label/dict.txt of a sentence_prediction fine-tune): fairseq
    predicts class i as the dictionary's symbol i (after its 4 specials, which the file does not list)."""
    from xlmr_tools.mapping.tokenizer import FILLER, read_dict

    symbols = [s for s in read_dict(path) if not FILLER.match(s)]
    if len(symbols) < classes:
        raise BadInput(path, f"{len(symbols)} labels for a head with {classes} classes")
    names = symbols[:classes]
    if len(set(names)) != len(names):
        raise BadInput(path, "a label is listed twice")
    return names


# config.json entries that change nothing a loaded model computes, or that rows of their own cover: dropout and
# initialisation (inference runs in eval mode on loaded weights), switches for extra outputs (not `return_dict`:
# false makes the model return a tuple, which `.logits` and the fill-mask pipeline fail on), generation and
# bookkeeping ids, the
# class names (which class loads is decided and reported apart), labels (num_labels, id2label), the dtype, how the FFN
# is chunked (the same products), X-MOD's default_language (any of its languages may be the default), the weights
# file config.json names (what it selects is what the weights are compared from).
NOT_COMPARED = frozenset({
    "_name_or_path", "architectures", "transformers_version", "model_type", "attention_probs_dropout_prob",
    "hidden_dropout_prob", "classifier_dropout", "initializer_range", "output_attentions", "output_hidden_states",
    "use_cache", "problem_type", "bos_token_id", "eos_token_id", "id2label", "label2id", "dtype",
    "chunk_size_feed_forward", "default_language", "tokenizer_class", "transformers_weights",
})  # fmt: skip
_FIRST = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size",
          "max_position_embeddings", "layer_norm_eps", "hidden_act", "pad_token_id", "type_vocab_size")  # fmt: skip


def compared_keys(*configs: Any) -> list[str]:
    """The config entries that change what a loaded model computes (all but NOT_COMPARED), main sizes first."""
    keys = {k for c in configs for k in c.to_dict() if k not in NOT_COMPARED}
    return sorted(keys, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k))


def same_value(want: Any, got: Any) -> bool:
    """Config values as a model uses them: floats to 1e-12 (eps written as 1e-05 or 1.0e-5), a bool never equal
    to an int."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if isinstance(want, float) and isinstance(got, (int, float)):
        return abs(float(got) - want) <= 1e-12
    return bool(want == got)
