"""The model families, one module each (see families/base.py). Importing the package registers them; each says its
place in the order they are tried on a fairseq checkpoint (`priority`)."""

from xlmr_tools.families import (  # noqa: F401 - imported to register
    camembert,
    data2vec_text,
    gottbert,
    roberta,
    roberta_prelayernorm,
    xlm_roberta,
    xlm_roberta_xl,
    xmod,
)
from xlmr_tools.families.base import (
    Evidence,
    Family,
    build_config,
    detect,
    for_model_type,
    get,
    model_types,
    nearest,
    of,
    read_hf,
    unclaimed,
)

__all__ = [
    "Evidence",
    "Family",
    "build_config",
    "detect",
    "for_model_type",
    "get",
    "model_types",
    "nearest",
    "of",
    "read_hf",
    "unclaimed",
]
