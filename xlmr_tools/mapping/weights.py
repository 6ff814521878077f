"""Everything the project knows about tensor names, as data: the fairseq <-> Hugging Face tables (one per family,
layer-templated), the tensors transformers needs that fairseq has not (synthesized by a factory), tied copies,
report groups, what is ignored and why, the names fairseq's load-time rules work on (sources/fairseq_state.py
applies them), the HF prefix, and the expected shapes. The
names a family gives its norms and its base model come in as data (its Layout and `base`, from families/).

`convert`, `verify` and `diff` all go through `plan()`: every source tensor is either mapped, or ignored with a
stated reason; anything else is an error, never silently dropped. No other module spells a tensor name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.model import ENCODER, Layout, ModelDescription, head_kind

FS = "encoder.sentence_encoder."  # fairseq's encoder body
HF_HEADS = ("lm_head.", "classifier.")  # HF names outside the base model (whose prefix is the family's `base`)

# Single tensors other modules need to find, by what they are (llama.cpp's "tensor kind"), in each format.
FAIRSEQ_NAMES = {
    "token_embeddings": FS + "embed_tokens.weight",
    "positions": FS + "embed_positions.weight",
    "sinusoidal_positions": FS + "embed_positions._float_tensor",  # only old sinusoidal checkpoints keep it
    "embedding_norm": FS + "layernorm_embedding.weight",
    "final_norm": FS + "layer_norm.weight",
    "first_ffn": FS + "layers.0.fc1.weight",
    "first_adapter_norm": FS + "layers.0.adapter_layer_norm.weight",
    "quant_noise": FS + "quant_noise.weight",
    "lm_head": "encoder.lm_head.dense.weight",
}
# The heads' tensors in transformers, the same in every family.
HF_HEAD_NAMES = {
    "lm_head": "lm_head.dense.weight",
    "lm_decoder": "lm_head.decoder.weight",
    "lm_decoder_bias": "lm_head.decoder.bias",
    "lm_bias": "lm_head.bias",
    "classifier_out": "classifier.out_proj.weight",
}


def hf_names(base: str, layout: Layout | None = None) -> dict[str, str]:
    """Single tensors of an HF model by kind, under its base model's prefix (a family's `base`) and, for the norms,
    its layout; the heads' names (HF_HEAD_NAMES) with them."""
    out = {
        "token_embeddings": f"{base}.embeddings.word_embeddings.weight",
        "positions": f"{base}.embeddings.position_embeddings.weight",
        "embedding_norm": f"{base}.embeddings.LayerNorm.weight",
        "first_ffn": f"{base}.encoder.layer.0.intermediate.dense.weight",
        **HF_HEAD_NAMES,
    }
    if layout is not None and layout.final_norm:
        out["final_norm"] = f"{base}.{layout.final_norm}.weight"
    return out


# Module paths the layer-by-layer runners load one at a time, in each library's own model.
FAIRSEQ_MODULES: dict[str, str | list[str]] = {
    "embeddings": [FS + "embed_tokens", FS + "embed_positions"],
    "embedding_norm": FS + "layernorm_embedding",
    "layer": FS + "layers.{k}",
    "final_norm": FS + "layer_norm",
    "lm_head": "encoder.lm_head",
    "head": "classification_heads.{head}",
}


def hf_modules(base: str, layout: Layout) -> dict[str, str]:
    return {
        "embeddings": f"{base}.embeddings",
        "layer": f"{base}.encoder.layer.{{k}}",
        "final_norm": f"{base}.{layout.final_norm}" if layout.final_norm else "",
        "lm_head": "lm_head",
        "head": "classifier",
    }


# A tensor of fairseq encoder layer n: the prefix, n, and the rest (pruning renumbers n; groups and counts read it).
LAYER_NUMBER = re.compile(r"^(?P<head>" + re.escape(FS) + r"layers\.)(?P<n>\d+)(?P<tail>\..*)$")
_HF_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")
# a base model's final norm (XL's, PreLayerNorm's), prefixed or (a bare model's) not; the embeddings likewise
_HF_FINAL_NORM = re.compile(r"^([^.]+\.)?(encoder\.)?LayerNorm\.")
_HF_EMBEDDINGS = re.compile(r"(^|\.)embeddings\.")
_HF_LAYER_NUMBER = re.compile(r"^(?P<head>(?:.*\.)?encoder\.layer\.)(?P<n>\d+)(?P<tail>\..*)$")
_HEAD = re.compile(r"^classification_heads\.([^.]+)\.")
# X-MOD: a language's adapter in layer 0 (its name, and the adapter's size from fc1's rows).
ADAPTER = re.compile(r"^" + re.escape(FS) + r"layers\.0\.adapter_modules\.(?P<lang>[^.]+)\.fc1\.weight$")

