"""Option aliases shared by every command, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Trust = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Unpickle checkpoints fully. THIS CAN RUN ARBITRARY CODE hidden in the file: only for files you trust.",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars or diagnostics, only results.")]
Force = Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")]
Head = Annotated[
    str | None, typer.Option("--head", help="Classification head to convert/compare (default: the masked-LM head).")
]
Dtype = Annotated[str, typer.Option("--dtype", help="auto (keep the checkpoint's), float32, float16 or bfloat16.")]
Tol = Annotated[
    float | None, typer.Option("--tol", help="Max |Δ| allowed (default by dtype: fp32 1e-5, 1e-4 on CUDA).")
]
DictPath = Annotated[Path | None, typer.Option("--dict", help="fairseq dict.txt (default: beside the checkpoint).")]
SpmPath = Annotated[
    Path | None, typer.Option("--spm", help="sentencepiece.bpe.model (default: beside the checkpoint).")
]
EncoderJson = Annotated[
    Path | None,
    typer.Option("--encoder-json", help="GPT-2 BPE encoder.json, for RoBERTa (default: beside the checkpoint)."),
]
VocabBpe = Annotated[
    Path | None,
    typer.Option("--vocab-bpe", help="GPT-2 BPE vocab.bpe (merges), for RoBERTa (default: beside the checkpoint)."),
]
Lang = Annotated[
    str | None,
    typer.Option(
        "--lang",
        help="X-MOD: check through this language's adapters (convert: also the folder's default_language). "
        "Default: every language's adapters run.",
    ),
]
Texts = Annotated[list[str] | None, typer.Option("--text", help="A sample text (repeatable).")]
TextsFile = Annotated[Path | None, typer.Option("--texts-file", help="Sample texts, one per line.")]
Report = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Also write the result to this file: JSON, or a self-contained HTML page (per-stage chart) for *.html.",
    ),
]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda: where the models run.")]
Labels = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="fairseq label dictionary naming the head's classes (default: label/dict.txt beside a "
        "sentence_prediction checkpoint).",
    ),
]
Revision = Annotated[
    str | None,
    typer.Option("--revision", help="For a Hugging Face repo id: a branch, tag or commit (default: main)."),
]
Ema = Annotated[
    bool,
    typer.Option(
        "--ema",
        help="Use the EMA weights a --store-ema training kept in the checkpoint (extra_state['ema']) instead of the "
        "live ones.",
    ),
]
