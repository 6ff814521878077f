"""Faults during work: SIGKILL, SIGINT, a full disk, hostile checkpoints for every command."""

from __future__ import annotations

import errno
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import typer
from conftest import fixture, leftovers, xlmr_script
from test_safety import Payload


def _default_sigint() -> None:
    # A shell starts background jobs (`make test &`) with SIGINT ignored, children inherit that, and Python keeps an
    # inherited SIG_IGN: the conversion would then rightly ignore our Ctrl-C. Give it the terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_partial(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [xlmr_script(), "convert", str(fixture("preln")), str(out), "--max-shard-size", "50KB"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if leftovers(out.parent):
            return proc
        time.sleep(0.002)
    proc.kill()
    pytest.fail("the conversion never created its temporary folder")


def test_sigkill_leaves_nothing_that_looks_complete_and_next_run_cleans(tmp_path):
    out = tmp_path / "out"
    proc = _start_and_wait_for_partial(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0] == f".out.xlmr-partial-{proc.pid}"  # recognisable: name and dead pid
    r = subprocess.run(
        [xlmr_script(), "convert", str(fixture("preln")), str(out), "--no-verify"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert f"removed {tmp_path / stale[0]}" in r.stderr and "killed" in r.stderr
    assert leftovers(tmp_path) == [] and (out / "model.safetensors").exists()


def test_sigint_exits_130_cleanly(tmp_path):
    out = tmp_path / "out"
    proc = _start_and_wait_for_partial(out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_sigterm_inside_a_workers_start_joins_it_before_the_folder_goes(tmp_path, monkeypatch, sigterm_inside_start):
    """Interrupted inside Thread.start, a pool never records the thread it started: nothing would join the writer,
    and it could create a shard in the folder being removed (CI once found the temporary folder left by SIGTERM)."""
    from xlmr_tools.cli import app as cli_app
    from xlmr_tools.errors import EXIT_TERMINATED
    from xlmr_tools.ops import convert as convert_op

    real = convert_op.write_shards

    def slow(*args, **kwargs):
        time.sleep(0.5)  # the writer starts late: the interrupt unwinds the main thread first
        return real(*args, **kwargs)

    monkeypatch.setattr(convert_op, "write_shards", slow)
    fired = sigterm_inside_start("xlmr-convert")
    out = tmp_path / "out"
    code = cli_app.run(["convert", str(fixture("preln")), str(out), "--max-shard-size", "50KB"])
    assert fired and code == EXIT_TERMINATED
    assert [t.name for t in threading.enumerate() if t.name.startswith("xlmr-convert")] == []  # joined
    assert not out.exists() and leftovers(tmp_path) == []


def test_an_interrupt_as_the_temporary_folder_appears_removes_it(tmp_path, monkeypatch):
    from xlmr_tools.io.atomic_folder import PARTIAL, atomic_folder

    real = Path.mkdir

    def mkdir_then_interrupted(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if PARTIAL in self.name:
            raise KeyboardInterrupt  # a signal handled right after the folder was made

    monkeypatch.setattr(Path, "mkdir", mkdir_then_interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "out", force=False):
        pytest.fail("not reached")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["exchange", "swap"])
def test_an_interrupt_while_publishing_waits_until_out_is_whole(tmp_path, monkeypatch, sigterm_raises, capsys, how):
    """--force over an existing OUT: OUT and the new folder trade places in one renameat2(RENAME_EXCHANGE), or, where
    that is missing, OUT is renamed aside and the new folder renamed in. A signal inside takes effect after the step
    (between the swap's renames OUT would be gone and its old copy hidden, for a later run to remove), and says so."""
    from xlmr_tools.cli.console import errors_to_exit
    from xlmr_tools.errors import EXIT_TERMINATED, Terminated
    from xlmr_tools.interrupts import complete_output
    from xlmr_tools.io import atomic_folder as af

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    if how == "exchange":
        real_rename = af._rename

        def rename_then_signal(src, dst, flags):
            done = real_rename(src, dst, flags)
            assert done, "renameat2 is missing here: the exchange is not tested"
            signal.raise_signal(signal.SIGTERM)
            return done

        monkeypatch.setattr(af, "_rename", rename_then_signal)
    else:
        monkeypatch.setattr(af, "_renameat2", None)  # as where the C library or kernel lacks renameat2
        real = Path.rename

        def path_rename_then_signal(self, target):
            moved = real(self, target)
            if self == out:
                signal.raise_signal(signal.SIGTERM)  # between OUT renamed aside and the new folder renamed in
            return moved

        monkeypatch.setattr(Path, "rename", path_rename_then_signal)
    with pytest.raises(Terminated) as caught, af.atomic_folder(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and leftovers(tmp_path) == []
    assert complete_output(caught.value) == str(out)
    with pytest.raises(typer.Exit) as ended, errors_to_exit():
        raise caught.value
    assert ended.value.exit_code == EXIT_TERMINATED
    assert f"{out} was put in place, which is complete" in capsys.readouterr().err


def test_a_failed_swap_puts_the_old_out_back(tmp_path, monkeypatch):
    from xlmr_tools.errors import BadInput
    from xlmr_tools.io import atomic_folder as af
    from xlmr_tools.io.atomic_folder import atomic_folder

    monkeypatch.setattr(af, "_renameat2", None)  # the swap is the fallback where renameat2 is missing
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real = Path.rename

    def new_one_cannot_go_in(self, target):
        if Path(target) == out and self.name != out.name and "old" not in self.name:
            raise OSError(errno.EBUSY, "busy", str(target))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", new_one_cannot_go_in)
    with pytest.raises(BadInput, match="write failed"), atomic_folder(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"] and leftovers(tmp_path) == []


def test_an_interrupted_html_report_leaves_no_half_page(tmp_path, monkeypatch):
    from xlmr_tools.render import html_report

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(html_report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        html_report.write_html_report(tmp_path / "r.html", "verify", {"ok": True, "source": "x"}, {})
    assert list(tmp_path.iterdir()) == []


def test_disk_full_mid_write(cli, tmp_path, monkeypatch):
    from xlmr_tools.io import safetensors as safetensors_io

    real = safetensors_io._write_all
    calls = {"n": 0}

    def full_disk(f, data):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))
        real(f, data)

    monkeypatch.setattr(safetensors_io, "_write_all", full_disk)
    r = cli("convert", fixture("preln"), tmp_path / "out", "--dtype", "float16", "--max-shard-size", "50KB")
    assert calls["n"] >= 4
    assert r.exit_code == 2 and "disk full while writing" in r.stderr and "partial output was removed" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_parent(cli):
    r = cli("convert", fixture("preln"), "/proc/xlmr-out")
    assert r.exit_code == 2 and "/proc: cannot create folders here" in r.stderr


def _hostile_folder(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        (src / name).write_bytes((fixture("preln") / name).read_bytes())
    good = torch.load(fixture("preln") / "model.pt", weights_only=False)
    good["extra_state"] = {"x": Payload(marker)}
    torch.save(good, src / "model.pt")
    return src, marker


@pytest.mark.parametrize("command", ["inspect", "convert", "verify", "diff", "diff-reversed"])
def test_hostile_checkpoint_never_runs_for_any_command(cli, converted, tmp_path, command):
    src, marker = _hostile_folder(tmp_path)
    argv = {
        "inspect": ["inspect", src],
        "convert": ["convert", src, tmp_path / "out"],
        "verify": ["verify", src, converted["preln"]],
        "diff": ["diff", converted["preln"], src],
        "diff-reversed": ["diff", src, converted["preln"]],
    }[command]
    r = cli(*argv)
    assert r.exit_code == 2 and "posix.system" in r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