# (fairseq suffix, HF suffix) inside one layer; each expands to .weight and .bias. The two norms follow the layout.
_LAYER_SHARED = [
    ("self_attn.q_proj", "attention.self.query"),
    ("self_attn.k_proj", "attention.self.key"),
    ("self_attn.v_proj", "attention.self.value"),
    ("self_attn.out_proj", "attention.output.dense"),
    ("fc1", "intermediate.dense"),
    ("fc2", "output.dense"),
]


def layer_rows(layout: Layout) -> list[tuple[str, str]]:
    return _LAYER_SHARED + [("self_attn_layer_norm", layout.attention_norm), ("final_layer_norm", layout.ffn_norm)]


# X-MOD, per layer and language; and the adapters' own LayerNorm (adapter_layer_norm=True), per layer
ADAPTER_TABLE = [
    ("adapter_modules.{lang}.fc1", "output.adapter_modules.{lang}.dense1"),
    ("adapter_modules.{lang}.fc2", "output.adapter_modules.{lang}.dense2"),
]
ADAPTER_NORM = ("adapter_layer_norm", "output.adapter_layer_norm")

# The shape transformers builds for each fairseq tensor (by the name's ending), in the description's sizes:
# H hidden, F ffn, V vocabulary rows, P position rows, C the head's classes, A X-MOD's adapter size. A checkpoint
# whose tensors do not fit cannot be represented; the hint names the fairseq option that made it so.
SHAPES: list[tuple[re.Pattern[str], tuple[str, ...], str]] = [
    (re.compile(r"embed_tokens\.weight$"), ("V", "H"), ""),
    (re.compile(r"adapter_modules\.[^.]+\.fc1\.weight$"), ("A", "H"), "X-MOD adapters of different sizes"),
    (re.compile(r"adapter_modules\.[^.]+\.fc1\.bias$"), ("A",), "X-MOD adapters of different sizes"),
    (re.compile(r"adapter_modules\.[^.]+\.fc2\.weight$"), ("H", "A"), "X-MOD adapters of different sizes"),
    (re.compile(r"embed_positions\.weight$"), ("P", "H"), ""),
    (
        re.compile(r"self_attn\.[qkv]_proj\.weight$"),
        ("H", "H"),
        "attention heads were pruned (mha_heads_to_keep); transformers needs heads x head size = hidden",
    ),
    (re.compile(r"self_attn\.[qkv]_proj\.bias$"), ("H",), "attention heads were pruned (mha_heads_to_keep)"),
    (re.compile(r"self_attn\.out_proj\.weight$"), ("H", "H"), "attention heads were pruned (mha_heads_to_keep)"),
    (
        re.compile(r"fc1\.weight$"),
        ("F", "H"),
        "layers have different FFN sizes (ffn_blocks_to_remove); transformers has one intermediate_size",
    ),
    (re.compile(r"fc1\.bias$"), ("F",), "layers have different FFN sizes (ffn_blocks_to_remove)"),
    (re.compile(r"fc2\.weight$"), ("H", "F"), "layers have different FFN sizes (ffn_blocks_to_remove)"),
    (
        re.compile(r"classification_heads\.[^.]+\.dense\.weight$"),
        ("H", "H"),
        "the head was registered with inner_dim {0} but transformers' classification head is hidden x hidden ({1})",
    ),
    (
        re.compile(r"classification_heads\.[^.]+\.dense\.bias$"),
        ("H",),
        "the head was registered with inner_dim {0} but transformers' classification head is hidden x hidden ({1})",
    ),
    (re.compile(r"classification_heads\.[^.]+\.out_proj\.weight$"), ("C", "H"), ""),
    (re.compile(r"classification_heads\.[^.]+\.out_proj\.bias$"), ("C",), ""),
    (re.compile(r"lm_head\.dense\.weight$"), ("H", "H"), ""),
    (re.compile(r"lm_head\.weight$"), ("V", "H"), ""),
    (re.compile(r"lm_head\.bias$"), ("V",), ""),
    (re.compile(r"(layer_?norm\w*|layernorm_embedding)\.(weight|bias)$"), ("H",), ""),
    (re.compile(r"\.bias$"), ("H",), ""),
]


