"""Bad input: one stderr line naming the path and the problem, exit 2, no traceback (unless --debug)."""

from __future__ import annotations

import pytest
from conftest import error_lines, fixture


def _one_line_error(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_path(cli, tmp_path):
    _one_line_error(cli("inspect", tmp_path / "nope"), str(tmp_path / "nope"), "no such file")


def test_directory_without_checkpoint(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(cli("inspect", tmp_path), str(tmp_path), "no fairseq checkpoint")


@pytest.mark.parametrize("cut", [10, 1000, 100_000, -100])
def test_truncated_checkpoint(cli, tmp_path, cut):
    data = (fixture("preln") / "model.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes(data[:cut])
    _one_line_error(cli("inspect", bad), str(bad))


def test_truncated_legacy_checkpoint(cli, tmp_path):
    data = (fixture("postln_legacy") / "model.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes(data[: len(data) // 2])
    _one_line_error(cli("inspect", bad), str(bad), "truncated or corrupt")


def test_text_file_named_model_pt(cli, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("this is not a checkpoint\n")
    _one_line_error(cli("inspect", bad), str(bad), "text file")


def test_empty_file(cli, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"")
    _one_line_error(cli("inspect", bad), "empty file")


def test_hf_folder_without_config(cli, converted, tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((converted["preln"] / "model.safetensors").read_bytes())
    _one_line_error(cli("inspect", folder), str(folder), "no config.json")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_traceback_and_keeps_the_exit_code(tmp_path, where):
    """--debug before or after the command (the internal-error text asks users to rerun with it): the traceback,
    then the one-line error and bad input's own exit code 2, not "internal error" (70)."""
    import subprocess

    from conftest import xlmr_script

    args = ["inspect", str(tmp_path / "nope")]
    argv = ["--debug", *args] if where == "before" else [*args, "--debug"]
    r = subprocess.run([xlmr_script(), *argv], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "Traceback" in r.stderr and "BadInput" in r.stderr and "internal error" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "no such file" in r.stderr


def test_error_while_unwinding_ctrl_c_is_still_an_interrupt(monkeypatch):
    """Seen once in a clean-clone run of test_sigint_exits_130_cleanly: Ctrl-C landed inside a lock wait and the
    unwinding raised "release unlocked lock"; that is still the user's interrupt (130), not an unexpected error."""
    import typer

    from xlmr_tools.cli import console

    monkeypatch.setitem(console.DEBUG, "on", False)  # an earlier --debug run in this process leaves it on
    with pytest.raises(typer.Exit) as exc, console.errors_to_exit():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("release unlocked lock") from None
    assert exc.value.exit_code == 130
    with pytest.raises(typer.Exit) as exc, console.errors_to_exit():
        raise RuntimeError("release unlocked lock")
    assert exc.value.exit_code == 70  # a bug: the internal-error code, not bad input
