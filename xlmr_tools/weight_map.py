"""fairseq <-> Hugging Face tensor names, as data: one table per family, layer-templated.

`convert`, `verify` and `diff` all go through `plan()`: every source tensor is either mapped, or ignored with a
stated reason; anything else is an error, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import BadInput
from .model_description import POST_LN, PRE_LN, ModelDescription

FS = "encoder.sentence_encoder."
HF = "roberta."

# (fairseq suffix, HF suffix) inside one layer; each expands to .weight and .bias
_LAYER_SHARED = [
    ("self_attn.q_proj", "attention.self.query"),
    ("self_attn.k_proj", "attention.self.key"),
    ("self_attn.v_proj", "attention.self.value"),
    ("self_attn.out_proj", "attention.output.dense"),
    ("fc1", "intermediate.dense"),
    ("fc2", "output.dense"),
]
LAYER_TABLE = {
    POST_LN: _LAYER_SHARED + [
        ("self_attn_layer_norm", "attention.output.LayerNorm"),
        ("final_layer_norm", "output.LayerNorm"),
    ],
    PRE_LN: _LAYER_SHARED + [
        ("self_attn_layer_norm", "attention.self_attn_layer_norm"),
        ("final_layer_norm", "LayerNorm"),
    ],
}
# (fairseq name, HF name, report group); names ending in "." expand to .weight and .bias
TOP_TABLE = {
    POST_LN: [
        (FS + "embed_tokens.weight", HF + "embeddings.word_embeddings.weight", "embeddings"),
        (FS + "embed_positions.weight", HF + "embeddings.position_embeddings.weight", "embeddings"),
        (FS + "layernorm_embedding.", HF + "embeddings.LayerNorm.", "embeddings"),
    ],
    PRE_LN: [
        (FS + "embed_tokens.weight", HF + "embeddings.word_embeddings.weight", "embeddings"),
        (FS + "embed_positions.weight", HF + "embeddings.position_embeddings.weight", "embeddings"),
        (FS + "layer_norm.", HF + "encoder.LayerNorm.", "final norm"),
    ],
}
LM_HEAD_TABLE = [
    ("encoder.lm_head.dense.", "lm_head.dense.", "lm head"),
    ("encoder.lm_head.layer_norm.", "lm_head.layer_norm.", "lm head"),
    ("encoder.lm_head.bias", "lm_head.bias", "lm head"),
]
# Untied (untie_weights_roberta): transformers then ties neither the decoder weight nor its bias, so both are written.
UNTIED_LM_HEAD = [("encoder.lm_head.weight", "lm_head.decoder.weight", "lm head"),
                  ("encoder.lm_head.bias", "lm_head.decoder.bias", "lm head")]
CLASSIFIER_TABLE = [
    ("classification_heads.{head}.dense.", "classifier.dense.", "classifier"),
    ("classification_heads.{head}.out_proj.", "classifier.out_proj.", "classifier"),
]
# HF tensors with no fairseq source: RoBERTa has no token types, so one all-zero row.
SYNTHESIZED = {HF + "embeddings.token_type_embeddings.weight": "zeros(1, hidden)"}

# Renames fairseq itself applies when it loads an older checkpoint (RobertaModel.upgrade_state_dict_named).
LEGACY_RENAMES = [(re.compile(r"^decoder\."), "encoder."), (re.compile(r"\.emb_layer_norm\."), ".layernorm_embedding.")]
IGNORED_PATTERNS = [(re.compile(r"(^|\.)version$"), "fairseq bookkeeping tensor")]


def normalize_fairseq_name(name: str) -> str:
    for pattern, repl in LEGACY_RENAMES:
        name = pattern.sub(repl, name)
    return name


def _expand(fs: str, hf: str, group: str) -> list[tuple[str, str, str]]:
    if fs.endswith("."):
        return [(fs + p, hf + p, group) for p in ("weight", "bias")]
    return [(fs, hf, group)]


@dataclass(frozen=True)
class Mapped:
    fairseq: str
    hf: str
    group: str  # "embeddings", "layer 3", "final norm", "lm head", "classifier"


@dataclass
class Plan:
    mapped: list[Mapped]
    ignored: dict[str, str] = field(default_factory=dict)  # fairseq name -> why

    def hf_names(self) -> list[str]:
        return [m.hf for m in self.mapped]


def table(desc: ModelDescription, head: str | None) -> list[Mapped]:
    """The full fairseq -> HF table for this model and output head (None = masked-LM head)."""
    rows: list[tuple[str, str, str]] = []
    for fs, hf, group in TOP_TABLE[desc.family]:
        rows += _expand(fs, hf, group)
    for i in range(desc.layers):
        for fs, hf in LAYER_TABLE[desc.family]:
            rows += _expand(f"{FS}layers.{i}.{fs}.", f"{HF}encoder.layer.{i}.{hf}.", f"layer {i}")
    if head is None:
        for fs, hf, group in LM_HEAD_TABLE:
            rows += _expand(fs, hf, group)
        if not desc.tied_lm_head:
            rows += UNTIED_LM_HEAD
    else:
        for fs, hf, group in CLASSIFIER_TABLE:
            rows += _expand(fs.format(head=head), hf, group)
    return [Mapped(*r) for r in rows]


def plan(source_names: list[str], desc: ModelDescription, head: str | None, where: str) -> Plan:
    """Match normalized fairseq names against the table: every name mapped or ignored with a reason."""
    if head is not None and head not in desc.classification_heads:
        have = ", ".join(sorted(desc.classification_heads)) or "none"
        raise BadInput(where, f"no classification head named '{head}' (heads in this checkpoint: {have})")
    rows = table(desc, head)
    wanted = {m.fairseq for m in rows}
    present = set(source_names)
    missing = sorted(wanted - present)
    if missing:
        raise BadInput(where, f"checkpoint lacks {len(missing)} tensor(s) the {desc.family} layout needs, "
                              f"first: {missing[0]}")
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    for name in source_names:
        if name in wanted:
            continue
        reason = _ignore_reason(name, desc, head)
        if reason is None:
            unknown.append(name)
        else:
            ignored[name] = reason
    if unknown:
        raise BadInput(where, f"{len(unknown)} tensor(s) not in the {desc.family} weight map, first: {unknown[0]}")
    return Plan(rows, ignored)


def _ignore_reason(name: str, desc: ModelDescription, head: str | None) -> str | None:
    for pattern, why in IGNORED_PATTERNS:
        if pattern.search(name):
            return why
    if name == "encoder.lm_head.weight" and desc.tied_lm_head:
        return "tied to embed_tokens (HF re-ties lm_head.decoder.weight)"
    if name.startswith("encoder.lm_head.") and head is not None:
        return f"masked-LM head, not converted when --head {head} is chosen"
    m = re.match(r"classification_heads\.([^.]+)\.", name)
    if m and m.group(1) in desc.classification_heads and m.group(1) != head:
        return f"classification head '{m.group(1)}' not asked for"
    return None


def hf_group(hf_name: str) -> str:
    """Report group for any HF tensor name (used by diff on folders made by anyone)."""
    m = re.search(r"encoder\.layer\.(\d+)\.", hf_name)
    if m:
        return f"layer {m.group(1)}"
    if "embeddings." in hf_name:
        return "embeddings"
    if hf_name.startswith(("lm_head.",)):
        return "lm head"
    if hf_name.startswith("classifier."):
        return "classifier"
    if "encoder.LayerNorm" in hf_name:
        return "final norm"
    return "other"
