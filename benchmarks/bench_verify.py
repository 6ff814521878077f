"""Verify benchmark: `xlmr verify` (streamed layer by layer) against the old approach (both full models in
memory), on the XL-width checkpoint of bench_convert.py (2 and 4 layers) and its converted folder. Also runs
`xlmr verify` under a hard cgroup memory cap of 1/2 of the checkpoint size. Cold page cache before every run.

    .venv/bin/python -m benchmarks.bench_verify [--layers 2 4] [--work DIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_convert import BIN, build_checkpoint
from benchmarks.measure import cgroup_available, evict, main, measure, table

ROOT = Path(__file__).resolve().parent.parent


def run_size(work: Path, layers: int) -> list[str]:
    src = work / f"xl-{layers}l"
    ckpt = build_checkpoint(src, layers)
    size = ckpt.stat().st_size
    folder = work / f"hf-{layers}l"
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(
        [str(BIN / "xlmr"), "convert", str(src), str(folder), "--no-verify", "-q"], check=True, capture_output=True
    )
    xlmr = str(BIN / "xlmr")
    cold = [ckpt, *folder.glob("*.safetensors")]

    def go(label, cmd, cap=None):
        for p in cold:
            evict(p)
        return measure(label, cmd, cap=cap)

    runs = [
        go("xlmr verify (streamed)", [xlmr, "verify", str(src), str(folder), "-q", "--json"]),
        go(
            "full models (old approach)",
            [sys.executable, str(Path(__file__).with_name("full_models_verify.py")), str(src), str(folder)],
        ),
    ]
    if cgroup_available():
        runs.append(go("xlmr verify, capped", [xlmr, "verify", str(src), str(folder), "-q", "--json"], cap=size // 2))
    rows = table(layers, size, runs, old=runs[1])
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main(run_size, __doc__, ROOT / "bench-work")
