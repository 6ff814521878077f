"""A fairseq XLM-R checkpoint: safe lazy tensors, its training args, and a normalized description."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import safe_torch_load
from .errors import BadInput
from .model_description import POST_LN, PRE_LN, ModelDescription
from .source_file import find_checkpoint_file
from .weight_map import FS, normalize_fairseq_name


@dataclass
class FairseqCheckpoint:
    path: Path
    serialization: str  # "zip" (mmap-backed tensors) or "legacy" (read into memory)
    layout: str  # "cfg" (fairseq >= 0.10) or "args" (2019 releases)
    args: dict[str, Any]  # the model's training arguments
    tensors: dict[str, torch.Tensor]  # normalized names (decoder. -> encoder., emb_layer_norm -> layernorm_embedding)
    original_names: dict[str, str]
    description: ModelDescription
    dict_path: Path | None
    spm_path: Path | None

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size


def open_checkpoint(path: str | Path, *, trust: bool = False, dict_path: str | Path | None = None,
                    spm_path: str | Path | None = None) -> FairseqCheckpoint:
    file = find_checkpoint_file(Path(path))
    obj, kind = safe_torch_load.load(file, trust=trust)
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise BadInput(file, "not a fairseq checkpoint (no 'model' state dict inside)")
    args, layout = _model_args(obj, file)
    raw = obj["model"]
    tensors: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}
    for name, t in raw.items():
        if not isinstance(t, torch.Tensor):
            raise BadInput(file, f"state dict entry '{name}' is not a tensor")
        norm = normalize_fairseq_name(name)
        tensors[norm] = t
        original[norm] = name
    desc = describe(tensors, args, file)
    return FairseqCheckpoint(
        path=file, serialization=kind, layout=layout, args=args, tensors=tensors, original_names=original,
        description=desc,
        dict_path=_asset(dict_path, file.parent / "dict.txt"),
        spm_path=_asset(spm_path, file.parent / "sentencepiece.bpe.model"),
    )


def _asset(given: str | Path | None, default: Path) -> Path | None:
    if given is not None:
        p = Path(given)
        if not p.is_file():
            raise BadInput(p, "no such file")
        return p
    return default if default.is_file() else None


def _model_args(obj: dict, file: Path) -> tuple[dict[str, Any], str]:
    cfg = obj.get("cfg")
    if isinstance(cfg, dict) and cfg.get("model") is not None:
        model = cfg["model"]
        return (vars(model) if isinstance(model, argparse.Namespace) else dict(model)), "cfg"
    if isinstance(obj.get("args"), argparse.Namespace):
        return vars(obj["args"]), "args"
    raise BadInput(file, "fairseq checkpoint has neither 'cfg' nor 'args': cannot tell its architecture")


def describe(tensors: dict[str, torch.Tensor], args: dict[str, Any], where: Path | str) -> ModelDescription:
    """Sizes from the tensors (the truth), hyper-parameters the tensors cannot tell from the args."""
    emb = tensors.get(FS + "embed_tokens.weight")
    pos = tensors.get(FS + "embed_positions.weight")
    if emb is None or pos is None or emb.dim() != 2:
        raise BadInput(where, "not an XLM-R/RoBERTa checkpoint (no sentence_encoder token/position embeddings)")
    has_final = FS + "layer_norm.weight" in tensors
    has_emb_ln = FS + "layernorm_embedding.weight" in tensors
    if has_final == has_emb_ln:
        raise BadInput(where, "unsupported layout: expected either an embedding LayerNorm (post-LN, xlmr.base/large) "
                              "or a final LayerNorm (pre-LN, xlmr.xl/xxl), found "
                              + ("both" if has_final else "neither"))
    family = PRE_LN if has_final else POST_LN
    normalize_before = bool(args.get("encoder_normalize_before", family == PRE_LN))
    if normalize_before != (family == PRE_LN):
        raise BadInput(where, f"args say encoder_normalize_before={normalize_before} but the tensors are {family}")
    layers = 1 + max((int(n.split(".")[3]) for n in tensors if n.startswith(FS + "layers.")), default=-1)
    if layers == 0:
        raise BadInput(where, "checkpoint has no encoder layers")
    fc1 = tensors.get(FS + "layers.0.fc1.weight")
    heads = args.get("encoder_attention_heads")
    if not isinstance(heads, int) or heads <= 0 or emb.shape[1] % heads:
        raise BadInput(where, f"cannot tell the attention heads from the args (encoder_attention_heads={heads!r})")
    classification = {
        n.split(".")[1]: int(t.shape[0])
        for n, t in tensors.items()
        if n.startswith("classification_heads.") and n.endswith(".out_proj.weight")
    }
    unique: dict[int, int] = {}
    for n, t in tensors.items():
        if not n.endswith("version"):
            unique[t.untyped_storage().data_ptr() + t.storage_offset() * t.element_size()] = t.numel()
    return ModelDescription(
        family=family, layers=layers, hidden=int(emb.shape[1]), heads=heads,
        ffn=int(fc1.shape[0]) if fc1 is not None else 0, vocab_rows=int(emb.shape[0]),
        position_rows=int(pos.shape[0]), padding_idx=1, layer_norm_eps=1e-5,
        activation=str(args.get("activation_fn", "gelu")), dtype=str(emb.dtype).removeprefix("torch."),
        classification_heads=classification, lm_head="encoder.lm_head.dense.weight" in tensors,
        tied_lm_head=not bool(args.get("untie_weights_roberta", False)), parameters=sum(unique.values()),
    )
