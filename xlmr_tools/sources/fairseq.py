"""A fairseq XLM-R checkpoint: safe lazy tensors, its training args, and a normalized description."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlmr_tools import families
from xlmr_tools.errors import BadInput, XlmrError
from xlmr_tools.io import torch_pickle
from xlmr_tools.io.opened import OpenedFile
from xlmr_tools.mapping import tokenizer
from xlmr_tools.mapping.weights import (
    FAIRSEQ_NAMES,
    fairseq_adapters,
    fairseq_heads,
    fairseq_layers,
    is_bookkeeping,
)
from xlmr_tools.model import GPT2, POST_LN, PRE_LN, SENTENCEPIECE, Adapters, ModelDescription, head_kind
from xlmr_tools.settings import Assets
from xlmr_tools.sources import locate, values
from xlmr_tools.sources.fairseq_state import FairseqState, normalize_fairseq_name, normalize_fairseq_state
from xlmr_tools.sources.locate import find_checkpoint_file


@dataclass
class FairseqCheckpoint:
    """A TensorSource (see sources/__init__.py) over a fairseq checkpoint: tensors under fairseq's load-time names."""

    path: Path
    serialization: str  # "zip" (mmap-backed tensors) or "legacy" (read into memory)
    layout: str  # "cfg" (fairseq >= 0.10) or "args" (2019 releases)
    args: dict[str, Any]  # the model's training arguments
    tensors: dict[str, torch.Tensor]  # under the names fairseq's loaded model uses (sources.fairseq_state)
    description: ModelDescription
    dict_path: Path | None
    spm_path: Path | None  # as given (--spm) or found beside the checkpoint
    raw: dict[str, torch.Tensor] = field(default_factory=dict)  # the file's state dict as stored (fairseq's input)
    derived: set[str] = field(default_factory=set)  # tensors computed at load (no bytes in the file to copy)
    dropped: dict[str, str] = field(default_factory=dict)  # file tensors fairseq discards at load, and why
    pruned_layers: tuple[int, ...] = ()
    task: str | None = None  # the training task (masked_lm, sentence_prediction, ...)
    task_head: str | None = None  # the classification head a sentence_prediction task trained
    task_regression: bool = False  # the task trained that head as a regression (--regression-target)
    labels_path: Path | None = None  # the label dictionary fairseq's sentence_prediction task reads
    labels_given: bool = False  # named by the user (--labels) rather than found where fairseq puts it
    given_files: dict[str, Path | None] = field(default_factory=dict)  # subword-model files named by flags
    bpe: dict[str, Any] = field(default_factory=dict)  # the BPE's settings as the checkpoint records them
    dict_symbols: list[str] | None = None  # dict.txt as read when opened (None: unreadable, reported when aligned)
    opened: OpenedFile | None = None  # the checkpoint as opened: every later read of its bytes goes through it
    ema: bool = False  # the weights are the EMA model's (extra_state["ema"]), not the live ones
    ema_kept: bool = False  # the file keeps EMA weights (--store-ema)
    ema_decay: float | None = None
    training: dict[str, float] = field(default_factory=dict)  # epoch, updates, val_loss, as training recorded them

    @property
    def readable(self) -> Path:
        """A path to the very file that was loaded (io/opened.py), for readers of its bytes (the writer's copy, zip
        offsets): the path itself may name another file by now."""
        return self.opened.readable if self.opened is not None else self.path

    def tokenizer_files(self) -> tuple[Path, dict[str, Path]]:
        """dict.txt and the subword model's files its vocabulary needs (BadInput naming what is missing)."""
        if self.dict_path is None:
            raise BadInput(self.folder, "dict.txt is needed beside the checkpoint (or name it with --dict)")
        given = {"sentencepiece.bpe.model": self.spm_path, **self.given_files}
        names = families.of(self.description).tokenizer_files
        return self.dict_path, tokenizer.model_files(self.description.vocabulary, self.folder, given, names)

    def alignment(self) -> tokenizer.Alignment:
        """dict.txt against the subword model and the embedding, for the tokenizer of this checkpoint's family."""
        dict_path, files = self.tokenizer_files()
        d = self.description
        honours = families.of(d).autotokenizer_honours_class
        prefix_space = self.bpe.get("bpe_add_prefix_space") is True  # fairseq's hf_byte_bpe setting
        return tokenizer.align(
            dict_path, files, d.vocab_rows, self.dict_symbols, d.hf_model_type, honours, prefix_space
        )

    def labels_file(self, head: str | None) -> Path | None:
        """The label dictionary for this head: the one given, or the one found for the head its task trained."""
        if head_kind(head) != "classifier" or self.labels_path is None:
            return None
        return self.labels_path if self.labels_given or self.task_head in (None, head) else None

    def regression(self, head: str | None) -> bool:
        """Whether this head predicts a value, not classes: the head its sentence_prediction task trained with
        --regression-target (fairseq applies nothing to its output; transformers' text-classification pipeline
        applies a sigmoid to a one-label head unless config.json says problem_type "regression")."""
        return self.task_regression and head is not None and head == self.task_head

    def inputs(self) -> list[Path]:
        """Every file a conversion of this checkpoint reads: the checkpoint, dict.txt, the subword model's files
        and the label dictionary, as found or given."""
        found = [self.path, self.dict_path, self.spm_path, *self.given_files.values(), self.labels_path]
        return [p for p in found if p is not None]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        return self.tensors[name].dtype

    def tensor(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    @property
    def file_bytes(self) -> int:
        return self.opened.size if self.opened is not None else self.path.stat().st_size


def open_checkpoint(
    path: str | Path, *, trust: bool = False, assets: Assets = Assets(), ema: bool = False
) -> FairseqCheckpoint:
    """`assets`: the files the user named (dict.txt, the subword model's, the label dictionary), each else found
    where fairseq finds it. `ema`: the weights of the exponential moving average a `--store-ema` training keeps
    beside the live ones (extra_state["ema"], the model fairseq's own `save_ema_as_checkpoint` exports), instead of
    the live ones."""
    file = find_checkpoint_file(Path(path))
    opened = OpenedFile(file)  # loaded, copied and hashed through this one opening, whatever the path names later
    try:
        obj, kind = torch_pickle.load(opened.readable, trust=trust)
    except XlmrError as e:
        raise e.naming(file) from e.__cause__
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise BadInput(file, "not a fairseq checkpoint (no 'model' state dict inside)")
    args, layout, task, task_head, task_regression = _model_args(obj, file)
    values.check_fairseq_args(args, file)
    kept = _ema_of(obj)
    raw = obj["model"]
    if ema:
        if kept is None:
            raise BadInput(file, "holds no EMA weights (extra_state['ema']): the training did not use --store-ema")
        raw = kept
    # Entries that are no tensor (data2vec keeps its EMA teacher as a nested dict) are set aside: the family says
    # below whether it leaves them out, else they are refused.
    others = [name for name, t in raw.items() if not isinstance(t, torch.Tensor)]
    raw = {name: t for name, t in raw.items() if isinstance(t, torch.Tensor)}
    for name, t in raw.items():
        values.check_tensor(file, name, t.dtype, layout=t.layout, meta=t.is_meta, weight=not is_bookkeeping(name))
    state = normalize_fairseq_state(raw, args, str(file))
    data, bpe = _recorded(obj, file)
    places = locate.asset_folders(file, data)
    dictionary = _asset(assets.dict_path) or locate.find_asset(places, "dict.txt", "input0/dict.txt")
    symbols = None
    vocabulary = SENTENCEPIECE
    if dictionary is not None:
        # a bad dict.txt is reported where it is read for the tokenizer (inspect warns, convert refuses)
        with contextlib.suppress(BadInput):
            symbols = tokenizer.read_dict(dictionary)
            vocabulary = tokenizer.vocabulary_of(symbols)
    desc = describe(state.tensors, args, file, vocabulary, bpe.get("_name") or bpe.get("bpe"), locate.names(places))
    family = families.of(desc)
    _leave_out(family, state, others, file)
    args = family.model_args(args)
    gpt2 = desc.vocabulary == GPT2

    def subword_file(usual: str, given: str | Path | None) -> Path | None:
        """A byte-level BPE's file: given, else as the checkpoint records it, else under the family's name for it
        (Family.tokenizer_files) near the checkpoint, or in a gpt2_bpe/ folder as RoBERTa's README lays it out."""
        if given is not None or not gpt2:
            return _asset(given)
        called = family.tokenizer_files.get(usual, usual)
        recorded = next((bpe[k] for k in RECORDED_FILES[usual] if isinstance(bpe.get(k), str)), None)
        return locate.find_recorded(places, recorded) or locate.find_asset(places, called, f"gpt2_bpe/{called}")

    given_bpe = {"encoder.json": assets.encoder_json, "vocab.bpe": assets.vocab_bpe}
    found_files = {usual: subword_file(usual, given) for usual, given in given_bpe.items()}
    spm = _asset(assets.spm_path) or (
        None if gpt2 else locate.find_sentencepiece(places, bpe.get("sentencepiece_model"))
    )
    return FairseqCheckpoint(
        path=file,
        serialization=kind,
        layout=layout,
        args=args,
        tensors=state.tensors,
        description=desc,
        dict_path=dictionary,
        spm_path=spm,
        raw=dict(raw),
        derived=state.derived,
        dropped=state.dropped,
        pruned_layers=state.pruned_layers,
        task=task,
        task_head=task_head,
        task_regression=task_regression,
        labels_path=_asset(assets.labels) or locate.find_asset(places, "label/dict.txt")
        if task == "sentence_prediction" or assets.labels is not None
        else None,
        labels_given=assets.labels is not None,
        given_files=found_files,
        bpe=bpe,
        dict_symbols=symbols,
        opened=opened,
        ema=ema,
        ema_kept=kept is not None,
        ema_decay=_ema_decay(obj, file),
        training=training_progress(obj),
    )


def _leave_out(family: families.Family, state: FairseqState, others: list[str], file: Path) -> None:
    """Take what the family does not convert (`Family.ignored`: tensors and entries that are no tensor) out of the
    state, each reported as ignored with the family's reason (`state.dropped`); an entry that is no tensor and that
    the family does not leave out is refused."""
    for name in others:
        why = family.ignored(normalize_fairseq_name(name))
        if why is None:
            raise BadInput(file, f"state dict entry '{name}' is not a tensor")
        state.dropped[name] = why
    for key in list(state.tensors):
        why = family.ignored(key)
        if why is not None:
            del state.tensors[key]
            state.dropped[state.origin.pop(key)] = why


def _asset(given: str | Path | None) -> Path | None:
    """A file the user named: it must exist."""
    if given is None:
        return None
    p = Path(given)
    if not p.is_file():
        raise BadInput(p, "no such file")
    return p


def _ema_of(obj: dict) -> dict[str, Any] | None:
    """The EMA model's state dict a `--store-ema` training keeps in extra_state["ema"], if any."""
    extra = obj.get("extra_state")
    kept = extra.get("ema") if isinstance(extra, dict) else None
    return kept if isinstance(kept, dict) and kept else None


def training_of(path: Path, *, trust: bool = False) -> dict[str, float]:
    """A checkpoint file's `training_progress`, read as every checkpoint is (no tensor data is read)."""
    try:
        obj, _ = torch_pickle.load(path, trust=trust)
    except XlmrError as e:
        raise e.naming(path) from e.__cause__
    return training_progress(obj)


def training_progress(obj: Any) -> dict[str, float]:
    """How far training had got when a checkpoint was saved, as fairseq's Trainer records it: the epoch
    (extra_state's train_iterator), the updates (the last optimizer_history entry) and the validation loss; what is
    not recorded (or not a number) is left out."""
    if not isinstance(obj, dict):
        return {}
    extra = obj.get("extra_state")
    extra = extra if isinstance(extra, dict) else {}
    iterator = extra.get("train_iterator")
    iterator = iterator if isinstance(iterator, dict) else {}
    history = obj.get("optimizer_history")
    last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
    found = {"epoch": iterator.get("epoch"), "updates": last.get("num_updates"), "val_loss": extra.get("val_loss")}
    return {k: v for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _ema_decay(obj: dict, file: Path) -> float | None:
    cfg = _as_dict(obj.get("cfg"), file) or {}
    decay = (_as_dict(cfg.get("ema"), file) or {}).get("ema_decay")
    return float(decay) if isinstance(decay, (int, float)) and not isinstance(decay, bool) else None


# The settings in which fairseq's byte-level BPEs record their files (gpt2: GPT2BPEConfig; hf_byte_bpe:
# HuggingFaceByteLevelBPEConfig), by the MODEL_FILES name of the file.
RECORDED_FILES = {"encoder.json": ("gpt2_encoder_json", "bpe_vocab"), "vocab.bpe": ("gpt2_vocab_bpe", "bpe_merges")}


def _recorded(obj: dict, file: Path) -> tuple[str | None, dict[str, Any]]:
    """(the data folder training read, the BPE's settings: strings and flags) as the checkpoint records them
    (sources.locate finds the dictionary and subword model through them)."""
    cfg = _as_dict(obj.get("cfg"), file)
    if cfg is not None:
        task = _as_dict(cfg.get("task"), file) or {}
        bpe = _as_dict(cfg.get("bpe"), file) or {}
        data = task.get("data")
    else:
        args = vars(obj["args"]) if isinstance(obj.get("args"), argparse.Namespace) else {}
        bpe, data = args, args.get("data")
    return (data if isinstance(data, str) else None), {k: v for k, v in bpe.items() if isinstance(v, (str, bool))}


def _plain(value: Any, file: Path) -> Any:
    """An omegaconf DictConfig (fairseq 0.10 pickled its cfg as one) as plain Python containers: read through
    inert stand-ins by default, or the real class with --trust-checkpoint."""
    if isinstance(value, torch_pickle.ConfigStandIn):
        return torch_pickle.config_to_plain(value, file)
    if type(value).__module__.startswith("omegaconf."):
        from omegaconf import OmegaConf

        try:
            try:
                return OmegaConf.to_container(value, resolve=True)
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 - an interpolation that no longer resolves: take the raw values
                return OmegaConf.to_container(value, resolve=False)
        except RecursionError as e:
            raise BadInput(file, "the checkpoint's config contains itself or nests too deep to read") from e
    return value


def _as_dict(value: Any, file: Path) -> dict[str, Any] | None:
    value = _plain(value, file)
    if isinstance(value, argparse.Namespace):
        return vars(value)
    if isinstance(value, Mapping):
        return dict(value)
    return None


def _model_args(obj: dict, file: Path) -> tuple[dict[str, Any], str, str | None, str | None, bool]:
    """(model args, layout, training task, the task's classification head, whether it trained it as a regression)."""
    cfg = _as_dict(obj.get("cfg"), file)
    if cfg is not None and cfg.get("model") is not None:
        model = _as_dict(cfg["model"], file)
        if model is None:
            raise BadInput(file, f"cfg['model'] is a {type(cfg['model']).__name__}, not the model's arguments")
        if "arch" not in model and "_name" in model:  # a hydra model config names its architecture `_name`
            model["arch"] = model["_name"]
        task_cfg = _as_dict(cfg.get("task"), file) or {}
        criterion = _as_dict(cfg.get("criterion"), file) or {}
        task = task_cfg.get("_name") or model.get("task")
        head = (
            task_cfg.get("classification_head_name")
            or criterion.get("classification_head_name")
            or model.get("classification_head_name")
        )
        sentence = task == "sentence_prediction"
        return model, "cfg", task, head if sentence else None, sentence and task_cfg.get("regression_target") is True
    if isinstance(obj.get("args"), argparse.Namespace):
        args = vars(obj["args"])
        task = args.get("task")
        head = args.get("classification_head_name", "sentence_classification_head")
        sentence = task == "sentence_prediction"
        return args, "args", task, head if sentence else None, sentence and args.get("regression_target") is True
    found = sorted(k for k in obj if k != "model")
    raise BadInput(
        file,
        "fairseq checkpoint has neither a 'cfg' with the model's arguments nor 'args' "
        f"(top-level keys besides 'model': {', '.join(found) or 'none'}): cannot tell its "
        "architecture",
    )


# fairseq architectures by family, for a refusal that names what a checkpoint is (arch prefix -> what it is)
OTHER_FAMILIES = [
    ("bart", "a BART model (encoder-decoder): not a RoBERTa-family encoder"),
    ("mbart", "an mBART model (encoder-decoder): not a RoBERTa-family encoder"),
    ("transformer_lm", "a transformer language model (decoder only): not a RoBERTa-family encoder"),
    ("transformer", "a translation transformer (encoder-decoder): not a RoBERTa-family encoder"),
    ("wav2vec", "a wav2vec speech model: not a RoBERTa-family encoder"),
    ("hubert", "a HuBERT speech model: not a RoBERTa-family encoder"),
    ("data2vec", "a data2vec model: not supported yet"),
]


def _not_roberta(args: dict[str, Any]) -> str:
    """Why a checkpoint is no XLM-R/RoBERTa encoder, naming its fairseq architecture where the args tell it."""
    arch = str(args.get("arch") or args.get("_name") or "")
    for prefix, what in OTHER_FAMILIES:
        if arch.startswith(prefix):
            return f"a fairseq '{arch}' checkpoint, {what}; xlmr converts fairseq's roberta / xlmr architectures"
    named = f"a fairseq '{arch}' checkpoint" if arch else "not an XLM-R/RoBERTa checkpoint"
    return f"{named}: no {FAIRSEQ_NAMES['token_embeddings']} and no encoder layers"


def describe(
    tensors: dict[str, torch.Tensor],
    args: dict[str, Any],
    where: Path | str,
    vocabulary: str = SENTENCEPIECE,
    bpe: str | None = None,
    files: frozenset[str] = frozenset(),
) -> ModelDescription:
    """Sizes from the tensors (the truth), hyper-parameters the tensors cannot tell from the args, the family from
    both (families.detect). What transformers cannot reproduce is listed in `unsupported`, each naming the fairseq
    option; a checkpoint no family takes is described as the nearest one with the reason among them."""
    emb = tensors.get(FAIRSEQ_NAMES["token_embeddings"])
    pos = tensors.get(FAIRSEQ_NAMES["positions"])
    if emb is None or emb.dim() != 2 or fairseq_layers(tensors) == 0:
        raise BadInput(where, _not_roberta(args))
    unsupported: list[str] = []
    has_final = FAIRSEQ_NAMES["final_norm"] in tensors
    adapters = _adapters(tensors, args, int(emb.shape[1]), unsupported)
    evidence = families.Evidence(
        arch=str(args.get("arch") or args.get("_name") or ""),
        embedding_norm=FAIRSEQ_NAMES["embedding_norm"] in tensors,
        final_norm=has_final,
        normalize_before=bool(args.get("encoder_normalize_before", has_final)),
        adapters=adapters is not None,
        vocabulary=vocabulary,
        bpe=bpe,
        files=files,
    )
    family = families.detect(evidence)
    claimed = family is not None
    if family is None:
        unsupported.append(families.unclaimed(evidence))
        family = families.nearest(evidence)
    args = family.model_args(args)
    values.check_fairseq_args(args, Path(where))  # the family's flattened arguments, read from here on
    padding_idx = 1
    classes = f"transformers' {family.prefix}*"  # the classes the refusals below are about
    if pos is None:
        if args.get("no_token_positional_embeddings"):
            unsupported.append(
                f"no positional embeddings (no_token_positional_embeddings=True): {classes} always adds learned "
                "absolute positions"
            )
        elif args.get("encoder_learned_pos") is False or FAIRSEQ_NAMES["sinusoidal_positions"] in tensors:
            unsupported.append(
                f"sinusoidal positions (encoder_learned_pos=False): {classes} has only learned absolute positions"
            )
        else:
            unsupported.append(f"no position embeddings ({FAIRSEQ_NAMES['positions']})")
    else:
        max_positions = args.get("max_positions")
        if isinstance(max_positions, int) and pos.shape[0] != max_positions + padding_idx + 1:
            unsupported.append(
                f"embed_positions has {pos.shape[0]} rows but max_positions={max_positions} needs "
                f"{max_positions + padding_idx + 1} (max_positions + padding_idx + 1); fairseq "
                "itself cannot load this checkpoint"
            )
    if args.get("no_scale_embedding") is False:
        unsupported.append(
            f"embeddings scaled by sqrt(hidden) (no_scale_embedding=False): {classes} does not scale them"
        )
    if FAIRSEQ_NAMES["quant_noise"] in tensors or (
        float(args.get("quant_noise_pq") or 0) > 0 and not args.get("adaptive_input")
    ):
        unsupported.append(
            f"quant_noise_pq={args.get('quant_noise_pq')} adds a linear projection after the "
            f"embeddings ({FAIRSEQ_NAMES['quant_noise']}): transformers has no such layer"
        )
    layers = fairseq_layers(tensors)
    fc1 = tensors.get(FAIRSEQ_NAMES["first_ffn"])
    heads = args.get("encoder_attention_heads")
    if not isinstance(heads, int) or heads <= 0 or emb.shape[1] % heads:
        raise BadInput(where, f"cannot tell the attention heads from the args (encoder_attention_heads={heads!r})")
    classification = fairseq_heads({n: tuple(t.shape) for n, t in tensors.items()})
    unique: dict[int, int] = {}
    for n, t in tensors.items():
        if not is_bookkeeping(n) and family.ignored(n) is None:  # what the family leaves out is no parameter of it
            unique[t.untyped_storage().data_ptr() + int(t.storage_offset()) * t.element_size()] = t.numel()
    layout = family.layout_for(evidence)
    return ModelDescription(
        # the placement the tensors have (a refused checkpoint's nearest family may place its norms otherwise)
        family=layout.family if claimed else (PRE_LN if has_final else POST_LN),
        layers=layers,
        hidden=int(emb.shape[1]),
        heads=heads,
        ffn=int(fc1.shape[0]) if fc1 is not None else 0,
        vocab_rows=int(emb.shape[0]),
        position_rows=int(pos.shape[0]) if pos is not None else 0,
        padding_idx=padding_idx,
        layer_norm_eps=1e-5,
        activation=str(args.get("activation_fn", "gelu")),
        dtype=str(emb.dtype).removeprefix("torch."),
        classification_heads=classification,
        lm_head=FAIRSEQ_NAMES["lm_head"] in tensors,
        tied_lm_head=not bool(args.get("untie_weights_roberta", False)),
        parameters=sum(unique.values()),
        unsupported=unsupported,
        adapters=adapters,
        vocabulary=vocabulary,
        hf_family=family.name,
        hf_model_type=family.model_type,
        class_prefix=family.prefix,
        base=family.base,
        layout=layout,
        release=family.releases.get((layers, int(emb.shape[1]))),
    )


def _adapters(
    tensors: dict[str, torch.Tensor], args: dict[str, Any], hidden: int, unsupported: list[str]
) -> Adapters | None:
    """X-MOD's adapters: the languages and their size from the tensors, the norms around them from the args (the
    xmod_* architectures' defaults where the args lack them)."""
    sizes = fairseq_adapters({n: tuple(t.shape) for n, t in tensors.items()})
    if not sizes:
        return None
    size = next(iter(sizes.values()))
    factor = hidden // size if size else 0
    if set(sizes.values()) != {size} or not factor or hidden // factor != size:
        unsupported.append(
            f"X-MOD adapters of sizes {sorted(set(sizes.values()))} for hidden size {hidden}: transformers' Xmod "
            "builds every adapter as hidden // adapter_reduction_factor"
        )
    return Adapters(
        languages=list(sizes),
        reduction_factor=max(factor, 1),
        layer_norm=FAIRSEQ_NAMES["first_adapter_norm"] in tensors,
        reuse_layer_norm=bool(args.get("adapter_reuse_layer_norm", True)),
        ln_before_adapter=bool(args.get("ln_before_adapter", True)),
    )
