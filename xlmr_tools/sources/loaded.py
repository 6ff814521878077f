"""What `AutoModel*.from_pretrained(folder)` gives a user, decided by transformers' own rules without reading a tensor.

A folder's files can say one thing and load as another: config.json may select another class or turn tying off
(the decoder is then initialised randomly), name another weights file, or carry a quantization config; a PEFT adapter
beside the weights is applied on load. A verdict on a folder is a verdict on what loads, so verify, diff and
convert's own check read a folder through this view: the class the config selects, the config as transformers
parses it, the dtype it loads in by default, and for every tensor of that model where its value comes from — a
tensor of the folder (after transformers' own key renames and base-model prefix rule), another tensor it is tied to,
or nothing (initialised: the folder does not hold the model). The model is built on the meta device, so this costs
the same for XXL as for a test fixture. Which files are read is `sources.hf.select_weights`, and each file's header is
read by the safetensors library itself (`io.safetensors`); tests pin every rule by loading folders with transformers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.model import head_kind
from xlmr_tools.sources.hf import HFFolder

# The auto class a user loads each kind of folder with.
AUTO_CLASSES = {
    "masked-lm": "AutoModelForMaskedLM",
    "classifier": "AutoModelForSequenceClassification",
    "encoder": "AutoModel",
}
# The bare model class builds a pooler fairseq never had; an encoder-only folder is loaded without it
# (`AutoModel.from_pretrained(folder, add_pooling_layer=False)`, what its model card says), and judged so.
ENCODER_KWARGS = {"add_pooling_layer": False}
PEFT_ADAPTER = "adapter_config.json"  # transformers applies it on load when peft is installed


def task_of(head: str | None) -> str:
    """The auto class's kind for a head choice: None is the masked-LM head, `--head none` the encoder alone, a name a
    classifier."""
    return head_kind(head)


@dataclass
class LoadedModel:
    auto_class: str  # what a user calls: AutoModelForMaskedLM, ...
    model_class: str  # the class it builds from config.json
    config: Any  # the PretrainedConfig as AutoConfig reads config.json
    dtype: torch.dtype  # what from_pretrained loads in by default (dtype="auto")
    stored: dict[str, str] = field(default_factory=dict)  # model tensor -> the folder's tensor (name as stored)
    tied: dict[str, str] = field(default_factory=dict)  # model tensor -> the model tensor whose value it takes
    missing: list[str] = field(default_factory=list)  # model tensors transformers initialises (none in the folder)
    unexpected: list[str] = field(default_factory=list)  # folder tensors the model has no place for (ignored)
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)  # (tensor, folder, model)
    problems: list[str] = field(default_factory=list)  # anything else that makes the loaded model another one

    @property
    def ok(self) -> bool:
        """The folder loads, and loads every tensor of the model from its files."""
        return not (self.missing or self.mismatched or self.problems)

    def names(self) -> list[str]:
        return list(self.stored) + list(self.tied)

    def stored_name(self, name: str) -> str:
        """The folder's tensor behind model tensor `name` (through tying)."""
        return self.stored[self.tied.get(name, name)]

    def failures(self) -> list[str]:
        out = list(self.problems)
        if self.mismatched:
            name, have, want = self.mismatched[0]
            out.append(
                f"{len(self.mismatched)} tensor(s) of the wrong shape, so {self.auto_class}.from_pretrained raises: "
                f"{name} is {have} in the folder, {self.model_class} needs {want}"
            )
        if self.missing:
            out.append(
                f"{self.auto_class} would initialise {len(self.missing)} tensor(s) of {self.model_class} that the "
                f"folder does not give it, so its outputs are not the checkpoint's; first: {self.missing[0]}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "auto_class": self.auto_class,
            "model_class": self.model_class,
            "dtype": str(self.dtype).removeprefix("torch."),
            "tied": dict(self.tied),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [list(m) for m in self.mismatched],
            "problems": list(self.problems),
        }


