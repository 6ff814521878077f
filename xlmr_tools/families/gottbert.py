"""GottBERT-style RoBERTa: fairseq's post-LN encoder trained with `--bpe hf_byte_bpe`, a byte-level BPE that Hugging
Face `tokenizers` made (vocab.json + merges.txt; dict.txt lists vocab.json's ids as numbers, as RoBERTa's lists
GPT-2's) -> transformers' Roberta*. vocab.json has encoder.json's shape and merges.txt vocab.bpe's, so the tokenizer
is RoBERTa's, built from these files; fairseq encodes with its HuggingFaceByteLevelBPE (tokenizers'
ByteLevelBPETokenizer). Its HF folders are plain RoBERTa folders, read as such (reads_hf=False)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlmr_tools.families.base import POST_LN, Evidence, Family, register
from xlmr_tools.mapping import tokenizer
from xlmr_tools.model import GPT2

BPE = "hf_byte_bpe"  # fairseq's name for the BPE (--bpe)
FILES = {"encoder.json": "vocab.json", "vocab.bpe": "merges.txt"}  # GPT-2's names -> tokenizers' names


def _byte_level_bpe(e: Evidence) -> bool:
    """The checkpoint records hf_byte_bpe; or it records no BPE (training on binarized data needs none) and
    vocab.json + merges.txt lie near it, GPT-2's encoder.json + vocab.bpe do not."""
    if e.bpe is not None:
        return e.bpe == BPE
    return set(FILES.values()) <= e.files and not set(FILES) & e.files


class ByteLevelBPEFamily(Family):
    def fairseq_bpe(self, files: dict[str, Path], settings: dict[str, Any]) -> Any:
        """fairseq's HuggingFaceByteLevelBPE over the files, with the prefix space the checkpoint records."""
        from fairseq.data.encoders.hf_byte_bpe import HuggingFaceByteLevelBPE, HuggingFaceByteLevelBPEConfig

        tokenizer.read_gpt2_encoder(files["encoder.json"])  # refused by name where tokenizers would fail
        tokenizer.read_gpt2_merges(files["vocab.bpe"])
        return HuggingFaceByteLevelBPE(
            HuggingFaceByteLevelBPEConfig(
                bpe_vocab=str(files["encoder.json"]),
                bpe_merges=str(files["vocab.bpe"]),
                bpe_add_prefix_space=settings.get("bpe_add_prefix_space") is True,
            )
        )

    def fairseq_model_class(self) -> Any:
        from fairseq.models.roberta.model_gottbert import GottbertModel

        return GottbertModel


GOTTBERT = register(
    ByteLevelBPEFamily(
        name="gottbert",
        model_type="roberta",
        prefix="Roberta",
        priority=55,  # before roberta (60), which takes any byte-level BPE dictionary
        layout=POST_LN,
        vocabularies=frozenset({GPT2}),
        tokenizer_files=FILES,
        reads_hf=False,
        claims_when=_byte_level_bpe,
        releases={(12, 768): "GottBERT-base"},
    )
)
