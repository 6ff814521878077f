"""Which file or folder a path names — a fairseq checkpoint or a Hugging Face folder — without reading it and
without importing torch (the CLI finds the checkpoint to start hashing it before torch loads)."""

from __future__ import annotations

from pathlib import Path

from xlmr_tools.errors import BadInput

CHECKPOINT_NAMES = ("model.pt", "checkpoint_best.pt", "checkpoint_last.pt")


def find_checkpoint_file(path: Path) -> Path:
    """SRC as given: the file itself, or the one checkpoint in a folder."""
    if not path.exists():
        raise BadInput(path, "no such file or directory")
    if path.is_file():
        return path
    for name in CHECKPOINT_NAMES:
        if (path / name).is_file():
            return path / name
    pts = sorted(path.glob("*.pt"))
    if len(pts) == 1:
        return pts[0]
    raise BadInput(
        path,
        "directory holds no fairseq checkpoint (looked for model.pt)"
        if not pts
        else f"directory holds {len(pts)} .pt files; name one",
    )


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()