def read_config(path: Path) -> Any:
    """config.json as transformers parses it (AutoConfig): BadInput where transformers cannot."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - whatever transformers raises, the folder does not load
        raise BadInput(path / "config.json", f"transformers cannot load it ({_first_line(e)})") from None


def model_class(config: Any, task: str) -> type:
    """The class `AUTO_CLASSES[task].from_pretrained` builds for this config."""
    import transformers

    auto = getattr(transformers, AUTO_CLASSES[task])
    try:
        return auto._model_mapping[type(config)]
    except KeyError:
        raise BadInput(
            None, f"{AUTO_CLASSES[task]} has no class for model_type {getattr(config, 'model_type', None)!r}"
        ) from None


def meta_model(config: Any, task: str) -> Any:
    """The model `AUTO_CLASSES[task]` builds from this config, on the meta device (no memory, no init)."""
    import transformers

    auto = getattr(transformers, AUTO_CLASSES[task])
    with torch.device("meta"):
        return auto.from_config(config, **(ENCODER_KWARGS if task == "encoder" else {}))


def load_view(folder: HFFolder, task: str) -> LoadedModel:
    """What `AUTO_CLASSES[task].from_pretrained(folder)` loads (see the module docstring)."""
    config = read_config(folder.path)
    cls = model_class(config, task)
    different = _sizes_differ(config, folder)
    if different:  # transformers would build another model; not built here (10 million layers would take minutes)
        return LoadedModel(AUTO_CLASSES[task], cls.__name__, config, _load_dtype(config, folder), problems=different)
    try:
        model = meta_model(config, task)
    except Exception as e:  # noqa: BLE001 - whatever transformers raises, the folder does not load
        raise BadInput(folder.path / "config.json", f"transformers cannot build the model ({_first_line(e)})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rename = _renamer(model, set(expected))
    view = LoadedModel(AUTO_CLASSES[task], cls.__name__, config, _load_dtype(config, folder))
    for key in sorted(folder.file_shapes, key=_natural):
        name, converted = rename(key)
        shape = tuple(folder.file_shapes[key][0])
        if name not in expected:
            view.unexpected.append(key)
        elif converted:
            view.problems.append(f"transformers transforms {key} when it loads it (a weight converter)")
        elif shape != expected[name]:
            view.mismatched.append((name, list(shape), list(expected[name])))
        elif name in view.stored:
            view.problems.append(f"two tensors of the folder load into {name}: {view.stored[name]} and {key}")
        else:
            view.stored[name] = key
    view.missing = [n for n in expected if n not in view.stored and n not in {m for m, _, _ in view.mismatched}]
    _tie(view, model.get_expanded_tied_weights_keys(all_submodels=True))
    if getattr(config, "quantization_config", None) is not None:
        view.problems.append("config.json holds a quantization_config: transformers loads the weights through a "
                             "quantizer, not as they are")  # fmt: skip
    if (folder.path / PEFT_ADAPTER).is_file():
        view.problems.append(f"{PEFT_ADAPTER} beside the weights: with peft installed, from_pretrained applies "
                             "that adapter on top of them")  # fmt: skip
    return view


def _sizes_differ(config: Any, folder: HFFolder) -> list[str]:
    """The sizes config.json gives that the weights contradict: transformers would build the model config.json
    describes, and load the folder's tensors into it where they fit."""
    d = folder.description
    weights = {"num_hidden_layers": d.layers, "hidden_size": d.hidden, "vocab_size": d.vocab_rows,
               "max_position_embeddings": d.position_rows}  # fmt: skip
    if d.ffn:
        weights["intermediate_size"] = d.ffn
    out = []
    for key, have in weights.items():
        said = getattr(config, key, None)
        if not isinstance(said, int) or isinstance(said, bool) or said != have:
            out.append(
                f"config.json says {key}={said!r} but the weights have {have}: transformers builds the model "
                "config.json describes and initialises what the folder does not give it"
            )
    return out


def _tie(view: LoadedModel, tied: dict[str, str]) -> None:
    """transformers' tying as from_pretrained applies it (PreTrainedModel.tie_weights with missing keys): a pair
    only where config.json ties (the mapping is empty otherwise); symmetric — the tensor the folder holds gives its
    value to the one it lacks; both held: each keeps its own (transformers ties them only when they are equal)."""
    missing = set(view.missing)
    pairs = list(tied.items())
    for i, (target, source) in enumerate(pairs):
        have_target, have_source = target not in missing, source not in missing
        if have_target and have_source:
            continue
        if have_target:
            target, source = source, target
        elif not have_source:  # another target of the same source may be there
            other = next((t for t, s in pairs[i + 1 :] if s == source and t not in missing), None)
            if other is None:
                continue
            source = other
        view.tied[target] = view.tied.get(source, source)
        missing.discard(target)
    view.missing = [n for n in view.missing if n in missing]


def _load_dtype(config: Any, folder: HFFolder) -> torch.dtype:
    """from_pretrained's default dtype ("auto", modeling_utils._get_dtype): config.json's dtype (or torch_dtype)
    where it gives one, else that of the first floating-point tensor of the first weights file."""
    dtype = getattr(config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if isinstance(dtype, torch.dtype):
        return dtype
    first = folder.weight_files[0] if folder.weight_files else None
    for _, (_, d) in ((n, s) for n, s in folder.file_shapes.items() if folder.file_of(n) == first):
        if d.is_floating_point:
            return d
    return torch.get_default_dtype()


def _renamer(model: Any, expected: set[str]) -> Callable[[str], tuple[str, bool]]:
    """A stored tensor name -> (the model tensor transformers loads it into, whether a weight converter acts on it),
    by transformers' own rename rules for this model (core_model_loading.rename_source_key: its legacy renames such
    as LayerNorm.gamma -> .weight, then the base-model prefix added or removed as the model needs)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    mapping = get_model_conversion_mapping(model, None, None)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    prefix = model.base_model_prefix
    meta = dict.fromkeys(expected, True)  # rename_source_key asks `meta.get(name) is not None`

    def rename(key: str) -> tuple[str, bool]:
        name, pattern = rename_source_key(key, renamings, converters, prefix, meta)
        if name not in meta and key in meta:  # as transformers: keep the key, only the prefix may change
            name, pattern = rename_source_key(key, [], [], prefix, meta)
        return name, pattern is not None

    return rename


def _natural(name: str) -> list[tuple[int, int | str]]:
    """transformers' order of a state dict's keys (core_model_loading.dot_natural_key): numbers as numbers."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"\.", name)]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
