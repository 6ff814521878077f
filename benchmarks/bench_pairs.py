"""Capped against uncapped, in back-to-back pairs: one command run cold without a cap and then under a hard cap of
1/4 of the checkpoint, `--pairs` times over, so the drift of a shared machine hits both sides of each pair alike.
Prints each pair's walls and ratio and the medians (docs/benchmarks.md, "convert (verify), XL-36").

    .venv/bin/python -m benchmarks.bench_pairs CHECKPOINT_FOLDER [--pairs 4] [--command convert|verify]
                                               [--folder HF_FOLDER (verify)] [--no-verify (convert)]

Build the checkpoint first, e.g. `python -m benchmarks.stream_checkpoint bench-work/xl36 --preset xl --layers 36`.
Needs root for the cgroup caps (measure.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.measure import evict, measure

BIN = Path(sys.executable).parent


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("src", type=Path)
    cli.add_argument("--pairs", type=int, default=4)
    cli.add_argument("--command", choices=["convert", "verify"], default="convert")
    cli.add_argument("--folder", type=Path, help="verify: the HF folder to verify against")
    cli.add_argument("--no-verify", action="store_true", help="convert: pass --no-verify")
    args = cli.parse_args()
    ckpt = args.src / "model.pt"
    cap = ckpt.stat().st_size // 4
    out = args.src.parent / f"{args.src.name}-pairs-out"
    if args.command == "convert":
        cmd = [str(BIN / "xlmr"), "convert", str(args.src), str(out), "-q", "--force"]
        cmd += ["--no-verify"] if args.no_verify else []
        written = out
    else:
        if args.folder is None:
            cli.error("--command verify needs --folder")
        cmd = [str(BIN / "xlmr"), "verify", str(args.src), str(args.folder), "-q"]
        written = args.folder
    print(f"xlmr {args.command}{' --no-verify' if args.no_verify else ''}, {ckpt.stat().st_size / 1e9:.2f} GB, "
          f"cap {cap / 1e9:.2f} GB\n")  # fmt: skip
    print("| pair | uncapped s | capped s | capped / uncapped |\n|---|---|---|---|")
    walls: dict[bool, list[float]] = {False: [], True: []}
    for k in range(args.pairs):
        for capped in (False, True):
            for p in written.glob("*.safetensors"):  # the folder read cold too
                evict(p)
            r = measure(f"{args.command} {'capped' if capped else 'uncapped'}", cmd, cap=cap if capped else None,
                        cold=ckpt)  # fmt: skip
            if r.rc != 0:
                sys.exit(f"exit {r.rc}")
            walls[capped].append(r.wall_s)
        u, c = walls[False][-1], walls[True][-1]
        print(f"| {k + 1} | {u:.1f} | {c:.1f} | {c / u:.2f} |", flush=True)
    mu, mc = statistics.median(walls[False]), statistics.median(walls[True])
    print(f"| median | {mu:.1f} | {mc:.1f} | {mc / mu:.2f} |")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
