"""One normalized description of an XLM-R model, whatever format it came from, and the dtypes models run in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from xlmr_tools.errors import BadInput

if TYPE_CHECKING:
    import torch

POST_LN = "post-ln"  # norms after each block (xlmr.base/large, RoBERTa): `family` in a description
PRE_LN = "pre-ln"  # norms before each block and a final one (xlmr.xl/xxl; encoder_normalize_before)

# What a model's ids mean (fairseq's dict.txt over a subword model), which decides the tokenizer:
SENTENCEPIECE = "sentencepiece"  # XLM-R, XLM-V and a user's own sentencepiece pretraining (dict.txt in any order)
# sentencepiece whose dict.txt lists the model's own <unk>/<s>/</s> (#fairseq:overwrite, as CamemBERT's does)
CAMEMBERT = "sentencepiece+specials"
GPT2 = "gpt2"  # byte-level BPE whose token ids dict.txt lists as numbers (RoBERTa's GPT-2 BPE, hf_byte_bpe)
VOCABULARIES = (SENTENCEPIECE, CAMEMBERT, GPT2)


@dataclass(frozen=True)
class Layout:
    """Where a model's LayerNorms are (fairseq's flags), and what transformers' classes call them: the norm of a
    layer's attention and feed-forward blocks under `encoder.layer.{i}.`, the final one under the base model. The
    families (families/) hold the instances; the name tables (mapping.weights) are made from them."""

    embedding_norm: bool  # fairseq layernorm_embedding
    pre_norm: bool  # fairseq encoder_normalize_before: norms before each block and a final one after the last
    attention_norm: str
    ffn_norm: str
    final_norm: str | None = None

    @property
    def family(self) -> str:
        return PRE_LN if self.pre_norm else POST_LN


@dataclass
class Adapters:
    """X-MOD's per-language adapters (fairseq's xmod_* architectures): after each layer's FFN, the language's own
    bottleneck (fc1, activation, fc2) with a residual around it."""

    languages: list[str]  # adapter names, in the model's order (transformers' lang_ids index them)
    reduction_factor: int  # hidden // adapter size (fairseq's `bottleneck`)
    layer_norm: bool  # adapter_layer_norm: the adapters' own LayerNorm before them
    reuse_layer_norm: bool  # adapter_reuse_layer_norm: else the FFN's final_layer_norm before them
    ln_before_adapter: bool  # the residual is taken after that norm (else before it)


@dataclass
class ModelDescription:
    family: str  # the norm placement: POST_LN or PRE_LN
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab_rows: int
    position_rows: int
    padding_idx: int = 1
    layer_norm_eps: float = 1e-5
    activation: str = "gelu"
    dtype: str = "float32"
    classification_heads: dict[str, int] = field(default_factory=dict)
    lm_head: bool = True
    tied_lm_head: bool = True
    parameters: int = 0
    # What transformers cannot reproduce, each naming the fairseq option and why: convert and verify refuse the
    # model (exit 2, nothing written, --no-verify too); inspect shows them.
    unsupported: list[str] = field(default_factory=list)
    vocabulary: str = SENTENCEPIECE  # SENTENCEPIECE, CAMEMBERT or GPT2 (from dict.txt; HF: from the tokenizer)
    adapters: Adapters | None = None  # X-MOD
    # The family (families/) and what it makes of the model in transformers:
    hf_family: str = ""  # the registered family's name
    hf_model_type: str = ""
    class_prefix: str = ""  # {class_prefix}ForMaskedLM, ...
    base: str = ""  # the base model's attribute in the *For* classes (its tensors' prefix)
    layout: Layout | None = None
    release: str | None = None  # a public release of this shape, for a friendlier `inspect`

    @property
    def hf_classes(self) -> tuple[str, str]:
        """(model_type, class-name prefix) in transformers."""
        return self.hf_model_type, self.class_prefix

    @property
    def norms(self) -> Layout:
        if self.layout is None:
            raise ValueError("a description without its family's layout")
        return self.layout

    @property
    def max_positions(self) -> int:
        """Usable sequence length: rows minus the padding offset (514 rows -> 512 tokens)."""
        return self.position_rows - self.padding_idx - 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_positions"] = self.max_positions
        return d


# `--head none`: the encoder alone (transformers' bare *Model class, AutoModel), for feature extraction, where no head
# is wanted or the checkpoint's head cannot be represented. Any other head name is a classification head; None is the
# masked-LM head.
ENCODER = "none"
# An HF folder's classification head, as diff and verify name what a folder holds (transformers' `classifier.*`,
# whatever the fairseq head was called).
CLASSIFIER = "classifier"


def head_kind(head: str | None) -> str:
    """'masked-lm', 'encoder' or 'classifier': what a head choice converts."""
    return "masked-lm" if head is None else "encoder" if head == ENCODER else "classifier"


# The dtypes a model is converted to or run in, by the names the CLI takes (one list for every command).
DTYPES = ("float32", "float16", "bfloat16")


def run_dtype(name: str, *own: torch.dtype) -> torch.dtype:
    """`--dtype NAME` as a torch dtype, decided here for every command. A named dtype (DTYPES) is that one. "auto" is
    the models' own, `own`: convert's checkpoint (written in its dtype), verify's folder as from_pretrained loads it,
    or diff's two sides — their dtype where both have the same one of DTYPES, else float32, which both can run in."""
    import torch

    if name == "auto" and len(own) == 1:
        return own[0]
    if name == "auto" and own:
        same = all(d == own[0] for d in own) and dtype_name(own[0]) in DTYPES
        return own[0] if same else torch.float32
    if name not in DTYPES:
        raise BadInput(None, f"--dtype must be auto, float32, float16 or bfloat16, not {name!r}")
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
