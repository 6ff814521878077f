"""A Hugging Face model folder (ours or anyone's): config.json plus safetensors (single or sharded) or a
pytorch_model.bin, read lazily and safely, with a normalized description and warnings for known traps.

Tensors are named as the *For* model names them (`mapping.weights.hf_canonical_names`: a bare-model folder's
missing base-model prefix is resolved once, here); `file_shapes` keeps the names as stored."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools import families
from xlmr_tools.errors import BadInput
from xlmr_tools.io import torch_pickle
from xlmr_tools.io.safetensors import SafetensorsFile
from xlmr_tools.mapping.weights import check_layers, hf_classifier_classes, hf_is_buffer, hf_layers, hf_names
from xlmr_tools.model import SENTENCEPIECE, ModelDescription
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
        return self.stored_tensor(self._file_name[name])

    def stored_tensor(self, stored: str) -> torch.Tensor:
        """A tensor by the name it has in the files (sources.loaded maps the model's names to these)."""
        if self._lookup is not None:
            return self._lookup(stored)
        file = self._where[stored]
        opened = self._files[str(file)]
        return opened.tensor(stored) if self.format == "safetensors" else opened[stored]

    def file_of(self, stored: str) -> Path | None:
        """The weights file a stored tensor is read from (None for a folder still being written)."""
        return self._where.get(stored)

    @property
    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.weight_files)

    def tokenizer_file_names(self) -> list[str]:
        """The tokenizer files the folder holds, of those AutoTokenizer reads."""
        return [n for n in TOKENIZER_FILES if (self.path / n).is_file()]


def open_folder(path: str | Path, *, trust: bool = False) -> HFFolder:
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "no such file or directory")
    if not path.is_dir():
        raise BadInput(path, "expected a Hugging Face model folder, got a file")
    config = _read_config(path)
    files, fmt, chosen = select_weights(path, config)
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
        for n, s in items.items():  # a later shard's tensor replaces an earlier one's, as transformers reads them
            shapes[n] = s
            locations[n] = f
            values.check_tensor(f, n, s[1], weight=not hf_is_buffer(n))
    check_layers(list(shapes), str(path), hf=True)  # before any count is taken from the names
    desc, warnings, canonical = _describe(config, shapes, path)
    ignored = [n for n in WEIGHT_FILES if (path / n).is_file() and path / n != chosen]
    if ignored:
        warnings.append(
            f"{', '.join(ignored)} beside {chosen.name}: transformers loads {chosen.name} and ignores "
            f"{'it' if len(ignored) == 1 else 'them'} (so does xlmr)"
        )
    return HFFolder(path, config, files, fmt, shapes, desc, warnings, opened, locations, canonical)


def folder_being_written(
    path: Path, planned: dict[str, tuple[tuple[int, ...], torch.dtype]], tensor: Callable[[str], torch.Tensor]
) -> HFFolder:
    """The folder a conversion is writing, read while its shards are still being written: config.json (and the
    tokenizer) already there, the tensors as planned, each read through `tensor(name)` (which waits until the
    writer has written it). The conversion re-opens the finished folder with open_folder to prove it is the same."""
    config = _read_config(path)
    desc, warnings, canonical = _describe(config, planned, path)
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


# The weight files transformers looks for in a local folder, in its order (modeling_utils.
# _get_resolved_checkpoint_files): the first one present is the one AutoModel*.from_pretrained reads, whatever else is
# beside it. A `transformers_weights` entry in config.json comes before all of them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
EXPLICIT_WEIGHTS = "transformers_weights"


