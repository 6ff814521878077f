"""RoBERTa (English, GPT-2's byte-level BPE: roberta.base/large, their fine-tunes, a user's own): fairseq's post-LN
encoder over a dictionary of GPT-2 token ids -> transformers' Roberta*."""

from xlmr_tools.families.base import POST_LN, Family, register
from xlmr_tools.model import GPT2

ROBERTA = register(
    Family(
        name="roberta",
        model_type="roberta",
        prefix="Roberta",
        priority=60,
        layout=POST_LN,
        vocabularies=frozenset({GPT2}),
        releases={(12, 768): "RoBERTa-base", (24, 1024): "RoBERTa-large"},
    )
)