def top_rows(base: str, layout: Layout) -> list[tuple[str, str, str]]:
    """(fairseq name, HF name, report group) outside the layers; names ending in "." expand to .weight and .bias."""
    rows = [
        (FS + "embed_tokens.weight", f"{base}.embeddings.word_embeddings.weight", "embeddings"),
        (FS + "embed_positions.weight", f"{base}.embeddings.position_embeddings.weight", "embeddings"),
    ]
    if layout.embedding_norm:
        rows.append((FS + "layernorm_embedding.", f"{base}.embeddings.LayerNorm.", "embeddings"))
    if layout.final_norm:
        rows.append((FS + "layer_norm.", f"{base}.{layout.final_norm}.", "final norm"))
    return rows


LM_HEAD_TABLE = [
    ("encoder.lm_head.dense.", "lm_head.dense.", "lm head"),
    ("encoder.lm_head.layer_norm.", "lm_head.layer_norm.", "lm head"),
    ("encoder.lm_head.bias", "lm_head.bias", "lm head"),
]
# Untied (untie_weights_roberta): transformers then ties neither the decoder weight nor its bias, so both are written.
UNTIED_LM_HEAD = [
    ("encoder.lm_head.weight", "lm_head.decoder.weight", "lm head"),
    ("encoder.lm_head.bias", "lm_head.decoder.bias", "lm head"),
]
CLASSIFIER_TABLE = [
    ("classification_heads.{head}.dense.", "classifier.dense.", "classifier"),
    ("classification_heads.{head}.out_proj.", "classifier.out_proj.", "classifier"),
]


