"""CamemBERT: fairseq's post-LN encoder over a sentencepiece dictionary that lists the model's own <unk>, <s> and
</s> (#fairseq:overwrite) -> transformers' Camembert*."""

from xlmr_tools.families.base import POST_LN, Family, register
from xlmr_tools.model import CAMEMBERT as CAMEMBERT_VOCABULARY

CAMEMBERT = register(
    Family(
        name="camembert",
        model_type="camembert",
        prefix="Camembert",
        priority=70,
        layout=POST_LN,
        vocabularies=frozenset({CAMEMBERT_VOCABULARY}),
        releases={(12, 768): "CamemBERT-base", (24, 1024): "CamemBERT-large"},
    )
)