def select_weights(path: Path, config: dict[str, Any]) -> tuple[list[Path], str, Path]:
    """(files, format, the entry chosen): the weight files `from_pretrained(path)` reads, by transformers' own rules
    — a file config.json names in `transformers_weights`, else the first of WEIGHT_FILES present; an index's shards
    as it lists them (sorted, each once). BadInput where transformers itself would refuse the folder."""
    explicit = config.get(EXPLICIT_WEIGHTS)
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit.endswith((".safetensors", ".safetensors.index.json")):
            raise BadInput(
                path / "config.json",
                f"{EXPLICIT_WEIGHTS}={values.shown(explicit)}: transformers refuses to load it (it must name a "
                "*.safetensors file or a *.safetensors.index.json inside the folder)",
            )
        chosen = path / explicit
        base = os.path.abspath(path)
        if os.path.commonpath([base, os.path.abspath(chosen)]) != base:
            raise BadInput(path / "config.json", f"{EXPLICIT_WEIGHTS}={explicit!r} lies outside the folder")
        if not chosen.is_file():
            raise BadInput(chosen, f"config.json names it as the weights ({EXPLICIT_WEIGHTS}), but it is missing")
    else:
        found = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
        if found is None:
            raise BadInput(path, "no weights: expected model.safetensors, a sharded index, or pytorch_model.bin")
        chosen = found
    fmt = "safetensors" if chosen.name.endswith((".safetensors", ".safetensors.index.json")) else "pytorch_model.bin"
    if not chosen.name.endswith(".index.json"):
        return [chosen], fmt, chosen
    return [path / s for s in _shards(chosen)], fmt, chosen


def _shards(index: Path) -> list[str]:
    """The shard files of an index as transformers reads them (utils.hub.get_checkpoint_shard_files): every value
    of its weight_map, sorted, once each; the index must hold a `metadata` entry too, or transformers fails."""
    weight_map = _read_weight_map(index)
    if "metadata" not in json.loads(index.read_text(encoding="utf-8")):
        raise BadInput(index, "shard index without a 'metadata' entry: transformers fails to load it")
    shards = sorted(set(weight_map.values()))
    for s in shards:
        if not (index.parent / s).is_file():
            raise BadInput(index.parent / s, f"shard listed in {index.name} is missing")
    return shards


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
    config: dict[str, Any], stored: dict[str, tuple[tuple[int, ...], torch.dtype]], where: Path
) -> tuple[ModelDescription, list[str], dict[str, str]]:
    """(description, warnings, {canonical name: stored name}): the family is that of the weights (families.read_hf),
    with a warning where config.json's model_type names another."""
    model_type = config.get("model_type")
    reading = families.read_hf(model_type, list(stored))
    if reading is None:
        raise BadInput(where, f"cannot tell the family: model_type {model_type!r} and no recognisable norm tensors")
    family, layout, canonical = reading.family, reading.layout, reading.canonical
    shapes = {name: stored[key] for name, key in canonical.items()}
    warnings: list[str] = []
    if reading.said is not family:
        warnings.append(
            f"config.json says model_type '{model_type}' but the weights are the {layout.family} layout, which "
            f"transformers loads only as '{family.model_type}': AutoModel* would build the wrong class, "
            "leave norm weights missing/unexpected and return wrong outputs without an error "
            f"(fix: set model_type to '{family.model_type}' and architectures to the {family.prefix} class)"
        )
    names = hf_names(family.base, layout)
    emb = shapes.get(names["token_embeddings"])
    pos = shapes.get(names["positions"])
    if emb is None or pos is None:
        raise BadInput(where, "weights have no XLM-R word/position embeddings")
    layers = hf_layers(shapes)
    ffn = shapes.get(names["first_ffn"])
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
        family=layout.family,
        layers=layers,
        hidden=emb[0][1],
        heads=int(config.get("num_attention_heads", 0)),
        ffn=ffn[0][0] if ffn else 0,
        vocab_rows=emb[0][0],
        position_rows=pos[0][0],
        padding_idx=int(config.get("pad_token_id", 1)),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-5 if layout.pre_norm else 1e-12)),
        activation=str(config.get("hidden_act", "gelu")),
        dtype=str(emb[1]).removeprefix("torch."),
        classification_heads=heads,
        lm_head=names["lm_head"] in shapes,
        tied_lm_head=names["lm_decoder"] not in shapes and bool(config.get("tie_word_embeddings", True)),
        parameters=sum(math.prod(s) for s, _ in shapes.values()),
        vocabulary=next(iter(family.vocabularies)) if len(family.vocabularies) == 1 else SENTENCEPIECE,
        adapters=family.hf_adapters(config),
        hf_family=family.name,
        hf_model_type=family.model_type,
        class_prefix=family.prefix,
        base=family.base,
        layout=layout,
        release=family.releases.get((layers, emb[0][1])),
    )
    return desc, warnings, canonical
