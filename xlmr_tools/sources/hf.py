"""A Hugging Face model folder (ours or anyone's): config.json plus safetensors (single or sharded) or a
pytorch_model.bin, read lazily and safely, with a normalized description and warnings for known traps.

Tensors are named as the *For* model names them (`mapping.weights.hf_canonical_names`: a bare-model folder's
missing base-model prefix is resolved once, here); `file_shapes` keeps the names as stored."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.io import torch_pickle
from xlmr_tools.io.safetensors import SafetensorsFile
from xlmr_tools.mapping.weights import (
    HF_NAMES,
    check_layers,
    hf_canonical_names,
    hf_classifier_classes,
    hf_is_buffer,
    hf_layers,
)
from xlmr_tools.model import (
    FAMILY_OF_MODEL_TYPE,
    POST_LN,
    PRE_LN,
    SENTENCEPIECE,
    VOCABULARY_OF_MODEL_TYPE,
    XMOD_MODEL_TYPE,
    Adapters,
    ModelDescription,
    hf_model_type,
)
from xlmr_tools.sources import values

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "special_tokens_map.json",
                   "vocab.json", "merges.txt")  # fmt: skip


@dataclass
class HFFolder:
    """A TensorSource (see sources/__init__.py) over an HF folder."""

    path: Path
    config: dict[str, Any]
    weight_files: list[Path]
    format: str  # "safetensors" or "pytorch_model.bin"
    file_shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]  # as stored in the files
    description: ModelDescription
    warnings: list[str] = field(default_factory=list)
    _files: dict[str, Any] = field(default_factory=dict, repr=False)
    _where: dict[str, Path] = field(default_factory=dict, repr=False)
    _file_name: dict[str, str] = field(default_factory=dict, repr=False)  # canonical name -> name in the file
    _lookup: Callable[[str], torch.Tensor] | None = field(default=None, repr=False)  # a folder being written

    def names(self) -> list[str]:
        return list(self._file_name)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.file_shapes[self._file_name[name]][0])

    def dtype(self, name: str) -> torch.dtype:
        return self.file_shapes[self._file_name[name]][1]

    def tensor(self, name: str) -> torch.Tensor:
        stored = self._file_name[name]
        if self._lookup is not None:
            return self._lookup(stored)
        file = self._where[stored]
        opened = self._files[str(file)]
        return opened.tensor(stored) if self.format == "safetensors" else opened[stored]

    @property
    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.weight_files)

    def tokenizer_assets(self) -> list[str]:
        return [n for n in TOKENIZER_FILES if (self.path / n).is_file()]


def open_folder(path: str | Path, *, trust: bool = False) -> HFFolder:
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "no such file or directory")
    if not path.is_dir():
        raise BadInput(path, "expected a Hugging Face model folder, got a file")
    config = _read_config(path)
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
            sd, _ = torch_pickle.load(f, trust=trust)
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise BadInput(f, "not a state dict of tensors")
            for n, t in sd.items():
                values.check_tensor(f, n, t.dtype, layout=t.layout, meta=t.is_meta, weight=not hf_is_buffer(n))
            opened[str(f)] = sd
            items = {n: (tuple(t.shape), t.dtype) for n, t in sd.items()}
        for n, s in items.items():
            shapes[n] = s
            locations[n] = f
            values.check_tensor(f, n, s[1], weight=not hf_is_buffer(n))
    if where:
        for name, fname in where.items():
            if locations.get(name) != path / fname:
                raise BadInput(path / fname, f"index lists tensor '{name}' in this shard, but it is not there")
    canonical = hf_canonical_names(shapes)
    check_layers(canonical, str(path), hf=True)
    desc, warnings = _describe(config, {name: shapes[stored] for name, stored in canonical.items()}, path)
    return HFFolder(path, config, files, fmt, shapes, desc, warnings, opened, locations, canonical)


def folder_being_written(
    path: Path, planned: dict[str, tuple[tuple[int, ...], torch.dtype]], tensor: Callable[[str], torch.Tensor]
) -> HFFolder:
    """The folder a conversion is writing, read while its shards are still being written: config.json (and the
    tokenizer) already there, the tensors as planned, each read through `tensor(name)` (which waits until the
    writer has written it). The conversion re-opens the finished folder with open_folder to prove it is the same."""
    config = _read_config(path)
    canonical = hf_canonical_names(planned)
    desc, warnings = _describe(config, {name: planned[stored] for name, stored in canonical.items()}, path)
    return HFFolder(path, config, [], "safetensors", dict(planned), desc, warnings, _file_name=canonical,
                    _lookup=tensor)  # fmt: skip


def _read_config(path: Path) -> dict[str, Any]:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise BadInput(path, "no config.json: not a Hugging Face model folder")
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also a number of > 4300 digits
        raise BadInput(cfg_path, f"not valid JSON ({str(e)[:200]})") from e
    if not isinstance(config, dict):
        raise BadInput(cfg_path, "not a JSON object")
    values.check_config(config, cfg_path)
    return config


def _weight_files(path: Path) -> tuple[list[Path], str, dict[str, str]]:
    for index_name, fmt in (
        ("model.safetensors.index.json", "safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = path / index_name
        if index.is_file():
            weight_map = _read_weight_map(index)
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


def _read_weight_map(index: Path) -> dict[str, str]:
    """A shard index's weight_map: {tensor name: shard file name}, every entry a pair of strings."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise BadInput(index, f"not a valid shard index ({str(e)[:200]})") from e
    if not isinstance(weight_map, dict):
        raise BadInput(index, f"not a valid shard index (weight_map is a {type(weight_map).__name__}, not an object)")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or Path(shard).name != shard:
            raise BadInput(
                index, f"not a valid shard index: weight_map gives tensor '{name}' the shard {values.shown(shard)}"
            )
    return weight_map


