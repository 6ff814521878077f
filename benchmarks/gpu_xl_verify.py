"""`xlmr verify --device cuda` at real XLM-R XL width: build the 2-layer XL-width checkpoint of bench_convert.py with
fairseq's own code, convert it (--no-verify), then verify it on the CPU, on the GPU in float32, and on the GPU in
bfloat16, timing each and printing the worst stage of each. Run by benchmarks/gpu_check.sh on a GPU machine.

    python3 -m benchmarks.gpu_xl_verify [--layers 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from benchmarks.bench_convert import build_checkpoint


def run(label: str, cmd: list[str]) -> dict | None:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    report = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
    worst = ""
    if report and report.get("outputs"):
        o = report["outputs"]
        w = max(o["stages"], key=lambda s: s["max_abs"] / s["tol"])
        worst = f"{o['dtype']}: worst {w['stage']} max|Δ| {w['max_abs']:.3e} (tol {w['tol']:g})"
    print(f"| {label} | {r.returncode} | {wall:.1f} | {worst} |", flush=True)
    if report and report.get("outputs"):
        print("  stages: " + ", ".join(f"{s['stage']} {s['max_abs']:.2e}" for s in report["outputs"]["stages"]))
    if r.returncode != 0 and report is None:
        print(r.stderr[-2000:])
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/xlmr-gpu"))
    a = p.parse_args()
    warnings.simplefilter("ignore")  # fairseq's hydra deprecation notices while building the checkpoint
    shutil.rmtree(a.work, ignore_errors=True)
    t = time.perf_counter()
    ckpt = build_checkpoint(a.work / "src", a.layers)
    print(f"built {ckpt} ({ckpt.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s", flush=True)
    xlmr = shutil.which("xlmr") or str(Path(sys.executable).parent / "xlmr")
    src, hf = str(a.work / "src"), str(a.work / "hf")
    print("| run | exit | wall s | outputs |\n|---|---|---|---|")
    run("xlmr convert --no-verify", [xlmr, "convert", src, hf, "--no-verify", "-q"])
    run("xlmr verify --device cpu", [xlmr, "verify", src, hf, "--json", "-q"])
    run("xlmr verify --device cuda", [xlmr, "verify", src, hf, "--json", "-q", "--device", "cuda"])
    run(
        "xlmr verify --device cuda --dtype bfloat16",
        [xlmr, "verify", src, hf, "--json", "-q", "--device", "cuda", "--dtype", "bfloat16"],
    )
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
