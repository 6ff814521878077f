"""Nothing a user owns is lost: not the source (an OUT that holds it, a --report over it), not a file that appears in
OUT while converting, not a symbolic link given as OUT (the model card's sha256: tests/test_source_opened_once.py).

Each case runs the real conversion on a committed fairseq fixture; the races are real file-system operations, made
at a fixed point of the conversion by wrapping one of our own functions (never torch, transformers or fairseq)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import copy_fixture, fixture, leftovers


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) and a hash of its bytes (or where a link points)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = _digest(p)
    return out


# --- an OUT that is the source, holds it, or lies above it --------------------------------------------------------


@dataclass
class _Tree:
    """A source folder with the user's files beside it, links to it, and the checkpoint alone elsewhere."""

    root: Path

    def __post_init__(self) -> None:
        self.parent = self.root / "parent"
        self.ck = copy_fixture("preln", self.parent / "ck")
        (self.ck / "notes.txt").write_text("the user's own notes beside the checkpoint")
        (self.parent / "other.txt").write_text("unrelated")
        os.symlink(self.ck, self.root / "ck-link")
        os.symlink(self.parent, self.root / "parent-link")
        self.alone = self.root / "alone"
        self.alone.mkdir()
        os.link(self.ck / "model.pt", self.alone / "model.pt")  # a hard link; its assets are given by flags


# (convert arguments, what the refusal names) for each way an OUT can hold an input
LAYOUTS = {
    "OUT is SRC": lambda t: ([t.ck, t.ck], "model.pt"),
    "SRC is OUT's checkpoint": lambda t: ([t.ck / "model.pt", t.ck], "model.pt"),
    "OUT above SRC": lambda t: ([t.ck, t.parent], "model.pt"),
    "OUT is SRC through ..": lambda t: ([t.ck, t.ck / ".." / "ck"], "model.pt"),
    "OUT is a link to SRC": lambda t: ([t.ck, t.root / "ck-link"], "model.pt"),
    "SRC through a link, OUT above": lambda t: ([t.root / "ck-link", t.root / "parent-link"], "model.pt"),
    "OUT is the checkpoint file": lambda t: ([t.ck / "model.pt", t.ck / "model.pt"], "model.pt"),
    "--dict in OUT": lambda t: ([t.alone, t.ck, "--dict", t.ck / "dict.txt"], "dict.txt"),
    "--spm in OUT": lambda t: (
        [t.alone, t.ck, "--dict", fixture("preln") / "dict.txt", "--spm", t.ck / "sentencepiece.bpe.model"],
        "sentencepiece.bpe.model",
    ),
}


@pytest.mark.parametrize("flags", [["--force"], [], ["--force", "--no-verify"]], ids=["force", "plain", "no-verify"])
@pytest.mark.parametrize("case", LAYOUTS)
def test_an_out_holding_an_input_is_refused_before_anything_is_written(cli, tmp_path, case, flags):
    """`convert --force ck ck` deleted the checkpoint and the files beside it, exit 0."""
    argv, named = LAYOUTS[case](_Tree(tmp_path))
    before = _snapshot(tmp_path)
    r = cli("convert", *argv, *flags)
    assert r.exit_code == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert named in lines[0] and "would delete" in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # nothing written, nothing removed


def test_an_out_inside_the_source_folder_is_fine(cli, tmp_path):
    ck = copy_fixture("preln", tmp_path / "ck")
    r = cli("convert", ck, ck / "hf", "--no-verify")
    assert r.exit_code == 0, r.stderr
    assert (ck / "model.pt").read_bytes() == (fixture("preln") / "model.pt").read_bytes()
    assert (ck / "hf" / "model.safetensors").is_file()


@pytest.mark.parametrize("where", ["checkpoint", "dict.txt", "OUT"])
def test_a_report_over_an_input_or_out_is_refused_first(cli, tmp_path, where):
    ck = copy_fixture("preln", tmp_path / "ck")
    out = tmp_path / "out"
    report = {"checkpoint": ck / "model.pt", "dict.txt": ck / "dict.txt", "OUT": out}[where]
    before = _snapshot(tmp_path)
    r = cli("convert", ck, out, "--no-verify", "--report", report)
    assert r.exit_code == 2 and "--report" in r.stderr, r.stderr
    assert _snapshot(tmp_path) == before and not out.exists()


# --- publishing: only onto what was checked -----------------------------------------------------------------------


