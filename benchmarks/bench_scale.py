"""Real scale: XL-36 (36 layers, hidden 2560, ffn 10240, 250,880 rows: 13.9 GB fp32) and XXL-48 (48 layers, hidden
4096, ffn 16384: 43 GB fp32, 21.5 GB fp16), built by the streaming writer (benchmarks/stream_checkpoint.py, the file
fairseq's own save writes, never the model in memory) and never committed.

In one run, per size: the build (its own peak memory), cold `cp` (the byte-moving floor), `xlmr convert
--no-verify` uncapped and under a hard cap of 1/4 of the checkpoint, `xlmr convert` (with verification) uncapped
and capped, `xlmr verify` uncapped and capped (its FLOP accounting: real tokens' FLOPs, the GEMM peak measured in
the same run, the ratio to that bound), and the old HF script under a 20 GB cap. What the disk cannot hold (the
checkpoint, a copy for `cp` and one output at a time) is skipped and said so.

    .venv/bin/python -m benchmarks.bench_scale [--sizes xl:36 xxl:48:float16] [--work DIR] [--dtype float32]
                                               [--skip old,cp]

Needs root for the cgroup caps (measure.py). Prints markdown (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchmarks.measure import Run, cgroup_available, evict, measure

ROOT = Path(__file__).resolve().parent.parent

BIN = Path(sys.executable).parent
GB = 1e9


def row(r: Run, size: int, floor: Run | None, note: str = "") -> str:
    cap = f"{r.cap / GB:.2f}" if r.cap else "—"
    vs_cp = f"{r.wall_s / floor.wall_s:.2f}" if floor and floor.wall_s else "—"
    return (
        f"| {r.label} | {r.rc} | {cap} | {r.wall_s:.0f} | {vs_cp} | {r.peak_rss / GB:.2f} | {r.peak_anon / GB:.2f} | "
        f"{r.peak_anon / size:.3f} | {note} |"
    )


def performance(report: Path) -> str:
    if not report.is_file():
        return ""
    p = json.loads(report.read_text())["outputs"]["performance"]
    return (
        f"{p['flops'] / 1e12:.1f} TFLOP on {p['tokens']} tokens ({p['padded_tokens'] / p['tokens'] - 1:.0%} padding), "
        f"{p['achieved_flops'] / 1e9:.0f} GFLOPS of a {p['peak_flops'] / 1e9:.0f} GFLOPS GEMM peak: "
        f"**{p['ratio_to_bound']:.2f}× the FLOP bound**"
    )


def run_size(work: Path, preset: str, layers: int, dtype: str, verify_dtype: str, skip: set[str]) -> list[str]:
    src = work / f"{preset}-{layers}-{dtype}"
    lines = [f"### {preset.upper()}-{layers} ({dtype})", ""]
    build = measure(
        "build (stream_checkpoint.py)",
        [sys.executable, "-m", "benchmarks.stream_checkpoint", str(src), "--preset", preset,
         "--layers", str(layers), "--dtype", dtype],
    )  # fmt: skip
    ckpt = src / "model.pt"
    if build.rc != 0 or not ckpt.is_file():
        return lines + [f"build failed (exit {build.rc}): see stderr above", ""]
    size = ckpt.stat().st_size
    lines += [
        f"checkpoint {size / GB:.2f} GB ({size:,} bytes); cap = 1/4 of it = {size / 4 / GB:.2f} GB; "
        f"verification in {verify_dtype}",
        "",
        "| run | exit | cap GB | wall s | vs cp | peak RSS GB | peak anon GB | anon / ckpt | |",
        "|---|---|---|---|---|---|---|---|---|",
        row(build, size, None, "never holds the model: one tensor at a time"),
    ]
    outs = work / "out"
    xlmr = str(BIN / "xlmr")
    capped = cgroup_available()
    free = lambda: shutil.disk_usage(work).free

    def run(label: str, cmd: list[str], cap: int | None = None, out: Path | None = None, report: Path | None = None,
            note: str = "") -> Run:  # fmt: skip
        for p in [ckpt, *(out.glob("*.safetensors") if out and out.is_dir() else [])]:
            evict(p)
        r = measure(label, cmd, cap=cap, cold=ckpt)
        if r.rc in (-9, 137):
            note = "exit 137: killed for memory"
        lines.append(row(r, size, floor, performance(report) if report and r.rc == 0 else note))
        print(lines[-1], flush=True)
        return r

    floor = None
    outs.mkdir(exist_ok=True)
    if "cp" not in skip and free() > size * 1.05:
        floor = run("cp (floor)", ["cp", str(ckpt), str(outs / "copy.pt")])
        (outs / "copy.pt").unlink(missing_ok=True)
    elif "cp" not in skip:
        lines.append(f"| cp | skipped: {free() / GB:.0f} GB free, needs {size / GB:.0f} | | | | | | | |")
    fits = free() > size * 1.1
    if not fits:
        lines.append(f"| convert | skipped: {free() / GB:.0f} GB free, an output needs {size / GB:.0f} | | | | | | | |")
        shutil.rmtree(src, ignore_errors=True)
        return lines + [""]
    caps = [None, size // 4] if capped else [None]
    nv = outs / "nv"
    for cap in caps:
        run("xlmr convert --no-verify", [xlmr, "convert", str(src), str(nv), "--no-verify", "-q", "--force"], cap)
    v = outs / "v"
    if dtype == verify_dtype:  # convert's output check runs in the folder's dtype (fp16 on a CPU: slow kernels)
        for cap in caps:
            run("xlmr convert (verify)", [xlmr, "convert", str(src), str(v), "-q", "--force"], cap)
        shutil.rmtree(v, ignore_errors=True)
    vargs = ["--dtype", verify_dtype] if verify_dtype != dtype else []
    for cap in caps:
        report = work / f"verify-{preset}-{layers}{'-capped' if cap else ''}.json"
        run("xlmr verify", [xlmr, "verify", str(src), str(nv), "-q", *vargs, "--report", str(report)], cap, nv, report)
    shutil.rmtree(nv, ignore_errors=True)
    if "old" not in skip and capped:
        run(
            "old script (seed)",
            [sys.executable, str(ROOT / "tests/peers/run_seed.py"), "--roberta_checkpoint_path", str(src),
             "--pytorch_dump_folder_path", str(outs / "seed")],
            cap=20 * 10**9,
        )  # fmt: skip
        shutil.rmtree(outs / "seed", ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return lines + [""]


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--sizes", nargs="+", default=["xl:36", "xxl:48:float16"], help="preset:layers[:dtype]")
    cli.add_argument("--work", type=Path, default=ROOT / "bench-work" / "scale")
    cli.add_argument("--verify-dtype", default="float32", help="the dtype verification runs in")
    cli.add_argument("--skip", default="", help="comma-separated: old, cp")
    a = cli.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    for spec in a.sizes:
        preset, layers, *rest = spec.split(":")
        dtype = rest[0] if rest else "float32"
        lines = run_size(a.work, preset, int(layers), dtype, a.verify_dtype, set(filter(None, a.skip.split(","))))
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
