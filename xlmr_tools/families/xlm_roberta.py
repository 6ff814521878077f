"""XLM-R base and large (and XLM-V, and a user's own sentencepiece pretraining): fairseq's post-LN encoder with an
embedding LayerNorm over a sentencepiece dictionary -> transformers' XLMRoberta*."""

from xlmr_tools.families.base import POST_LN, Family, register
from xlmr_tools.model import SENTENCEPIECE

XLM_ROBERTA = register(
    Family(
        name="xlm-roberta",
        model_type="xlm-roberta",
        prefix="XLMRoberta",
        priority=80,
        layout=POST_LN,
        vocabularies=frozenset({SENTENCEPIECE}),
        releases={(12, 768): "xlmr.base", (24, 1024): "xlmr.large"},
    )
)
