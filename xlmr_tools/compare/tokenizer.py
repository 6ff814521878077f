"""The written tokenizer against fairseq's own encoder: ids on the sample (or the user's) texts, and <mask>."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlmr_tools.compare import oracle as fairseq_oracle
from xlmr_tools.mapping import tokenizer as tokenizer_assets
from xlmr_tools.sources.hf import load_tokenizer


@dataclass
class TokenizerCheck:
    texts: int
    equal: bool
    mask_id: int
    fillers: int
    first_mismatch: str | None = None  # the first differing text, quoted, with both id sequences there
    mismatches: int = 0  # texts whose ids differ

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def check_tokenizer(oracle: fairseq_oracle.FairseqOracle, folder: Path, texts: list[str]) -> TokenizerCheck:
    hf_tok = load_tokenizer(folder)
    mismatch = None
    count = 0
    for i, text in enumerate(texts):
        ids = oracle.encode(text).tolist()
        hf_ids = hf_tok(text, truncation=True, max_length=oracle.max_positions)["input_ids"]
        if hf_ids != ids:
            count += 1
            if mismatch is None:
                at = next((j for j, (x, y) in enumerate(zip(ids, hf_ids)) if x != y), min(len(ids), len(hf_ids)))
                shown = text if len(text) <= 60 else text[:57] + "..."
                mismatch = f"text {i} {shown!r}, token {at}: fairseq {ids[at : at + 4]} vs HF {hf_ids[at : at + 4]}"
    if count > 1:
        mismatch = f"{count} of {len(texts)} texts differ; first: {mismatch}"
    if mismatch is None and hf_tok.mask_token_id != oracle.mask_id:
        mismatch = f"<mask> is {hf_tok.mask_token_id} in HF, {oracle.mask_id} in fairseq"
    fillers = sum(1 for symbol in oracle.dictionary.symbols if tokenizer_assets.FILLER.match(symbol))
    return TokenizerCheck(len(texts), mismatch is None, oracle.mask_id, fillers, mismatch, count)