def _zero_token_type(desc: ModelDescription, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(1, desc.hidden, dtype=dtype)


# HF tensors with no fairseq source, made by a factory: RoBERTa has no token types, so one all-zero row. By the name
# under the base model.
SYNTHESIZED: dict[str, tuple[str, Callable[[ModelDescription, torch.dtype], torch.Tensor]]] = {
    "embeddings.token_type_embeddings.weight": ("embeddings", _zero_token_type),
}


def tied_copies(base: str) -> dict[str, tuple[str, str]]:
    """Copies transformers ties to another tensor and does not need written; some writers keep them (they must then
    equal their source): HF name -> (fairseq source, HF source)."""
    return {
        HF_HEAD_NAMES["lm_decoder"]: (FAIRSEQ_NAMES["token_embeddings"], f"{base}.embeddings.word_embeddings.weight"),
        HF_HEAD_NAMES["lm_decoder_bias"]: ("encoder.lm_head.bias", HF_HEAD_NAMES["lm_bias"]),
    }


# HF tensors that may sit in a folder beside the mapped ones without being a defect, and why. The buffers are no
# weights at all (diff skips them); the pooler is a weight, unused by the MLM and the classifier (diff lists it).
HF_BUFFERS = [(re.compile(r"\.position_ids$"), "a buffer older pytorch_model.bin files saved")]
HF_IGNORABLE = HF_BUFFERS + [
    (re.compile(r"^[^.]+\.pooler\."), "the pooler of the bare model class, unused by the MLM and classifier"),
]

# Renames transformers applies to old folders when it loads them (conversion_mapping: TF-era LayerNorm names).
LEGACY_HF_NORMS = [("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias")]
# Renames fairseq itself applies when it loads an older checkpoint (RobertaModel.upgrade_state_dict_named).
LEGACY_RENAMES = [(re.compile(r"^decoder\."), "encoder."), (re.compile(r"\.emb_layer_norm\."), ".layernorm_embedding.")]
IGNORED_PATTERNS = [(re.compile(r"(^|\.)version$"), "fairseq bookkeeping tensor")]

# The names fairseq's load-time rules work on (sources/fairseq_state.py applies them, in fairseq's order).
# The 2019 attention layout: q, k and v fused along dim 0 (split in thirds at load).
FUSED_IN_PROJ = re.compile(r"^(?P<base>.*\.self_attn\.)in_proj_(?P<kind>weight|bias)$")
FUSED_PARTS = ("q_proj", "k_proj", "v_proj")
# --spectral-norm-classification-head: torch's spectral_norm keeps weight_orig and the power-iteration vectors u, v
# (SPECTRAL_VECTORS) beside the head's out_proj; the weight it uses is computed from them (`SPECTRAL['base']` + weight).
SPECTRAL = re.compile(r"^(?P<base>classification_heads\.[^.]+\.out_proj\.)weight_orig$")
SPECTRAL_VECTORS = ("weight_u", "weight_v")


def check_shapes(
    tensors: Mapping[str, torch.Tensor], desc: ModelDescription, where: str, names: list[str] | None = None
) -> None:
    """Every tensor (or those named) has the shape transformers builds from the description; else refuse, naming
    the option behind it. Cheap: shapes only, no transformers import."""
    dims = {"H": desc.hidden, "F": desc.ffn, "V": desc.vocab_rows, "P": desc.position_rows}
    if desc.adapters is not None:
        dims["A"] = desc.hidden // desc.adapters.reduction_factor
    for name in names if names is not None else list(tensors):
        shape = tuple(tensors[name].shape)
        for pattern, template, hint in SHAPES:
            if not pattern.search(name):
                continue
            head = _HEAD.match(name)
            sizes = dict(dims, C=desc.classification_heads.get(head.group(1), 0) if head else 0)
            want = tuple(sizes[d] for d in template)
            if shape != want:
                why = hint.format(shape[0], desc.hidden) if hint else "transformers builds it from the config"
                raise BadInput(
                    where,
                    f"cannot be represented in transformers: {name} has shape {list(shape)}, "
                    f"expected {list(want)}: {why}",
                )
            break


def _expand(fs: str, hf: str, group: str) -> list[tuple[str, str, str]]:
    if fs.endswith("."):
        return [(fs + p, hf + p, group) for p in ("weight", "bias")]
    return [(fs, hf, group)]


@dataclass(frozen=True)
class Mapped:
    fairseq: str | None  # None: synthesized by `make`
    hf: str
    group: str  # "embeddings", "layer 3", "final norm", "lm head", "classifier"
    make: Callable[[ModelDescription, torch.dtype], torch.Tensor] | None = None

    def take(self, tensor: Callable[[str], torch.Tensor], desc: ModelDescription, dtype: torch.dtype) -> torch.Tensor:
        """This row's source tensor: read from the checkpoint (`tensor`), or made by its factory in `dtype`."""
        if self.fairseq is not None:
            return tensor(self.fairseq)
        if self.make is None:
            raise ValueError(f"{self.hf}: neither a fairseq source nor a factory")
        return self.make(desc, dtype)


@dataclass
class Plan:
    mapped: list[Mapped]
    ignored: dict[str, str] = field(default_factory=dict)  # fairseq name -> why

    def hf_names(self) -> list[str]:
        return [m.hf for m in self.mapped]

    def from_file(self) -> list[Mapped]:
        """The rows with a fairseq source (not synthesized)."""
        return [m for m in self.mapped if m.fairseq is not None]


def table(desc: ModelDescription, head: str | None) -> list[Mapped]:
    """The full fairseq -> HF table for this model and output head (None = masked-LM head): the names follow the
    description's family (its base model's prefix and layout, `ModelDescription.base`/`norms`)."""
    base, layout = desc.base, desc.norms
    rows: list[tuple[str, str, str]] = []
    for fs, hf, group in top_rows(base, layout):
        rows += _expand(fs, hf, group)
    per_layer = layer_rows(layout)
    if desc.adapters is not None:
        per_layer = per_layer + [ADAPTER_NORM] * desc.adapters.layer_norm
        per_layer += [(fs.format(lang=lang), hf.format(lang=lang)) for lang in desc.adapters.languages
                      for fs, hf in ADAPTER_TABLE]  # fmt: skip
    for i in range(desc.layers):
        for fs, hf in per_layer:
            rows += _expand(f"{FS}layers.{i}.{fs}.", f"{base}.encoder.layer.{i}.{hf}.", f"layer {i}")
    kind = head_kind(head)
    if kind == "masked-lm":
        for fs, hf, group in LM_HEAD_TABLE:
            rows += _expand(fs, hf, group)
        if not desc.tied_lm_head:
            rows += UNTIED_LM_HEAD
    elif kind == "classifier":
        for fs, hf, group in CLASSIFIER_TABLE:
            rows += _expand(fs.format(head=head), hf, group)
    mapped = [Mapped(*r) for r in rows]
    made = [Mapped(None, f"{base}.{hf}", group, make) for hf, (group, make) in SYNTHESIZED.items()]
    rows_ = mapped[:2] + made + mapped[2:]  # after the token and position embeddings, as transformers orders them
    if kind == "encoder":  # the bare model's own names, as its save_pretrained writes them: no base-model prefix
        return [Mapped(m.fairseq, m.hf.removeprefix(base + "."), m.group, m.make) for m in rows_]
    return rows_


def plan(
    source_names: list[str],
    desc: ModelDescription,
    head: str | None,
    where: str,
    dropped: Mapping[str, str] | None = None,
) -> Plan:
    """Match normalized fairseq names against the table: every name mapped or ignored with a reason (`dropped`:
    what fairseq's load-time rules discard, reported as ignored)."""
    if head_kind(head) == "classifier" and head not in desc.classification_heads:
        have = ", ".join(sorted(desc.classification_heads)) or "none"
        raise BadInput(where, f"no classification head named '{head}' (heads in this checkpoint: {have})")
    rows = table(desc, head)
    wanted = {m.fairseq for m in rows if m.fairseq is not None}
    present = set(source_names)
    missing = sorted(wanted - present)
    if missing:
        raise BadInput(
            where,
            f"checkpoint lacks {len(missing)} tensor(s) the {desc.hf_family} layout needs, first: {missing[0]}",
        )
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
        raise BadInput(where, f"{len(unknown)} tensor(s) not in the {desc.hf_family} weight map, first: {unknown[0]}")
    ignored.update(dropped or {})
    return Plan(rows, ignored)


def _ignore_reason(name: str, desc: ModelDescription, head: str | None) -> str | None:
    for pattern, why in IGNORED_PATTERNS:
        if pattern.search(name):
            return why
    if name == "encoder.lm_head.weight" and desc.tied_lm_head:
        return "tied to embed_tokens (HF re-ties lm_head.decoder.weight)"
    if name.startswith("encoder.lm_head.") and head is not None:
        return f"masked-LM head, not converted when --head {head} is chosen"
    m = _HEAD.match(name)
    if m and head == ENCODER:
        return f"classification head '{m.group(1)}', not converted with --head {ENCODER} (the encoder alone)"
    m = _HEAD.match(name)
    if m and m.group(1) in desc.classification_heads and m.group(1) != head:
        return f"classification head '{m.group(1)}' not asked for"
    return None


def group_of(name: str) -> str:
    """Report group of any tensor name, fairseq's or transformers' ("layer 3", "embeddings", "lm head", ...)."""
    fs_layer = LAYER_NUMBER.match(name)
    if fs_layer:
        return f"layer {fs_layer['n']}"
    m = _HF_LAYER.search(name)
    if m:
        return f"layer {m.group(1)}"
    m = _HEAD.search(name)
    if m:
        return f"head {m.group(1)}"
    if name.startswith(("encoder.lm_head.", "lm_head.")):
        return "lm head"
    if name.startswith("classifier."):
        return "classifier"
    if name.startswith((FS + "embed", FS + "layernorm_embedding")) or _HF_EMBEDDINGS.search(name):
        return "embeddings"
    if name.startswith(FS + "layer_norm.") or _HF_FINAL_NORM.match(name):
        return "final norm"
    return "other"


def group_order(group: str) -> tuple[int, int, str]:
    """Sort key of report groups in model order: embeddings, layer 0, 1, … (numerically), final norm, heads."""
    if group.startswith("layer ") and group[6:].isdigit():
        return (1, int(group[6:]), "")
    rank = {"embeddings": 0, "final norm": 2, "lm head": 3, "classifier": 4}
    return (rank.get(group, 4 if group.startswith("head ") else 5), 0, group)


def is_bookkeeping(name: str) -> bool:
    """fairseq's `version` buffers: no weights, never compared or converted."""
    return any(pattern.search(name) for pattern, _ in IGNORED_PATTERNS)


def hf_ignorable(name: str) -> str | None:
    """Why an HF tensor outside the map is not a defect, or None."""
    return next((why for pattern, why in HF_IGNORABLE if pattern.search(name)), None)


def hf_is_buffer(name: str) -> bool:
    return any(pattern.search(name) for pattern, _ in HF_BUFFERS)


def hf_canonical_names(file_names: Iterable[str], base: str) -> dict[str, str]:
    """{name as the *For* model calls it: name in the file}. A folder saved from the bare model class (XLMRobertaModel)
    has no base-model prefix (`base`, the family's: `roberta.`) on its tensors; resolved here, once, for every
    reader of HF folders."""
    names = list(file_names)
    prefixed = any(n.startswith(base + ".") for n in names)
    return {_legacy_norm(n if prefixed or n.startswith(HF_HEADS) else f"{base}.{n}"): n for n in names}


def _legacy_norm(name: str) -> str:
    """transformers' own renames of old norm names when it loads (its conversion mapping: LayerNorm.gamma/beta)."""
    for old, new in LEGACY_HF_NORMS:
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def check_layers(names: Iterable[str], where: str, hf: bool = False) -> None:
    """The encoder's layers are numbered 0..n-1 (fairseq's names, or an HF folder's with `hf`), and a checkpoint's
    each have the tensors its layer 0 has; else BadInput naming the tensor. The layer count is read from the names,
    so one stray `layers.1000000.fc1.weight` would otherwise describe, plan and build a million-layer model. A
    folder's incomplete layer is no bad input: it is what verify and diff report as missing tensors (exit 1), as
    transformers would load it with those tensors missing."""
    pattern = _HF_LAYER_NUMBER if hf else LAYER_NUMBER
    layers: dict[int, dict[str, str]] = {}  # layer -> {what follows the number: the tensor's name}
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        if len(m["n"]) > 9:  # int() of thousands of digits raises; no model has a billion layers
            raise BadInput(where, f"{name[:100]}…: a layer number of {len(m['n'])} digits is no layer of a model")
        layers.setdefault(int(m["n"]), {})[m["head"] + "{k}" + m["tail"]] = name
    for expected, k in enumerate(sorted(layers)):
        if k != expected:
            raise BadInput(where, f"{min(layers[k].values())} is layer {k}, but there is no layer {expected}: "
                                  "an encoder's layers are numbered 0..n-1")  # fmt: skip
    for k, tensors in sorted(layers.items())[1:] if not hf else []:
        lacks = sorted(set(layers[0]) - set(tensors))
        if lacks:
            raise BadInput(where, f"layer {k} is incomplete: it has no {lacks[0].format(k=k)}, which layer 0 has")
        extra = sorted(set(tensors) - set(layers[0]))
        if extra:
            raise BadInput(
                where, f"{tensors[extra[0]]} has no counterpart in layer 0: every layer has the same tensors"
            )


def fairseq_layers(names: Iterable[str]) -> int:
    return 1 + max((int(m["n"]) for n in names if (m := LAYER_NUMBER.match(n))), default=-1)


def hf_layers(names: Iterable[str]) -> int:
    return 1 + max((int(m.group(1)) for n in names if (m := _HF_LAYER.search(n))), default=-1)


def fairseq_adapters(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """X-MOD: {language: adapter size} from layer 0's adapters, in the model's order."""
    return {m["lang"]: int(shape[0]) for n, shape in shapes.items() if (m := ADAPTER.match(n))}


def fairseq_heads(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """{classification head: classes} from the heads' out_proj shapes."""
    return {
        m.group(1): int(shape[0])
        for n, shape in shapes.items()
        if (m := _HEAD.match(n)) and n.endswith(".out_proj.weight")
    }


def head_tensors(names: Iterable[str], head: str | None = None) -> list[str]:
    """fairseq's tensors of one classification head (all heads when `head` is None)."""
    return [n for n in names if (m := _HEAD.match(n)) and head in (None, m.group(1))]


def head_of(name: str) -> str | None:
    m = _HEAD.match(name)
    return m.group(1) if m else None


def head_tensor(head: str, suffix: str) -> str:
    """fairseq's name for a head's tensor: head_tensor("mnli", "dense.weight")."""
    return f"classification_heads.{head}.{suffix}"


def hf_classifier_classes(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    shape = shapes.get(HF_HEAD_NAMES["classifier_out"])
    return int(shape[0]) if shape else None
