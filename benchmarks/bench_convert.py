"""Convert benchmark: an XLM-R XL-width pre-LN checkpoint (hidden 2560, ffn 10240, 32 heads, 250880-row embedding),
built on the fly with fairseq's own code at 2 and 4 layers (zip format, never committed). In one run, for each size:
`cp` (the byte-moving floor) and `xlmr convert --no-verify`, alternated for --rounds rounds (medians reported, and
every round), then once each `xlmr convert` (with verification), the old HF script (with only its version gate,
weights_only default and GPT-2 BPE download worked around), and `xlmr convert --no-verify` under a hard cgroup
memory cap of 1/3 of the checkpoint size. The checkpoint is evicted from the page cache before every run, so each
contender reads it cold.

    .venv/bin/python -m benchmarks.bench_convert [--layers 2 4] [--rounds 3] [--work DIR]

Needs ~25 GB free disk for 2+4 layers and root for the cgroup cap. Prints a markdown table.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import torch

from benchmarks.measure import Run, cgroup_available, interleaved, main, measure, table

ROOT = Path(__file__).resolve().parent.parent

XL = [
    "--encoder-embed-dim",
    "2560",
    "--encoder-ffn-embed-dim",
    "10240",
    "--encoder-attention-heads",
    "32",
    "--tokens-per-sample",
    "512",
    "--max-positions",
    "512",
]
XL_ROWS = 250880
BIN = Path(sys.executable).parent


def build_checkpoint(folder: Path, layers: int) -> Path:
    """fairseq's parser/task/build_model at XL width; dict = a real sentencepiece model's pieces + fillers."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    from tests.fixtures import make_fixtures

    logging.disable(logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    spm = folder / "sentencepiece.bpe.model"
    make_fixtures.train_sentencepiece(spm)
    import sentencepiece

    pieces = sentencepiece.SentencePieceProcessor(model_file=str(spm)).get_piece_size()
    fillers = XL_ROWS - 4 - 1 - (pieces - 3)
    make_fixtures.write_dict(spm, folder / "dict.txt", 1)
    with open(folder / "dict.txt", "a") as f:  # pad like the XL release: madeupwordNNNN up to 250880 rows
        f.writelines(f"madeupword{i:04d} 0\n" for i in range(fillers))
    torch.manual_seed(0)
    _, cfg, _, model = make_fixtures.build_model(
        folder, "roberta_prenorm", ["--encoder-layers", str(layers)], seed=None, dims=XL
    )
    assert model.encoder.sentence_encoder.embed_tokens.weight.shape[0] == XL_ROWS
    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "extra_state": {},
        "optimizer_history": [
            {
                "criterion_name": "MaskedLmLoss",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
    }
    checkpoint_utils.torch_persistent_save(state, str(folder / "model.pt"))
    return folder / "model.pt"


def gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def run_size(work: Path, layers: int, rounds: int) -> list[str]:
    src = work / f"xl-{layers}l"
    t0 = time.perf_counter()
    ckpt = build_checkpoint(src, layers)
    size = ckpt.stat().st_size
    print(f"built {ckpt} ({gb(size)} GB) in {time.perf_counter() - t0:.0f} s", flush=True)
    outs = work / f"out-{layers}l"
    shutil.rmtree(outs, ignore_errors=True)
    outs.mkdir()
    xlmr = str(BIN / "xlmr")

    def clear_short_runs() -> None:
        (outs / "copy.pt").unlink(missing_ok=True)
        shutil.rmtree(outs / "nv", ignore_errors=True)

    runs: list[Run] = [
        *interleaved(
            [
                ("cp (floor)", ["cp", str(ckpt), str(outs / "copy.pt")]),
                ("xlmr convert --no-verify", [xlmr, "convert", str(src), str(outs / "nv"), "--no-verify", "-q"]),
            ],
            rounds,
            ckpt,
            clear_short_runs,
        ),
        measure("xlmr convert (verify)", [xlmr, "convert", str(src), str(outs / "v"), "-q"], cold=ckpt),
        measure(
            "old script (seed)",
            [
                sys.executable,
                str(ROOT / "tests/peers/run_seed.py"),
                "--roberta_checkpoint_path",
                str(src),
                "--pytorch_dump_folder_path",
                str(outs / "seed"),
            ],
            cold=ckpt,
        ),
    ]
    if cgroup_available():
        runs.append(
            measure(
                "xlmr convert --no-verify, capped",
                [xlmr, "convert", str(src), str(outs / "cap"), "--no-verify", "-q"],
                cap=size // 3,
                cold=ckpt,
            )
        )
    rows = table(layers, size, runs, old=runs[3], floor=runs[0])
    shutil.rmtree(outs, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main(run_size, __doc__, ROOT / "bench-work", rounds=3)