def load_tokenizer(path: Path) -> Any:
    """The folder's tokenizer as a user gets it (`AutoTokenizer.from_pretrained`); one transformers cannot load
    (a tokenizer.json that is empty, not JSON, or not a tokenizer) is bad input naming the file."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers and tokenizers raise anything for a broken file
        name = next((n for n in TOKENIZER_FILES if (path / n).is_file()), None)
        why = (str(e).strip().splitlines() or [""])[0][:160]
        raise BadInput(
            path / name if name else path,
            f"transformers cannot load the folder's tokenizer ({type(e).__name__}: {why})",
        ) from e


def _describe(
    config: dict[str, Any], shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], where: Path
) -> tuple[ModelDescription, list[str]]:
    """shapes: by canonical name."""
    has_final = HF_NAMES["final_norm"] in shapes
    has_emb_ln = HF_NAMES["embedding_norm"] in shapes
    model_type = config.get("model_type")
    warnings: list[str] = []
    adapters = _adapters(config) if model_type == XMOD_MODEL_TYPE else None
    if adapters is not None:  # X-MOD has the embedding LayerNorm in both layouts
        family = PRE_LN if has_final else POST_LN
    elif has_final and not has_emb_ln:
        family = PRE_LN
    elif has_emb_ln and not has_final:
        family = POST_LN
    elif model_type in FAMILY_OF_MODEL_TYPE:
        family = FAMILY_OF_MODEL_TYPE[model_type]
    else:
        raise BadInput(where, f"cannot tell the family: model_type {model_type!r} and no recognisable norm tensors")
    vocabulary = VOCABULARY_OF_MODEL_TYPE.get(str(model_type), SENTENCEPIECE)
    want = hf_model_type(family, vocabulary, adapters is not None)
    if adapters is None and FAMILY_OF_MODEL_TYPE.get(str(model_type)) != family:
        warnings.append(
            f"config.json says model_type '{model_type}' but the weights are the {family} layout, which "
            f"transformers loads only as '{want}': AutoModel* would build the wrong class, "
            "leave norm weights missing/unexpected and return wrong outputs without an error "
            f"(fix: set model_type to '{want}' and architectures to the XL class)"
            if family == PRE_LN
            else f"config.json says model_type '{model_type}' but the weights are the {family} layout "
            f"(expected '{want}')"
        )
    emb = shapes.get(HF_NAMES["token_embeddings"])
    pos = shapes.get(HF_NAMES["positions"])
    if emb is None or pos is None:
        raise BadInput(where, "weights have no XLM-R word/position embeddings")
    layers = hf_layers(shapes)
    ffn = shapes.get(HF_NAMES["first_ffn"])
    shape_only = {n: s for n, (s, _) in shapes.items()}
    classes = hf_classifier_classes(shape_only)
    heads = {"classifier": classes} if classes is not None else {}
    for key, value in (
        ("num_hidden_layers", layers),
        ("hidden_size", emb[0][1]),
        ("vocab_size", emb[0][0]),
        ("max_position_embeddings", pos[0][0]),
    ):
        if key in config and config[key] != value:
            warnings.append(f"config.json {key}={config[key]} but the weights say {value}")
    desc = ModelDescription(
        family=family,
        layers=layers,
        hidden=emb[0][1],
        heads=int(config.get("num_attention_heads", 0)),
        ffn=ffn[0][0] if ffn else 0,
        vocab_rows=emb[0][0],
        position_rows=pos[0][0],
        padding_idx=int(config.get("pad_token_id", 1)),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-5 if family == PRE_LN else 1e-12)),
        activation=str(config.get("hidden_act", "gelu")),
        dtype=str(emb[1]).removeprefix("torch."),
        classification_heads=heads,
        lm_head=HF_NAMES["lm_head"] in shapes,
        tied_lm_head=HF_NAMES["lm_decoder"] not in shapes and bool(config.get("tie_word_embeddings", True)),
        parameters=sum(math.prod(s) for s, _ in shapes.values()),
        vocabulary=vocabulary,
        adapters=adapters,
    )
    return desc, warnings


def _adapters(config: dict[str, Any]) -> Adapters:
    """X-MOD's adapter settings, as XmodConfig names them."""
    return Adapters(
        languages=[str(x) for x in config.get("languages", ["en_XX"])],
        reduction_factor=int(config.get("adapter_reduction_factor", 2)),
        layer_norm=bool(config.get("adapter_layer_norm", False)),
        reuse_layer_norm=bool(config.get("adapter_reuse_layer_norm", True)),
        ln_before_adapter=bool(config.get("ln_before_adapter", True)),
    )
