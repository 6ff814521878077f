"""How much memory this process may still fill before the kernel reclaims its page cache: the tighter of its
cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`) less the group's anonymous memory, and the machine's
MemAvailable. It sizes read-ahead (how far convert's writer may run ahead of the verification), never a result."""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def memory_room() -> int | None:
    """Bytes of page cache this process can keep, or None where neither the cgroup nor /proc says."""
    rooms = [r for r in (_cgroup_room(), _meminfo("MemAvailable")) if r is not None]
    return max(0, min(rooms)) if rooms else None


def _cgroup_room() -> int | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # v2: the unified hierarchy
            limit, stat, anon_key = CGROUP / rel / "memory.max", CGROUP / rel / "memory.stat", "anon"
        elif "memory" in controllers.split(","):
            base = CGROUP / "memory" / rel
            limit, stat, anon_key = base / "memory.limit_in_bytes", base / "memory.stat", "total_rss"
        else:
            continue
        try:
            text = limit.read_text().strip()
            if text == "max":
                return None
            anon = next((int(v) for k, v in (ln.split() for ln in stat.read_text().splitlines()) if k == anon_key), 0)
        except (OSError, ValueError):
            return None
        return int(text) - anon
    return None


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