def _while_converting(monkeypatch, act) -> None:
    """Run `act` after the shards are written and checked, before the folder is published (the model card is the
    last file written into the temporary folder)."""
    from xlmr_tools.ops import convert as convert_op

    real = convert_op.write_model_card

    def card_then_act(*args, **kwargs):
        real(*args, **kwargs)
        act()

    monkeypatch.setattr(convert_op, "write_model_card", card_then_act)


@pytest.mark.parametrize("out_before", ["missing", "empty folder"])
@pytest.mark.parametrize("appears", ["a file in OUT", "a file at OUT", "a link at OUT"])
def test_what_appears_in_out_meanwhile_is_kept_without_force(cli, tmp_path, monkeypatch, out_before, appears):
    """A file written into OUT after the emptiness check was deleted at publish, 6 of 6 trials."""
    out = tmp_path / "out"
    if out_before == "empty folder":
        out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "theirs.txt").write_text("someone else's")

    def appear() -> None:
        if appears == "a file in OUT":
            out.mkdir(exist_ok=True)
            (out / "user.txt").write_text("written meanwhile")
        elif appears == "a file at OUT":
            if out.is_dir():
                out.rmdir()
            out.write_text("written meanwhile")
        else:
            if out.is_dir():
                out.rmdir()
            os.symlink(elsewhere, out)

    _while_converting(monkeypatch, appear)
    r = cli("convert", fixture("preln"), out, "--no-verify")
    assert r.exit_code == 2, r.stderr
    assert "appeared" in r.stderr and "left as it is" in r.stderr and "Traceback" not in r.stderr, r.stderr
    if appears == "a file in OUT":
        assert [p.name for p in out.iterdir()] == ["user.txt"]
    elif appears == "a file at OUT":
        assert out.read_text() == "written meanwhile"
    else:
        assert out.is_symlink() and [p.name for p in elsewhere.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out"]  # our temporary folder is gone


def test_an_empty_folder_appearing_at_out_meanwhile_is_taken(cli, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _while_converting(monkeypatch, lambda: out.mkdir())
    r = cli("convert", fixture("preln"), out, "--no-verify")
    assert r.exit_code == 0, r.stderr
    assert (out / "model.safetensors").is_file() and leftovers(tmp_path) == []


def test_with_force_out_is_replaced_whatever_appeared_in_it(cli, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the user agreed to replace this")
    _while_converting(monkeypatch, lambda: (out / "late.txt").write_text("and this"))
    r = cli("convert", fixture("preln"), out, "--no-verify", "--force")
    assert r.exit_code == 0, r.stderr
    assert "old.txt" not in os.listdir(out) and "late.txt" not in os.listdir(out)
    assert (out / "model.safetensors").is_file() and sorted(os.listdir(tmp_path)) == ["out"]


# --- OUT given as a symbolic link: followed -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["empty folder", "missing", "full folder, --force"])
def test_a_link_given_as_out_is_followed_and_stays(cli, tmp_path, target):
    real = tmp_path / "disk" / "xlmr-hf"
    (tmp_path / "disk").mkdir()
    if target != "missing":
        real.mkdir()
    if target.startswith("full"):
        (real / "old.txt").write_text("replaced: --force")
    link = tmp_path / "out"
    os.symlink(real, link)
    r = cli("convert", fixture("preln"), link, "--no-verify", *(["--force"] if "force" in target else []))
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "model.safetensors").is_file() and not (real / "old.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["disk", "out"] and os.listdir(tmp_path / "disk") == ["xlmr-hf"]
    r = cli("convert", fixture("preln"), link, "--no-verify", "--force")  # again: nothing claimed, nothing hidden
    assert r.exit_code == 0 and "removed" not in r.stderr, r.stderr
    assert link.is_symlink() and sorted(os.listdir(tmp_path / "disk")) == ["xlmr-hf"]


def test_a_link_loop_as_out_is_refused(cli, tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    r = cli("convert", fixture("preln"), tmp_path / "a", "--no-verify")
    assert r.exit_code == 2 and "link" in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_stale_partials_are_really_removed_and_links_never_followed(cli, tmp_path):
    """A leftover named like a temporary folder of a dead process is removed and reported only when it is gone; a
    link is removed as a link (what it points to is the user's)."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    os.symlink(precious, tmp_path / ".out.xlmr-partial-999999999")
    (tmp_path / ".out.xlmr-partial-999999998").write_text("a file, not a folder")
    r = cli("convert", fixture("preln"), tmp_path / "out", "--no-verify")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("removed") == 2 and leftovers(tmp_path) == []
    assert (precious / "keep.txt").read_text() == "keep"
