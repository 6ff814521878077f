"""The family axis: what each fairseq RoBERTa-style encoder is in transformers, as data and a few hooks.

A `Family` is registered once, by its own module (families/<name>.py), in the order families are tried: it says how
it is told from a fairseq checkpoint (`claims`, over the `Evidence` the checkpoint gives) and from a Hugging Face
config (its model_type), which transformers classes it becomes (model_type, class-name prefix, the base-model
attribute), where its LayerNorms are and what transformers names them (`Layout`: the name tables derive from it),
which tokenizers it takes, and the hooks the few unusual ones override: X-MOD's adapter settings and layout,
data2vec's nested arguments, its teacher and its own fairseq model class. Nothing outside families/ tests a family
by name; readers call `detect` (fairseq) or `for_model_type` (HF), everything after that asks the Family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlmr_tools.mapping import config, weights
from xlmr_tools.model import CAMEMBERT, GPT2, SENTENCEPIECE, Layout, ModelDescription

ANY_VOCABULARY = frozenset({SENTENCEPIECE, CAMEMBERT, GPT2})

# The layouts transformers has classes for, with the names its classes give the norms (under `encoder.layer.{i}.`,
# and the final one under the base model).
POST_LN = Layout(
    embedding_norm=True, pre_norm=False, attention_norm="attention.output.LayerNorm", ffn_norm="output.LayerNorm"
)
PRE_LN = Layout(
    embedding_norm=False,
    pre_norm=True,
    attention_norm="attention.self_attn_layer_norm",
    ffn_norm="LayerNorm",
    final_norm="encoder.LayerNorm",
)


@dataclass(frozen=True)
class Evidence:
    """What a fairseq checkpoint says about its family: its tensors, its arguments, its dictionary, its BPE."""

    arch: str  # the registered fairseq architecture (args.arch, or the hydra model's _name)
    embedding_norm: bool  # has encoder.sentence_encoder.layernorm_embedding
    final_norm: bool  # has encoder.sentence_encoder.layer_norm
    normalize_before: bool  # args.encoder_normalize_before (defaults to what the tensors say)
    adapters: bool  # X-MOD's per-language adapters
    vocabulary: str  # what dict.txt indexes (mapping.tokenizer.vocabulary_of)
    bpe: str | None = None  # the BPE the checkpoint records (cfg.bpe._name or args.bpe)
    files: frozenset[str] = frozenset()  # subword-model file names found near the checkpoint


DEFAULT_BPES = frozenset({"gpt2", "sentencepiece"})  # the encoders Family.fairseq_bpe's default reproduces


@dataclass(frozen=True)
class Family:
    """A family of fairseq checkpoints and the transformers classes that reproduce it (see the module docstring).

    The fields are data; the methods are the hooks, whose defaults fit a plain RoBERTa-style encoder."""

    name: str  # the registry's key (also shown by inspect)
    model_type: str  # transformers' config model_type
    prefix: str  # transformers' class-name prefix: {prefix}Config, {prefix}ForMaskedLM, ...
    layout: Layout  # where the norms are (and what transformers names them)
    base: str = "roberta"  # the base model's attribute in the *For* classes (its tensors' prefix)
    vocabularies: frozenset[str] = ANY_VOCABULARY  # the dictionaries (mapping.tokenizer vocabularies) it takes
    bpe: frozenset[str] = frozenset()  # BPE names it claims a checkpoint by (empty: any)
    releases: dict[tuple[int, int], str] = field(default_factory=dict)  # (layers, hidden) -> a public release's name
    # Subword-model files under other names than the vocabulary's usual ones (mapping.tokenizer.MODEL_FILES):
    # {usual name: this family's name}.
    tokenizer_files: dict[str, str] = field(default_factory=dict)
    # AutoTokenizer honours tokenizer_config.json's tokenizer_class for this model_type; where it does not, only a
    # tokenizer.json loads (transformers' tokenization_auto registers the generic TokenizersBackend for it).
    autotokenizer_honours_class: bool = True
    reads_hf: bool = True  # an HF folder of this model_type is read as this family (not: GottBERT, read as RoBERTa)
    priority: int = 50  # families are tried on a checkpoint in this order, lowest first: the most specific first
    adapters: bool = False  # per-language adapters in every layer (X-MOD)
    claims_when: Callable[[Evidence], bool] | None = None  # beyond the layout, vocabulary and BPE checks
    # The fairseq architecture that alone tells the family (args.arch / cfg.model._name). A checkpoint of it is
    # described as this family even where its layout is one transformers' classes for it lack: its arguments are
    # read through this family's `model_args`, and the refusal names the family and the option.
    arch: str | None = None

    # ---------------------------------------------------------------------------------------------------- hooks

    def claims(self, e: Evidence) -> bool:
        """Whether a fairseq checkpoint with this evidence is of this family."""
        norms = (e.embedding_norm, e.final_norm, e.normalize_before)
        if e.adapters != self.adapters or norms != (
            self.layout.embedding_norm,
            self.layout.pre_norm,
            self.layout.pre_norm,
        ):
            return False
        if self.arch is not None and e.arch != self.arch:
            return False
        if e.vocabulary not in self.vocabularies or (self.bpe and e.bpe not in self.bpe):
            return False
        if not self.encodes_with(e.bpe):
            return False
        return self.claims_when is None or self.claims_when(e)

    def encodes_with(self, bpe: str | None) -> bool:
        """Whether the family's fairseq encoder (`fairseq_bpe`: the oracle's, and the one its tokenizer reproduces)
        is the BPE a checkpoint recorded: the default hook's are fairseq's gpt2 and sentencepiece (a checkpoint
        trained on binarized data may record none); a family with its own hook decides by `bpe`/`claims_when`."""
        return self.own_encoder or bpe is None or bpe in DEFAULT_BPES

    @property
    def own_encoder(self) -> bool:
        """The family encodes texts with an encoder of its own (it overrides `fairseq_bpe`)."""
        return type(self).fairseq_bpe is not Family.fairseq_bpe

    def layout_for(self, e: Evidence) -> Layout:
        """The layout of one model of the family (X-MOD's has either norm placement)."""
        return self.layout

    def model_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint's model arguments as fairseq's RoBERTa names them (flat), for reading sizes and flags."""
        return args

    def config_settings(self, desc: ModelDescription, language: str | None) -> dict[str, Any]:
        """Config entries this family's transformers config needs beyond the common ones."""
        return {}

    def fairseq_model_class(self) -> Any:
        """fairseq's own model class for the family (the oracle calls this first: importing it registers it with
        fairseq before the model is built)."""
        from fairseq.models.roberta import RobertaModel

        return RobertaModel

    def fairseq_model(self, args: Any, task: Any) -> Any:
        """fairseq's own model for the checkpoint's arguments (an argparse.Namespace), built as fairseq builds it:
        the architecture's registered defaults filled in, then the class's build_model (the oracle calls this on
        the meta device)."""
        from fairseq.models import ARCH_CONFIG_REGISTRY

        arch = getattr(args, "arch", None)
        if arch in ARCH_CONFIG_REGISTRY:
            ARCH_CONFIG_REGISTRY[arch](args)
        return self.fairseq_model_class().build_model(args, task)

    def fairseq_bpe(self, files: dict[str, Path], settings: dict[str, Any]) -> Any:
        """fairseq's own BPE encoder for the family's checkpoints (what its hub loader encodes texts with), from the
        subword model's files (by their mapping.tokenizer.MODEL_FILES names) and the BPE settings the checkpoint
        records; None: the one fairseq uses for the dictionary's vocabulary (gpt2 or sentencepiece)."""
        return None

    def hf_adapters(self, config: dict[str, Any]) -> Any:
        """The family's adapters as an HF config.json describes them (model.Adapters), or None."""
        return None

    def ignored(self, name: str) -> str | None:
        """Why an entry of the checkpoint's state dict (under fairseq's load-time name) that this family does not
        convert is left out, or None. What it names is reported as ignored with this reason, not counted among the
        model's parameters, and may be no tensor at all (a nested dict); any other entry that is no tensor is
        refused (sources.fairseq)."""
        return None


REGISTRY: list[Family] = []


def register(family: Family) -> Family:
    """Add a family (its module calls this once, when families/__init__.py imports it)."""
    if any(f.name == family.name for f in REGISTRY):
        raise ValueError(f"family {family.name} registered twice")
    REGISTRY.append(family)
    REGISTRY.sort(key=lambda f: (f.priority, f.name))
    return family


def get(name: str) -> Family:
    for f in REGISTRY:
        if f.name == name:
            return f
    raise KeyError(name)


def detect(e: Evidence) -> Family | None:
    """The family of a fairseq checkpoint, or None (then `unclaimed` says why no transformers class fits). A
    checkpoint whose architecture tells its family (`Family.arch`) is that family's or none: another family's
    layout may fit its tensors, but not its arguments."""
    owner = _owner(e)
    if owner is not None:
        return owner if owner.claims(e) else None
    return next((f for f in REGISTRY if f.claims(e)), None)


def for_model_type(model_type: object) -> Family | None:
    """The family an HF folder's model_type names (GottBERT's folders are RoBERTa's: `reads_hf`)."""
    return next((f for f in REGISTRY if f.model_type == model_type and f.reads_hf), None)


def of(desc: ModelDescription) -> Family:
    """The family a description was made for."""
    return get(desc.hf_family)


def build_config(
    desc: ModelDescription,
    args: dict[str, Any],
    head: str | None,
    dtype: Any,
    where: str,
    labels: list[str] | None = None,
    specials: dict[str, int] | None = None,
    language: str | None = None,
    regression: bool = False,
) -> Any:
    """The transformers config `convert` writes for the model (mapping.config.build_config with what its family
    adds); `language`: X-MOD's default_language."""
    settings = of(desc).config_settings(desc, language)
    return config.build_config(desc, args, head, dtype, where, labels, specials, settings, regression)


def model_types() -> set[str]:
    return {f.model_type for f in REGISTRY}


def nearest(e: Evidence) -> Family:
    """The family a checkpoint no family takes is described as: the one its architecture names (`Family.arch`:
    only that family's `model_args` reads its arguments), else the one with its norms placed alike, as far as they
    go."""
    owner = _owner(e)
    if owner is not None:
        return owner

    def fit(f: Family) -> tuple[bool, ...]:
        norms = (f.layout.pre_norm != e.final_norm, f.layout.embedding_norm != e.embedding_norm)
        return (*norms, e.vocabulary not in f.vocabularies, type(f) is not Family)  # a plain family before a special

    return min(REGISTRY, key=fit)


@dataclass(frozen=True)
class HFReading:
    """What an HF folder's tensors and config.json say its family is."""

    family: Family  # the family of the weights (the classes that hold exactly these tensors)
    layout: Layout
    canonical: dict[str, str]  # {name as that family's *For* model calls it: name in the file}
    said: Family | None  # the family config.json's model_type names (None: none we know)


def read_hf(model_type: object, file_names: list[str]) -> HFReading | None:
    """The family of an HF folder's weights: the one config.json's model_type names where its tensors fit it, else
    the one they fit (a folder whose config names another family: verify and inspect say so), else None."""
    said = for_model_type(model_type)
    readers = [f for f in REGISTRY if f.reads_hf]
    if said is not None:  # the family config.json names first, then those sharing its base model, then the rest
        readers.sort(key=lambda f: (f is not said, f.base != said.base))
    for f in readers:
        canonical = weights.hf_canonical_names(file_names, f.base)
        e = _hf_evidence(f, set(canonical))
        if e is not None:
            return HFReading(f, f.layout_for(e), canonical, said)
    return None


def _hf_evidence(f: Family, names: set[str]) -> Evidence | None:
    """The evidence an HF folder's tensors give under family f's names, where they fit f's layout (else None)."""
    emb = f"{f.base}.embeddings.LayerNorm.weight" in names
    finals = [x.layout.final_norm for x in REGISTRY if x.base == f.base and x.layout.final_norm]
    final = any(f"{f.base}.{n}.weight" in names for n in finals)
    adapters = any(".adapter_modules." in n for n in names)
    e = Evidence(f.name, emb, final, final, adapters, next(iter(f.vocabularies)) if f.vocabularies else "")
    if f"{f.base}.embeddings.word_embeddings.weight" not in names:
        return None
    layout = f.layout_for(e)
    has_final = layout.final_norm is not None and f"{f.base}.{layout.final_norm}.weight" in names
    fits = (emb, final) == (layout.embedding_norm, layout.pre_norm) and has_final == layout.pre_norm
    return e if fits and adapters == f.adapters else None


def _placed_as(e: Evidence, f: Family) -> Evidence:
    """The evidence with its norms and adapters as family `f` has them (what `f` would need to take it)."""
    pre = f.layout.pre_norm
    return dataclasses.replace(
        e, embedding_norm=f.layout.embedding_norm, final_norm=pre, normalize_before=pre, adapters=f.adapters
    )


def _owner(e: Evidence) -> Family | None:
    """The family whose architecture the checkpoint records, if one is told by it."""
    return next((f for f in REGISTRY if f.arch is not None and f.arch == e.arch), None)


def _placement(pre_norm: bool, embedding_norm: bool) -> str:
    norms = "pre-LN layers and a final LayerNorm" if pre_norm else "post-LN layers"
    return f"{norms}, {'an' if embedding_norm else 'no'} embedding LayerNorm"


def unclaimed(e: Evidence) -> str:
    """Why no family takes a checkpoint, naming the fairseq option behind it."""
    owner = _owner(e)
    if owner is not None and owner.claims(_placed_as(e, owner)):  # its architecture's family, but not its layout
        return (
            f"{owner.name} (fairseq arch {e.arch!r}) with {_placement(e.final_norm, e.embedding_norm)} "
            f"(normalize_before={e.normalize_before}, layernorm_embedding={e.embedding_norm}): transformers' "
            f"{owner.prefix} classes have {_placement(owner.layout.pre_norm, owner.layout.embedding_norm)} only"
        )
    if e.adapters and not e.embedding_norm:
        return (
            "X-MOD without an embedding LayerNorm (layernorm_embedding=False): transformers' Xmod always normalizes "
            "the embeddings"
        )
    if not e.final_norm and not e.embedding_norm:
        return (
            "post-LN without an embedding LayerNorm (layernorm_embedding=False): transformers' XLM-R classes always "
            "normalize the embeddings"
        )
    if e.normalize_before != e.final_norm:
        state = "pre-ln" if e.final_norm else "post-ln"
        return f"args say encoder_normalize_before={e.normalize_before} but the tensors are {state}"
    if e.bpe is not None and e.bpe not in DEFAULT_BPES:
        state = "pre-ln" if e.final_norm else "post-ln"
        takers = [
            f"{f.name} ({'pre-ln' if f.layout.pre_norm else 'post-ln'})"
            for f in REGISTRY
            if f.own_encoder and f.claims(_placed_as(e, f))
        ]
        return f"a {state} model trained with fairseq --bpe {e.bpe}: no family reproduces that encoder for it" + (
            f" (it is converted for: {', '.join(takers)})" if takers else ""
        )
    return f"no transformers class for this combination (arch {e.arch!r}, a {e.vocabulary} dictionary)"
