"""XLM-R XL and XXL: fairseq's pre-LN encoder (encoder_normalize_before) without an embedding LayerNorm, a final
LayerNorm after the last layer -> transformers' XLMRobertaXL*, whatever the dictionary (its tokenizer follows
dict.txt). AutoTokenizer loads its folders through tokenizer.json only."""

from xlmr_tools.families.base import PRE_LN, Family, register

XLM_ROBERTA_XL = register(
    Family(
        name="xlm-roberta-xl",
        model_type="xlm-roberta-xl",
        prefix="XLMRobertaXL",
        priority=40,
        layout=PRE_LN,
        releases={(36, 2560): "xlmr.xl", (48, 4096): "xlmr.xxl"},
        autotokenizer_honours_class=False,
    )
)
