"""The model card's sha256 is of the bytes converted, whatever the source's path names meanwhile.

Each case runs the real conversion on a committed fairseq fixture; the races are real file-system operations, made
at a fixed point of the conversion by wrapping one of our own functions (never torch, transformers or fairseq)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import copy_fixture, leftovers

from xlmr_tools.errors import BadInput


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _card_sha256(out: Path) -> str:
    line = next(line for line in (out / "README.md").read_text().splitlines() if "source sha256" in line)
    return line.split("`")[1]


# --- the model card's sha256 is of the bytes converted --------------------------------------------------------------


def _other_checkpoint(a: Path, kind: str) -> bytes:
    """Bytes to put at the source's path while it converts: the same zip with bytes appended (same tensors at the
    same offsets, another sha256), or a checkpoint with other weights."""
    if kind == "appended":
        return a.read_bytes() + b"\0" * 4096
    ck = torch.load(a, weights_only=False)
    for t in ck["model"].values():
        if t.is_floating_point():
            t.add_(1.0)
    out = a.with_name("other.pt")
    torch.save(ck, out)
    assert zipfile.is_zipfile(out)
    data = out.read_bytes()
    out.unlink()
    return data


@pytest.mark.parametrize("kind", ["appended", "other weights"])
@pytest.mark.parametrize("when", ["after opening", "while writing"])
def test_the_card_hashes_the_file_that_was_converted(cli, tmp_path, monkeypatch, kind, when):
    """The source is renamed and another file put at its path during the conversion: the conversion reads, copies
    and hashes the file it opened (a rename gave the card the new file's hash, 3 of 3 trials)."""
    from xlmr_tools.ops import convert as convert_op

    ck = copy_fixture("preln", tmp_path / "ck")
    moved = copy_fixture("preln", tmp_path / "moved") / "model.pt"  # where the source goes, beside its dict.txt
    original = _digest(ck / "model.pt")
    other = _other_checkpoint(ck / "model.pt", kind)
    swapped: list[bool] = []

    def swap() -> None:
        if not swapped:
            (ck / "model.pt").rename(moved)
            (ck / "model.pt").write_bytes(other)
            swapped.append(True)

    if when == "after opening":
        real_take = convert_op.digest_for

        def swap_then_take(*args, **kwargs):
            swap()
            return real_take(*args, **kwargs)

        monkeypatch.setattr(convert_op, "digest_for", swap_then_take)
    else:
        _as_writing_starts(monkeypatch, swap)
    r = cli("convert", ck, tmp_path / "out", "--max-shard-size", "50KB")
    assert swapped and r.exit_code == 0, r.stderr
    assert _card_sha256(tmp_path / "out") == original == _digest(moved)
    from xlmr_tools import verify

    assert verify(moved, tmp_path / "out").ok  # the weights are the opened file's


def _as_writing_starts(monkeypatch, act) -> None:
    """Run `act` in the writer thread as it starts writing the shards (after the checkpoint was opened, its hash
    taken and the plan made)."""
    from xlmr_tools.ops import convert as convert_op

    real = convert_op.write_shards

    def act_then_write(*args, **kwargs):
        act()
        return real(*args, **kwargs)

    monkeypatch.setattr(convert_op, "write_shards", act_then_write)


def test_a_file_changed_in_place_while_converting_fails(tmp_path, monkeypatch):
    """What the hash reads and what torch mapped are one file; a change to its bytes (size or mtime) fails."""
    from xlmr_tools import convert

    ck = copy_fixture("preln", tmp_path / "ck")

    def append() -> None:
        with open(ck / "model.pt", "ab") as f:
            f.write(b"\0")

    _as_writing_starts(monkeypatch, append)
    with pytest.raises(BadInput, match="changed while"):
        convert(ck, tmp_path / "out", verify=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
