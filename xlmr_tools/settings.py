"""What a command is asked to do, bundled once where it is asked (the CLI's options, the public API's keywords) and
handed to the operations whole, instead of relayed option by option through every layer.

The values are as the user gave them: what "auto", a missing head or a missing tolerance mean for a given model is
decided where the model is known, in one place each (model.run_dtype, mapping.config.choose_head and
compared_head, compare.stages.default_tol). Torch-free, so the CLI builds these before torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Assets:
    """The files a fairseq checkpoint is read with, where the user names them (--dict, --spm, --encoder-json,
    --vocab-bpe, --labels); None: found where fairseq's own code finds them (beside the checkpoint, or where its
    arguments say). `labels`: the label dictionary naming a classification head's classes."""

    dict_path: Path | None = None
    spm_path: Path | None = None
    encoder_json: Path | None = None
    vocab_bpe: Path | None = None
    labels: Path | None = None

    def named(self) -> list[Path]:
        """The files the user named (inputs an output folder must not hold)."""
        return [p for p in (self.dict_path, self.spm_path, self.encoder_json, self.vocab_bpe, self.labels) if p]


@dataclass(frozen=True)
class Settings:
    """How convert, verify and diff run.

    `head`: a classification head of the checkpoint, "none" (model.ENCODER: the encoder alone), or None (the
    masked-LM head, or what the compared folder holds). `dtype`: "auto" or one of model.DTYPES — what convert writes,
    what verify and diff run the models in. `device`: where verify and diff run them (convert runs on the CPU).
    `tol`: max |Δ| per stage (diff: per tensor too; None: by dtype, diff 0). `texts`: the sample texts (None: the
    built-in ones). `language`: X-MOD: the adapters compared (convert: also the folder's default_language; None:
    every language's). `trust`: unpickle without the allowlist. `ema`: the checkpoint's EMA weights (--store-ema),
    not its live ones."""

    head: str | None = None
    dtype: str = "auto"
    device: str = "cpu"
    tol: float | None = None
    texts: list[str] | None = None
    language: str | None = None
    trust: bool = False
    ema: bool = False


@dataclass(frozen=True)
class HubAccess:
    """How a Hugging Face repo id is fetched (--revision, --token, --cache-dir), as huggingface_hub takes them; None:
    its defaults (main, HF_TOKEN or the saved login, HF_HUB_CACHE)."""

    revision: str | None = None
    token: str | None = None
    cache_dir: Path | None = None
