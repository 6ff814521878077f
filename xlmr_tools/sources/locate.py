"""Which file or folder a path names — a fairseq checkpoint or a Hugging Face folder — and where a checkpoint's
dictionary and subword model are, without reading a tensor and without importing torch (the CLI finds the
checkpoint to start hashing it before torch loads).

Two layouts are understood. A release folder: `model.pt` with `dict.txt` and the subword model beside it. And what
training leaves: `fairseq-train` writes `checkpoint_best.pt`, `checkpoint_last.pt` and `checkpoint_E_U.pt` into a save
dir (`checkpoints/` by default), while `fairseq-preprocess` wrote dict.txt into the data folder the training read
(recorded in the checkpoint as the task's `data`; `data-bin/` in fairseq's examples; `input0/` and `label/` inside it
for sentence_prediction), with the user's own sentencepiece model or BPE files somewhere near. A folder holding several
checkpoints is never guessed from: the user names one.
"""

from __future__ import annotations

from pathlib import Path

from xlmr_tools.errors import BadInput

RELEASE_NAME = "model.pt"
SAVE_DIR = "checkpoints"  # fairseq-train's default --save-dir
DATA_DIR = "data-bin"  # fairseq's examples' --destdir


def find_checkpoint_file(path: Path) -> Path:
    """SRC as given: the file itself, or the one checkpoint in a folder (a release's model.pt). A folder holding
    several is refused, naming them; a folder whose save dir holds them says so."""
    if not path.exists():
        raise BadInput(path, "no such file or directory")
    if path.is_file():
        return path
    if (path / RELEASE_NAME).is_file():
        return path / RELEASE_NAME
    found = checkpoints_in(path)
    if len(found) == 1:
        return found[0]
    if found:
        raise BadInput(path, f"holds {len(found)} checkpoints ({_names(found)}); name the one to use, e.g. {found[0]}")
    inner = checkpoints_in(path / SAVE_DIR) if (path / SAVE_DIR).is_dir() else []
    if inner:
        raise BadInput(
            path, f"no checkpoint here; {path / SAVE_DIR} holds {_names(inner)}: name the one to use, e.g. {inner[0]}"
        )
    raise BadInput(path, "directory holds no fairseq checkpoint (looked for model.pt and *.pt)")


def checkpoint_choices(path: Path) -> list[Path]:
    """The checkpoints a folder leaves the user to choose from (`find_checkpoint_file` refuses to guess): those of a
    save dir holding several, or of an experiment folder's save dir; [] where the path names one checkpoint."""
    if not path.is_dir() or (path / RELEASE_NAME).is_file():
        return []
    found = checkpoints_in(path)
    if len(found) > 1:
        return found
    return checkpoints_in(path / SAVE_DIR) if not found and (path / SAVE_DIR).is_dir() else []


def checkpoint_named(src: str | Path) -> Path:
    """The checkpoint file SRC names where it names one, else SRC itself (for checks that need no more)."""
    try:
        return find_checkpoint_file(Path(src))
    except BadInput:
        return Path(src)


def checkpoints_in(folder: Path) -> list[Path]:
    """The checkpoints of a folder, as fairseq-train names them (best, last, then by epoch and update), any other
    .pt after them."""

    def order(p: Path) -> tuple[int, list[int], str]:
        stem = p.stem.removeprefix("checkpoint")
        if stem in ("_best", "_last"):
            return (0 if stem == "_best" else 1, [], p.name)
        numbers = [int(n) for n in stem.strip("_").split("_") if n.isdigit()]
        return (2 if p.name.startswith("checkpoint") else 3, numbers, p.name)

    return sorted((p for p in folder.glob("*.pt") if p.is_file()), key=order)


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:6]) + (f", … ({len(paths) - 6} more)" if len(paths) > 6 else "")


def asset_folders(checkpoint: Path, data: str | None = None) -> list[Path]:
    """Where a checkpoint's dictionary, label dictionary and subword model may be, nearest first: the checkpoint's
    folder; the data folder training read (`data`, as recorded in the checkpoint: absolute, or relative to where
    training ran — the save dir's parent or the current folder), else a `data-bin` beside the checkpoint or its save
    dir; the save dir's parent (the experiment)."""
    here = checkpoint.parent
    roots = [here, here.parent, Path.cwd()]
    datas: list[Path] = []
    for entry in (data or "").split(":"):  # fairseq takes several data folders separated by ':'
        if entry and "://" not in entry:
            datas += [Path(entry)] if Path(entry).is_absolute() else [r / entry for r in roots]
    datas += [here / DATA_DIR, here.parent / DATA_DIR]
    out: list[Path] = []
    for folder in [here, *datas, here.parent]:
        if folder.is_dir() and folder.resolve() not in {f.resolve() for f in out}:
            out.append(folder)
    return out


def names(folders: list[Path]) -> frozenset[str]:
    """The file names in the asset folders (what a family may be told by: its BPE's files)."""
    return frozenset(p.name for folder in folders for p in folder.iterdir() if p.is_file())


def find_asset(folders: list[Path], *names: str) -> Path | None:
    """The first of `names` (paths relative to a folder) present in the first folder that has one."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def find_recorded(folders: list[Path], recorded: str | None) -> Path | None:
    """A file the checkpoint records by path (its BPE's files, as given to fairseq-train): as it is where it exists,
    else by the same relative path or name in the asset folders."""
    if not recorded or "://" in recorded:  # fairseq's defaults are URLs: never downloaded
        return None
    path = Path(recorded)
    if path.is_absolute():
        return path if path.is_file() else find_asset(folders, path.name)
    return find_asset(folders, str(path), path.name)


def find_sentencepiece(folders: list[Path], recorded: str | None) -> Path | None:
    """The sentencepiece model: the one the checkpoint records, else a release's `sentencepiece.bpe.model`, else the
    one `*.model` file of the nearest folder that has any (several there: none is guessed; the user names it with
    --spm)."""
    found = find_recorded(folders, recorded) or find_asset(folders, "sentencepiece.bpe.model")
    if found is not None:
        return found
    for folder in folders:
        models = sorted(p for p in folder.glob("*.model") if p.is_file())
        if models:
            return models[0] if len(models) == 1 else None
    return None


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()
