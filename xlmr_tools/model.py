"""One normalized description of an XLM-R model, whatever format it came from, and the dtypes models run in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from xlmr_tools.errors import BadInput

if TYPE_CHECKING:
    import torch

POST_LN = "post-ln"  # xlmr.base / xlmr.large: embedding LayerNorm, norms after each block (HF: xlm-roberta)
PRE_LN = "pre-ln"  # xlmr.xl / xlmr.xxl: norms before each block, a final LayerNorm (HF: xlm-roberta-xl)

# What a model's ids mean (fairseq's dict.txt over a subword model), which decides the tokenizer and, for post-LN
# models, the transformers class users load:
SENTENCEPIECE = "sentencepiece"  # XLM-R, XLM-V and a user's own sentencepiece pretraining (dict.txt in any order)
CAMEMBERT = "camembert"  # sentencepiece whose dict.txt lists the model's own <unk>/<s>/</s> (#fairseq:overwrite)
GPT2 = "gpt2"  # RoBERTa: GPT-2 byte-level BPE, dict.txt holding GPT-2 token ids
VOCABULARIES = (SENTENCEPIECE, CAMEMBERT, GPT2)

# transformers' class family by (layout, vocabulary): its model_type and class-name prefix. The classes share module
# names (the `roberta.` base model); pre-LN has one class, XLMRobertaXL, whatever the vocabulary (its tokenizer is
# named apart in tokenizer_config.json); X-MOD (adapters) has its own, in either layout.
HF_CLASSES = {
    (POST_LN, SENTENCEPIECE): ("xlm-roberta", "XLMRoberta"),
    (POST_LN, CAMEMBERT): ("camembert", "Camembert"),
    (POST_LN, GPT2): ("roberta", "Roberta"),
    **{(PRE_LN, vocabulary): ("xlm-roberta-xl", "XLMRobertaXL") for vocabulary in VOCABULARIES},
}
XMOD_MODEL_TYPE = "xmod"
XMOD_CLASSES = (XMOD_MODEL_TYPE, "Xmod")
FAMILY_OF_MODEL_TYPE = {t: layout for (layout, _), (t, _) in HF_CLASSES.items()}
VOCABULARY_OF_MODEL_TYPE = {"roberta": GPT2, "camembert": CAMEMBERT}


def hf_classes(family: str, vocabulary: str = SENTENCEPIECE, xmod: bool = False) -> tuple[str, str]:
    """(model_type, class-name prefix) transformers has for this model."""
    return XMOD_CLASSES if xmod else HF_CLASSES[(family, vocabulary)]


def hf_model_type(family: str, vocabulary: str = SENTENCEPIECE, xmod: bool = False) -> str:
    return hf_classes(family, vocabulary, xmod)[0]


@dataclass
class Adapters:
    """X-MOD's per-language adapters (fairseq's xmod_* architectures): after each layer's FFN, the language's own
    bottleneck (fc1, activation, fc2) with a residual around it."""

    languages: list[str]  # adapter names, in the model's order (transformers' lang_ids index them)
    reduction_factor: int  # hidden // adapter size (fairseq's `bottleneck`)
    layer_norm: bool  # adapter_layer_norm: the adapters' own LayerNorm before them
    reuse_layer_norm: bool  # adapter_reuse_layer_norm: else the FFN's final_layer_norm before them
    ln_before_adapter: bool  # the residual is taken after that norm (else before it)


KNOWN_RELEASES = {  # (family, layers, hidden) -> release name, for a friendlier `inspect`
    (POST_LN, 12, 768): "xlmr.base",
    (POST_LN, 24, 1024): "xlmr.large",
    (PRE_LN, 36, 2560): "xlmr.xl",
    (PRE_LN, 48, 4096): "xlmr.xxl",
}
KNOWN_RELEASES_BY_VOCABULARY = {  # the same shapes in the other vocabularies
    (GPT2, 12, 768): "RoBERTa-base",
    (GPT2, 24, 1024): "RoBERTa-large",
    (CAMEMBERT, 12, 768): "CamemBERT-base",
    (CAMEMBERT, 24, 1024): "CamemBERT-large",
}


@dataclass
class ModelDescription:
    family: str
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
    vocabulary: str = SENTENCEPIECE  # SENTENCEPIECE, CAMEMBERT or GPT2 (from dict.txt; HF: from model_type)
    adapters: Adapters | None = None  # X-MOD

    @property
    def hf_model_type(self) -> str:
        return self.hf_classes[0]

    @property
    def hf_classes(self) -> tuple[str, str]:
        """(model_type, class-name prefix) in transformers."""
        return hf_classes(self.family, self.vocabulary, self.adapters is not None)

    @property
    def max_positions(self) -> int:
        """Usable sequence length: rows minus the padding offset (514 rows -> 512 tokens)."""
        return self.position_rows - self.padding_idx - 1

    @property
    def release(self) -> str | None:
        if self.vocabulary != SENTENCEPIECE:
            return KNOWN_RELEASES_BY_VOCABULARY.get((self.vocabulary, self.layers, self.hidden))
        return KNOWN_RELEASES.get((self.family, self.layers, self.hidden))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_positions"] = self.max_positions
        d["hf_model_type"] = self.hf_model_type
        d["release"] = self.release
        return d


# The dtypes a model is converted to or run in, by the names the CLI takes (one list for every command).
DTYPES = ("float32", "float16", "bfloat16")


def torch_dtype(name: str, auto: torch.dtype | None = None) -> torch.dtype:
    """`--dtype NAME` as a torch dtype; "auto" is `auto` (the model's own) where the command has one."""
    import torch

    if name == "auto" and auto is not None:
        return auto
    if name not in DTYPES:
        raise BadInput(None, f"--dtype must be auto, float32, float16 or bfloat16, not {name!r}")
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
