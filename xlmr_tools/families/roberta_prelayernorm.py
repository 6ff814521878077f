"""RoBERTa trained with --encoder-normalize-before (roberta_base/large keep their embedding LayerNorm): norms before
each block, a final LayerNorm after the last -> transformers' RobertaPreLayerNorm* (added for exactly this fairseq
flag), whatever the dictionary."""

from xlmr_tools.families.base import Family, register
from xlmr_tools.model import Layout

ROBERTA_PRELAYERNORM = register(
    Family(
        name="roberta-prelayernorm",
        model_type="roberta-prelayernorm",
        prefix="RobertaPreLayerNorm",
        base="roberta_prelayernorm",
        priority=30,
        layout=Layout(
            embedding_norm=True,
            pre_norm=True,
            attention_norm="attention.LayerNorm",
            ffn_norm="intermediate.LayerNorm",
            final_norm="LayerNorm",
        ),
    )
)
