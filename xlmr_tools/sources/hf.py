"""A Hugging Face model folder (ours or anyone's): config.json plus safetensors (single or sharded) or a
pytorch_model.bin, read lazily and safely, with a normalized description and warnings for known traps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.io import torch_pickle as safe_torch_load
from xlmr_tools.errors import BadInput
from xlmr_tools.model import (
    FAMILY_OF_MODEL_TYPE,
    HF_MODEL_TYPE,
    POST_LN,
    PRE_LN,
    ModelDescription,
)
from xlmr_tools.io.safetensors import SafetensorsFile

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "special_tokens_map.json")


@dataclass
class HFFolder:
    path: Path
    config: dict[str, Any]
    weight_files: list[Path]
    format: str  # "safetensors" or "pytorch_model.bin"
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]
    description: ModelDescription
    warnings: list[str] = field(default_factory=list)
    _files: dict[str, Any] = field(default_factory=dict, repr=False)
    _where: dict[str, Path] = field(default_factory=dict, repr=False)

    def tensor(self, name: str) -> torch.Tensor:
        file = self._where[name]
        return self._files[str(file)].tensor(name) if self.format == "safetensors" else self._files[str(file)][name]

    def names(self) -> list[str]:
        return list(self.shapes)

    @property
    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.weight_files)

    def tokenizer_assets(self) -> list[str]:
        return [n for n in TOKENIZER_FILES if (self.path / n).is_file()]


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def open_folder(path: str | Path, *, trust: bool = False) -> HFFolder:
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "no such file or directory")
    if not path.is_dir():
        raise BadInput(path, "expected a Hugging Face model folder, got a file")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise BadInput(path, "no config.json: not a Hugging Face model folder")
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(cfg_path, f"not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise BadInput(cfg_path, "not a JSON object")
    files, fmt, where = _weight_files(path)
    opened: dict[str, Any] = {}
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    locations: dict[str, Path] = {}
    for f in files:
        if fmt == "safetensors":
            st = SafetensorsFile(f)
            opened[str(f)] = st
            items = {n: (i.shape, i.dtype) for n, i in st.infos.items()}
        else:
            sd, _ = safe_torch_load.load(f, trust=trust)
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise BadInput(f, "not a state dict of tensors")
            opened[str(f)] = sd
            items = {n: (tuple(t.shape), t.dtype) for n, t in sd.items()}
        for n, s in items.items():
            shapes[n] = s
            locations[n] = f
    if where:
        for name, fname in where.items():
            if locations.get(name) != path / fname:
                raise BadInput(path / fname, f"index lists tensor '{name}' in this shard, but it is not there")
    desc, warnings = _describe(config, shapes, path)
    return HFFolder(path, config, files, fmt, shapes, desc, warnings, opened, locations)


def _weight_files(path: Path) -> tuple[list[Path], str, dict[str, str]]:
    for index_name, fmt in (("model.safetensors.index.json", "safetensors"),
                            ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        index = path / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
                raise BadInput(index, f"not a valid shard index ({e})") from e
            shards = sorted(set(weight_map.values()))
            for s in shards:
                if not (path / s).is_file():
                    raise BadInput(path / s, f"shard listed in {index_name} is missing")
            return [path / s for s in shards], fmt, weight_map
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"], "safetensors", {}
    if (path / "pytorch_model.bin").is_file():
        return [path / "pytorch_model.bin"], "pytorch_model.bin", {}
    raise BadInput(path, "no weights: expected model.safetensors, a sharded index, or pytorch_model.bin")


def _describe(config: dict[str, Any], shapes: dict[str, tuple[tuple[int, ...], torch.dtype]],
              where: Path) -> tuple[ModelDescription, list[str]]:
    prefix = "roberta." if any(n.startswith("roberta.") for n in shapes) else ""
    has_final = f"{prefix}encoder.LayerNorm.weight" in shapes
    has_emb_ln = f"{prefix}embeddings.LayerNorm.weight" in shapes
    model_type = config.get("model_type")
    warnings: list[str] = []
    if has_final and not has_emb_ln:
        family = PRE_LN
    elif has_emb_ln and not has_final:
        family = POST_LN
    elif model_type in FAMILY_OF_MODEL_TYPE:
        family = FAMILY_OF_MODEL_TYPE[model_type]
    else:
        raise BadInput(where, f"cannot tell the family: model_type {model_type!r} and no recognisable norm tensors")
    if model_type != HF_MODEL_TYPE[family]:
        warnings.append(
            f"config.json says model_type '{model_type}' but the weights are the {family} layout, which "
            f"transformers loads only as '{HF_MODEL_TYPE[family]}': AutoModel* would build the wrong class, "
            "leave norm weights missing/unexpected and return wrong outputs without an error "
            f"(fix: set model_type to '{HF_MODEL_TYPE[family]}' and architectures to the XL class)"
            if family == PRE_LN else
            f"config.json says model_type '{model_type}' but the weights are the {family} layout "
            f"(expected '{HF_MODEL_TYPE[family]}')"
        )
    emb = shapes.get(f"{prefix}embeddings.word_embeddings.weight")
    pos = shapes.get(f"{prefix}embeddings.position_embeddings.weight")
    if emb is None or pos is None:
        raise BadInput(where, "weights have no XLM-R word/position embeddings")
    layers = 1 + max((int(n.split("encoder.layer.")[1].split(".")[0]) for n in shapes if "encoder.layer." in n),
                     default=-1)
    ffn = shapes.get(f"{prefix}encoder.layer.0.intermediate.dense.weight")
    heads = {}
    if "classifier.out_proj.weight" in shapes:
        heads["classifier"] = shapes["classifier.out_proj.weight"][0][0]
    for key, value in (("num_hidden_layers", layers), ("hidden_size", emb[0][1]), ("vocab_size", emb[0][0]),
                       ("max_position_embeddings", pos[0][0])):
        if key in config and config[key] != value:
            warnings.append(f"config.json {key}={config[key]} but the weights say {value}")
    desc = ModelDescription(
        family=family, layers=layers, hidden=emb[0][1], heads=int(config.get("num_attention_heads", 0)),
        ffn=ffn[0][0] if ffn else 0, vocab_rows=emb[0][0], position_rows=pos[0][0],
        padding_idx=int(config.get("pad_token_id", 1)), layer_norm_eps=float(config.get("layer_norm_eps", 1e-5 if family == PRE_LN else 1e-12)),
        activation=str(config.get("hidden_act", "gelu")), dtype=str(emb[1]).removeprefix("torch."),
        classification_heads=heads, lm_head="lm_head.dense.weight" in shapes,
        tied_lm_head="lm_head.decoder.weight" not in shapes and bool(config.get("tie_word_embeddings", True)),
        parameters=sum(_numel(s) for s, _ in shapes.values()),
    )
    return desc, warnings


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
