"""Every option's name and help text, defined once: the commands import these aliases, and the README's usage block is
checked against the rendered `--help` of each command (tests/test_help.py), so help, README and behaviour say one
thing. Choices are enums, so `--help` shows them as `[auto|float32|float16|bfloat16]` and click refuses anything
else as a usage error (exit 2) before any work."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class DtypeName(str, Enum):
    """`--dtype`: "auto" and model.DTYPES (tests/test_help.py keeps the two lists equal)."""

    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class DeviceName(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


# --- what is read ---
Src = Annotated[
    Path, typer.Argument(help="The fairseq folder (model.pt, dict.txt, sentencepiece.bpe.model) or model.pt.")
]
# Arguments that may be a Hub repo id stay text: pathlib would turn `./org/name` into `org/name`, and how the user
# wrote it decides whether it is a path (sources/hub.py).
InspectPath = Annotated[
    str, typer.Argument(help="A fairseq folder or model.pt, a Hugging Face model folder, or a Hub repo id.")
]
HfFolder = Annotated[
    str, typer.Argument(help="Any Hugging Face folder (ours, the old script's, a download) or a Hub repo id.")
]
DiffA = Annotated[
    str, typer.Argument(help="A fairseq checkpoint/folder, an HF folder or a Hub repo id (the reference).")
]
DiffB = Annotated[str, typer.Argument(help="A fairseq checkpoint/folder, an HF folder or a Hub repo id.")]
Out = Annotated[Path, typer.Argument(help="Output folder; written atomically, never half-done.")]
Revision = Annotated[
    str | None,
    typer.Option("--revision", help="For a Hugging Face repo id: a branch, tag or commit (default: main)."),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="For a Hugging Face repo id: the access token for a private or gated repo (default: HF_TOKEN, else "
        "the token `hf auth login` saved).",
        show_default=False,
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="For a Hugging Face repo id: the hub cache to read and fill (default: HF_HUB_CACHE)."
    ),
]
DictPath = Annotated[Path | None, typer.Option("--dict", help="fairseq dict.txt (default: beside the checkpoint).")]
SpmPath = Annotated[
    Path | None, typer.Option("--spm", help="sentencepiece.bpe.model (default: beside the checkpoint).")
]
EncoderJson = Annotated[
    Path | None,
    typer.Option(
        "--encoder-json",
        help="Byte-level BPE token ids: GPT-2's encoder.json for RoBERTa, or vocab.json for fairseq's hf_byte_bpe "
        "(default: beside the checkpoint).",
    ),
]
VocabBpe = Annotated[
    Path | None,
    typer.Option(
        "--vocab-bpe",
        help="Byte-level BPE merges: GPT-2's vocab.bpe for RoBERTa, or merges.txt for fairseq's hf_byte_bpe "
        "(default: beside the checkpoint).",
    ),
]
Labels = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="fairseq label dictionary naming the head's classes (default: label/dict.txt beside a "
        "sentence_prediction checkpoint).",
    ),
]
Trust = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Unpickle checkpoints fully. THIS CAN RUN ARBITRARY CODE hidden in the file: only for files you trust.",
    ),
]

# --- what is converted or compared ---
Head = Annotated[
    str | None, typer.Option("--head", help="Classification head to convert/compare (default: the masked-LM head).")
]
Lang = Annotated[
    str | None,
    typer.Option(
        "--lang",
        help="X-MOD: check through this language's adapters (convert: also the folder's default_language). "
        "Default: every language's adapters run.",
    ),
]
ConvertDtype = Annotated[
    DtypeName, typer.Option("--dtype", help="dtype of the written weights; auto keeps the checkpoint's.")
]
VerifyDtype = Annotated[
    DtypeName,
    typer.Option(
        "--dtype",
        help="dtype both models run in; auto: the folder's (weights are always compared in the folder's dtype).",
    ),
]
DiffDtype = Annotated[
    DtypeName,
    typer.Option(
        "--dtype", help="dtype both models run in for --outputs; auto: the models' own when they agree, else float32."
    ),
]
MaxShardSize = Annotated[
    str,
    typer.Option(
        "--max-shard-size", help="Largest safetensors file, with a unit: 5GB, 500MB, 2GiB (one file up to it)."
    ),
]
Verify = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Run fairseq and the result side by side, layer by layer (--no-verify: the written weights are still "
        "re-read and checked bit for bit).",
    ),
]
AcceptMissingPieces = Annotated[
    bool,
    typer.Option(
        "--accept-missing-pieces",
        help="Publish although dict.txt lacks sentencepiece pieces (texts using them tokenize differently).",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")]
Tensors = Annotated[bool, typer.Option("--tensors", help="Also list every tensor: name, shape, dtype.")]

# --- tolerances (the defaults are compare.stages.TOLERANCE / CUDA_FP32_TOLERANCE; tests/test_help.py checks) ---
ConvertTol = Annotated[
    float | None,
    typer.Option(
        "--tol", min=0.0, help="Max |Δ| per stage (default by dtype: float32 1e-5, float16 2e-2, bfloat16 0.15)."
    ),
]
VerifyTol = Annotated[
    float | None,
    typer.Option(
        "--tol",
        min=0.0,
        help="Max |Δ| per stage (default by dtype: float32 1e-5, or 1e-4 with --device cuda; float16 2e-2; "
        "bfloat16 0.15).",
    ),
]
DiffTol = Annotated[
    float, typer.Option("--tol", min=0.0, help="Max |Δ| per tensor (and per stage with --outputs); 0: identical.")
]
OutputTol = Annotated[
    float | None,
    typer.Option(
        "--output-tol", min=0.0, help="Max |Δ| per stage with --outputs (default: max of --tol and the dtype's)."
    ),
]
Outputs = Annotated[bool, typer.Option("--outputs", help="Also compare per-layer activations on sample texts.")]
Device = Annotated[DeviceName, typer.Option("--device", help="Where the models run.")]
Texts = Annotated[
    list[str] | None,
    typer.Option("--text", help="A sample text (repeatable); yours replace the 7 built-in ones (a note says so)."),
]
TextsFile = Annotated[Path | None, typer.Option("--texts-file", help="Sample texts, one per line (as --text).")]

# --- what is shown ---
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Report = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Also write the result to this file: JSON, or a self-contained HTML page (per-stage chart) for *.html.",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars or diagnostics, only results.")]
Verbose = Annotated[
    bool, typer.Option("-v", "--verbose", help="Also print the compute against the FLOP bound (always in --report).")
]
Ema = Annotated[
    bool,
    typer.Option(
        "--ema",
        help="Use the EMA weights a --store-ema training kept in the checkpoint (extra_state['ema']) instead of the "
        "live ones.",
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (also accepted before the command).")]
