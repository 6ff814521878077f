"""Verify benchmark: `xlmr verify` (streamed layer by layer) against the old approach (both full models in
memory), on the XL-width checkpoint of bench_convert.py (2 and 4 layers) and its converted folder. Also runs
`xlmr verify` under a hard cgroup memory cap of 1/2 of the checkpoint size. Cold page cache before every run.

    .venv/bin/python benchmarks/bench_verify.py [--layers 2 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))

from bench_convert import BIN, build_checkpoint, gb  # noqa: E402
from measure import cgroup_available, evict, measure  # noqa: E402


def run_size(work: Path, layers: int) -> list[str]:
    src = work / f"xl-{layers}l"
    ckpt = build_checkpoint(src, layers)
    size = ckpt.stat().st_size
    folder = work / f"hf-{layers}l"
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([str(BIN / "xlmr"), "convert", str(src), str(folder), "--no-verify", "-q"], check=True,
                   capture_output=True)
    xlmr = str(BIN / "xlmr")
    cold = [ckpt, *folder.glob("*.safetensors")]

    def go(label, cmd, cap=None):
        for p in cold:
            evict(p)
        return measure(label, cmd, cap=cap)

    runs = [
        go("xlmr verify (streamed)", [xlmr, "verify", str(src), str(folder), "-q", "--json"]),
        go("full models (old approach)", [sys.executable, str(Path(__file__).with_name("full_models_verify.py")),
                                          str(src), str(folder)]),
    ]
    if cgroup_available():
        runs.append(go("xlmr verify, capped", [xlmr, "verify", str(src), str(folder), "-q", "--json"],
                       cap=size // 2))
    old = runs[1]
    rows = [f"### {layers} layers: checkpoint {gb(size)} GB ({size:,} bytes)", "",
            "| run | exit | wall s | peak RSS GB | peak anon GB | anon vs ckpt | anon vs old | wall vs old |",
            "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        cap = f" (cap {gb(r.cap)} GB)" if r.cap else ""
        rows.append(f"| {r.label}{cap} | {r.rc} | {r.wall_s:.1f} | {gb(r.peak_rss)} | {gb(r.peak_anon)} | "
                    f"{r.peak_anon / size:.3f} | {r.peak_anon / max(old.peak_anon, 1):.3f} | "
                    f"{r.wall_s / old.wall_s:.2f} |")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return rows + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    p.add_argument("--work", type=Path, default=ROOT / "bench-work")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    for n in a.layers:
        print("\n".join(run_size(a.work, n)), flush=True)


if __name__ == "__main__":
    main()
