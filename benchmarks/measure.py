"""Run a command and sample its process tree's memory: peak RSS and peak anonymous memory (RssAnon), optionally
inside a cgroup-v1 memory cap (the hard limit: the kernel reclaims page cache, and OOM-kills on anonymous overrun)."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


@dataclass
class Run:
    label: str
    wall_s: float
    peak_rss: int
    peak_anon: int
    rc: int
    cap: int | None = None
    walls: list[float] = field(default_factory=list)  # every round's wall time, when repeated


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo += [int(k) for k in kids]
        except OSError:
            pass
    return pids


def _mem(pid: int) -> tuple[int, int]:
    rss = anon = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, anon


def cgroup_available() -> bool:
    return CGROUP_ROOT.is_dir() and os.access(CGROUP_ROOT, os.W_OK)


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (POSIX_FADV_DONTNEED, no root needed): every run starts cold."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(
    label: str, cmd: list[str], cap: int | None = None, env: dict | None = None, cold: Path | None = None
) -> Run:
    if cold is not None:
        evict(cold)
    os.sync()  # earlier runs' dirty pages are not flushed on this run's clock
    group = None
    if cap is not None:
        group = CGROUP_ROOT / f"xlmr-bench-{uuid.uuid4().hex[:8]}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(cap))
        swap = group / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(cap))
    start = time.perf_counter()

    def enter_group() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=enter_group,
        env={**os.environ, **(env or {})},
    )
    peak_rss = peak_anon = 0
    while proc.poll() is None:
        rss = anon = 0
        for p in _tree(proc.pid):
            r, a = _mem(p)
            rss, anon = rss + r, anon + a
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if group is not None:
        peak_group = int((group / "memory.max_usage_in_bytes").read_text())
        time.sleep(0.2)
        group.rmdir()
        err += f"\n(cgroup max usage incl. page cache: {peak_group})"
    if proc.returncode != 0:
        print(f"[{label}] exit {proc.returncode}: {err[-2000:]}")
    return Run(label, wall, peak_rss, peak_anon, proc.returncode, cap)


def interleaved(
    contenders: list[tuple[str, list[str]]], rounds: int, cold: Path, after_each: Callable[[], None] = lambda: None
) -> list[Run]:
    """Run the contenders in turn, `rounds` times over (A B A B …, so slow spells of a shared machine hit both),
    each cold; per contender: the median wall time, the highest peaks, the worst exit code, and every wall time."""
    seen: list[list[Run]] = [[] for _ in contenders]
    for _ in range(rounds):
        for runs, (label, cmd) in zip(seen, contenders, strict=True):
            runs.append(measure(label, cmd, cold=cold))
            after_each()
    return [
        Run(
            f"{runs[0].label} (median of {rounds})" if rounds > 1 else runs[0].label,
            statistics.median(r.wall_s for r in runs),
            max(r.peak_rss for r in runs),
            max(r.peak_anon for r in runs),
            max((r.rc for r in runs), key=abs),
            None,
            [r.wall_s for r in runs],
        )
        for runs in seen
    ]


def table(layers: int, size: int, runs: list[Run], old: Run, floor: Run | None = None) -> list[str]:
    """Markdown rows for one checkpoint size: absolute figures and ratios to the old approach (and to `cp`)."""
    gb = lambda n: f"{n / 1e9:.2f}"
    head = "| run | exit | wall s | peak RSS GB | peak anon GB | anon vs old | anon vs ckpt | wall vs old |"
    rows = [
        f"### {layers} layers: checkpoint {gb(size)} GB ({size:,} bytes)",
        "",
        head + (" wall vs cp |" if floor else ""),
        "|---" * (9 if floor else 8) + "|",
    ]
    for r in runs:
        cap = f" (cap {gb(r.cap)} GB)" if r.cap else ""
        rows.append(
            f"| {r.label}{cap} | {r.rc} | {r.wall_s:.1f} | {gb(r.peak_rss)} | {gb(r.peak_anon)} | "
            f"{r.peak_anon / max(old.peak_anon, 1):.3f} | {r.peak_anon / size:.3f} | "
            f"{r.wall_s / old.wall_s:.2f} |" + (f" {r.wall_s / floor.wall_s:.2f} |" if floor else "")
        )
    repeated = [r for r in runs if len(r.walls) > 1]
    if repeated:
        rows.append("")
        rows += [f"- {r.label}: " + ", ".join(f"{w:.1f}" for w in r.walls) + " s" for r in repeated]
        if floor is not None and len(floor.walls) > 1:
            for r in repeated:
                if r is not floor and len(r.walls) == len(floor.walls):
                    rows.append(
                        f"- {r.label.split(' (median')[0]} vs cp, round by round: "
                        + ", ".join(f"{w / c:.2f}" for w, c in zip(r.walls, floor.walls, strict=True))
                    )
    return rows + [""]


def main(run_size, doc: str, work: Path, rounds: int | None = None) -> None:
    """Shared command line of the benchmarks: --layers, --work (and --rounds when the benchmark repeats its short
    runs); prints each size's table as it is done."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    p.add_argument("--work", type=Path, default=work)
    if rounds is not None:
        p.add_argument("--rounds", type=int, default=rounds, help="repeats of the short runs; medians reported")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    for n in a.layers:
        rows = run_size(a.work, n, a.rounds) if rounds is not None else run_size(a.work, n)
        print("\n".join(rows), flush=True)
