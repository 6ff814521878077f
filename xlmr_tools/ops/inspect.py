"""What a checkpoint or HF folder is, without reading tensor data (zip checkpoints and safetensors are mmapped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlmr_tools.errors import BadInput
from xlmr_tools.mapping import tokenizer, weights
from xlmr_tools.mapping.config import ACTIVATIONS, choose_head, model_class_name, problems, read_labels
from xlmr_tools.model import CAMEMBERT, ENCODER, GPT2, SENTENCEPIECE, ModelDescription
from xlmr_tools.settings import HubAccess
from xlmr_tools.sources import hub
from xlmr_tools.sources.fairseq import open_checkpoint, training_of
from xlmr_tools.sources.hf import HFFolder, open_folder
from xlmr_tools.sources.locate import checkpoint_choices, is_hf_folder

FAIRSEQ_FLAGS = (
    "arch",
    "encoder_normalize_before",
    "layernorm_embedding",
    "untie_weights_roberta",
    "activation_fn",
    "pooler_activation_fn",
    "max_positions",
    "encoder_layerdrop",
    "encoder_layers_to_keep",
    "no_scale_embedding",
    "encoder_learned_pos",
    "no_token_positional_embeddings",
    "spectral_norm_classification_head",
    "quant_noise_pq",
)


@dataclass
class InspectReport:
    path: str
    kind: str  # "fairseq" or "hf"
    format: str  # "fairseq zip", "fairseq legacy", "safetensors", "pytorch_model.bin"
    description: dict[str, Any]
    file_bytes: int
    details: dict[str, Any] = field(default_factory=dict)  # keys are identifiers (the CLI shows them with spaces)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what needs the user: a refusal, a flag, a trap
    tensors: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)  # what convert handles by itself, worth knowing

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _default_head(desc: ModelDescription, where: str) -> str | None:
    """The head convert takes without --head (mapping.config.choose_head: the encoder alone where the checkpoint
    has no head at all); where it would ask for one (classification heads, no masked-LM head), the masked-LM
    class is shown, each head's class being in the heads' rows."""
    try:
        return choose_head(desc, None, where)
    except BadInput:
        return None


def _tokenizer_notes(al: tokenizer.Alignment) -> tuple[list[str], list[str]]:
    """What a user should know about how dict.txt indexes the subword model: (notes, warnings) — notes for what
    convert handles, warnings for what needs a flag."""
    notes: list[str] = []
    warnings: list[str] = []
    model = "GPT-2 BPE" if al.vocabulary == GPT2 else "sentencepiece"
    if al.raw and al.lookup:
        shown = ", ".join(repr(s) for s in al.raw[:5]) + (", …" if len(al.raw) > 5 else "")
        notes.append(
            f"dict.txt holds {len(al.raw)} symbols that are no {model} piece ({shown}): what sentencepiece emits as "
            "it is for characters its model does not cover, which fairseq gives ids of their own; xlmr convert "
            f"writes a {al.tokenizer_class} (sentencepiece, then dict.txt looked up, as fairseq does)"
        )
    if al.traits and al.lookup:
        notes.append(
            f"the sentencepiece model was trained with {al.traits_summary()}, which a tokenizer.json does not "
            f"reproduce; xlmr convert writes a {al.tokenizer_class} (sentencepiece itself segments, dict.txt gives "
            "the ids)"
        )
    if al.fillers:
        notes.append(
            f"dict.txt holds {al.fillers} symbols that are no {model} piece (padding fillers): fairseq's <mask> is "
            f"row {al.mask_id}" + (f", not {al.pieces + 1} as a tokenizer built from the sentencepiece model alone "
            "would say" if al.vocabulary == SENTENCEPIECE else "") + " (xlmr convert handles this)"
        )  # fmt: skip
    if al.order == "dictionary":
        notes.append(
            f"dict.txt is not in {model} order (a pretraining's own dictionary): fairseq's ids are not the "
            "subword model's; xlmr convert writes a tokenizer in fairseq's id order"
        )
    if al.vocabulary == CAMEMBERT:
        notes.append(
            "dict.txt lists the model's own " + ", ".join(n for n in ("<unk>", "<s>", "</s>") if al.specials[n] > 3)
            + " (#fairseq:overwrite): fairseq encodes them as "
            + ", ".join(f"{k}={v}" for k, v in al.specials.items())
            + "; xlmr convert writes a CamemBERT "
            "tokenizer with those ids"
        )  # fmt: skip
    if al.missing and al.lookup:
        notes.append(
            f"dict.txt lacks {al.missing_summary()}: fairseq maps them to <unk> after segmenting; xlmr convert "
            f"writes a {al.tokenizer_class}, which does the same"
        )
    if al.inexact:
        warnings.append(f"dict.txt {al.inexact} (convert needs --accept-missing-pieces)")
    return notes, warnings


def _converts_to(desc: ModelDescription, args: dict[str, Any], default: str | None, tokenizer_named: str) -> str:
    """What `convert` writes with default flags: the classes, or nothing where it refuses (the warnings say why),
    naming what `--head none` writes where the encoder alone converts."""
    if not problems(desc, args, default):
        return f"{model_class_name(desc, default)} + {tokenizer_named}"
    if not problems(desc, args, ENCODER):
        return f"nothing by default (see the warnings); --head {ENCODER}: {model_class_name(desc, ENCODER)} + " + (
            tokenizer_named
        )
    return "nothing: convert refuses this model (see the warnings)"


def inspect_path(
    path: str | Path, *, trust: bool = False, with_tensors: bool = False, hub_access: HubAccess = HubAccess()
) -> InspectReport:
    """`path`: a fairseq checkpoint or folder, an HF folder, or a Hugging Face repo id (fetched as `hub_access`
    says)."""
    path = hub.local(path, hub_access)
    if is_hf_folder(path):
        return _inspect_hf(open_folder(path, trust=trust), with_tensors)
    if path.is_dir() and any(path.glob("*.safetensors")):
        raise BadInput(path, "no config.json: not a Hugging Face model folder")
    choices = checkpoint_choices(path)
    ckpt = open_checkpoint(choices[0] if choices else path, trust=trust)
    desc = ckpt.description
    warnings: list[str] = []
    notes: list[str] = []
    if choices:
        warnings.append(
            f"{choices[0].parent} holds {len(choices)} checkpoints: convert, verify and diff take the one named "
            f"(this describes {choices[0].name}, the first listed under checkpoints)"
        )
    tok: dict[str, Any] = {"dict.txt": str(ckpt.dict_path) if ckpt.dict_path else None}
    try:
        _, files = ckpt.tokenizer_files()
        tok.update({name: str(path) for name, path in files.items()})
        al = ckpt.alignment()
        tok.update(al.to_dict())
        found = _tokenizer_notes(al)
        notes += found[0]
        warnings += found[1]
    except BadInput as e:
        warnings.append(f"tokenizer: {e}")
    default = _default_head(desc, str(ckpt.path))
    for problem in problems(desc, ckpt.args, default):
        warnings.append(
            f"convert refuses this model: {problem}" if problem.startswith("cannot") else f"masked-LM head: {problem}"
        )
    for head in desc.classification_heads:
        warnings += [
            f"head {head}: {p}" for p in problems(desc, ckpt.args, head) if p not in problems(desc, ckpt.args, default)
        ]
        try:
            weights.check_shapes(ckpt.tensors, desc, "", weights.head_tensors(ckpt.names(), head))
        except BadInput as e:
            warnings.append(f"head {head}: {e.problem}")
    if ckpt.pruned_layers:
        notes.append(
            f"encoder_layers_to_keep={ckpt.args.get('encoder_layers_to_keep')}: the file holds "
            f"{desc.layers + len(ckpt.pruned_layers)} layers; fairseq drops layers "
            f"{', '.join(map(str, ckpt.pruned_layers))} at load time and renumbers the rest, and "
            f"so does convert ({desc.layers} layers)"
        )
    if ckpt.serialization == "legacy":
        notes.append("legacy (pre-zip) torch serialization: tensors cannot be memory-mapped and are read into memory")
    details: dict[str, Any] = {
        "serialization": ckpt.serialization,
        "layout": ckpt.layout,
        "fairseq": {k: ckpt.args.get(k) for k in FAIRSEQ_FLAGS if k in ckpt.args},
    }
    tokenizer_class = tok.get("tokenizer_class") or tokenizer.TOKENIZER_CLASS[desc.vocabulary]
    details["converts_to"] = _converts_to(desc, ckpt.args, default, f"{tokenizer_class} ({desc.vocabulary} vocabulary)")
    if desc.activation in ACTIVATIONS:
        details["hidden_act"] = ACTIVATIONS[desc.activation]
    if ckpt.task:
        details["task"] = ckpt.task
    if ckpt.ema_kept:
        decay = f", decay {ckpt.ema_decay:g}" if ckpt.ema_decay is not None else ""
        details["ema_weights"] = f"kept (--store-ema{decay}): convert/verify --ema use them instead of the live ones"
    if ckpt.pruned_layers:
        details["layers_in_file"] = desc.layers + len(ckpt.pruned_layers)
    if desc.adapters is not None:
        details["languages"] = list(desc.adapters.languages)
    labels: dict[str, list[str]] = {}
    for head in desc.classification_heads:
        labels_file = ckpt.labels_file(head)
        if labels_file is not None:
            try:
                labels[head] = read_labels(labels_file, desc.classification_heads[head])
            except BadInput as e:
                warnings.append(f"labels: {e}")
    if labels:
        details["labels"] = labels
    if ckpt.training:
        details["training"] = _progress(ckpt.training)
    if choices:
        details["checkpoints"] = {
            c.name: _progress(ckpt.training if c == ckpt.path else training_of(c, trust=trust)) for c in choices
        }
    return InspectReport(
        path=str(ckpt.path),
        kind="fairseq",
        format=f"fairseq {ckpt.serialization}",
        description=desc.to_dict(),
        file_bytes=ckpt.file_bytes,
        details=details,
        tokenizer=tok,
        warnings=warnings,
        tensors=[_row(n, tuple(t.shape), t.dtype) for n, t in ckpt.raw.items()] if with_tensors else None,
        notes=notes,
    )


def _progress(training: dict[str, float]) -> str:
    """A checkpoint's training progress in a few words: "epoch 1, 10 updates, val_loss 9.99"."""
    shown = {"epoch": "epoch {:g}", "updates": "{:g} updates", "val_loss": "val_loss {:.4g}"}
    return ", ".join(shown[k].format(v) for k, v in training.items()) or "no training progress recorded"


def _inspect_hf(folder: HFFolder, with_tensors: bool) -> InspectReport:
    cfg = folder.config
    details = {
        "model_type": cfg.get("model_type"),
        "architectures": cfg.get("architectures"),
        "weight_files": [p.name for p in folder.weight_files],
        "config_dtype": cfg.get("dtype", cfg.get("torch_dtype")),
    }
    if folder.description.adapters is not None:
        details["languages"] = list(folder.description.adapters.languages)
    return InspectReport(
        path=str(folder.path),
        kind="hf",
        format=folder.format,
        description=folder.description.to_dict(),
        file_bytes=folder.file_bytes,
        details=details,
        tokenizer={"files": folder.tokenizer_file_names()},
        warnings=list(folder.warnings),
        tensors=[_row(n, s, d) for n, (s, d) in folder.file_shapes.items()] if with_tensors else None,
    )


def _row(name: str, shape: tuple[int, ...], dtype: Any) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}
