"""CLI conventions a user relies on: help that reads like a normal CLI, progress lines in logs, SIGTERM, and a
distinct exit code for bugs."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest
from conftest import PROGRESS_LINE, fixture, leftovers, xlmr_script
from test_faults import _start_and_wait_for_partial

from xlmr_tools.cli import app as cli_app
from xlmr_tools.errors import EXIT_INTERNAL, EXIT_TERMINATED


def _help(*args: str) -> str:
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1", TERM="dumb")
    r = subprocess.run([xlmr_script(), *args, "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("command", ["", "inspect", "convert", "verify", "diff"])
def test_help_reads_like_a_normal_cli(command):
    text = _help(*([command] if command else []))
    assert "<bool>" not in text and "<str>" not in text and "<path>" not in text, text
    assert not re.search(r"\{\w+\}", text), text  # usage says SRC OUT, not {src} {out}
    if command == "convert":
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert usage.split("Usage:")[1].split() == ["xlmr", "convert", "[OPTIONS]", "SRC", "OUT"]
        assert "fairseq folder (model.pt, dict.txt," in text  # argument help is shown
        assert re.search(r"--json\s+Print the result as JSON", text)
        assert re.search(r"--verify\s+--no-verify", text) and "--labels" in text
    if not command:
        assert "70 internal error" in text and "143 terminated" in text


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    env = dict(os.environ, XLMR_PROGRESS_SECONDS="0")
    r = subprocess.run(
        [xlmr_script(), "convert", str(fixture("preln")), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if PROGRESS_LINE.match(line)]
    assert any("writing safetensors: 100%" in line for line in lines), r.stderr
    assert any("re-reading written tensors: 100%" in line for line in lines)
    assert any("side by side" in line for line in lines)
    assert "\x1b[" not in r.stderr  # no terminal control codes in a log
    quiet = subprocess.run(
        [xlmr_script(), "convert", str(fixture("preln")), str(tmp_path / "q"), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_progress_lines_are_rate_limited(capsys):
    from xlmr_tools.cli.console import PlainProgress

    p = PlainProgress(every=3600)
    advance = p.bar("writing", 1000)
    for _ in range(999):
        advance(1)
    advance(1)
    err = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in err] == ["writing: 0%", "writing: 100% (1.0 kB of 1.0 kB)"]


def test_sigterm_exits_143_cleanly(tmp_path):
    out = tmp_path / "out"
    proc = _start_and_wait_for_partial(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_TERMINATED == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_bug_exits_with_its_own_code_and_says_how_to_report(monkeypatch, capsys):
    from xlmr_tools.cli import console

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(console.DEBUG, "on", False)
    monkeypatch.setattr("xlmr_tools.ops.inspect.inspect_path", broken)  # a bug in the core
    assert cli_app.run(["inspect", str(fixture("preln"))]) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError" in err and "--debug" in err and "Traceback" not in err
    monkeypatch.undo()
    monkeypatch.setitem(console.DEBUG, "on", False)
    monkeypatch.setattr("xlmr_tools.render.terminal.kv_table", broken)  # a bug while rendering the result
    assert cli_app.run(["inspect", str(fixture("preln"))]) == EXIT_INTERNAL
    assert "internal error" in capsys.readouterr().err


def test_diff_accepts_dtype_auto(cli, converted):
    r = cli("diff", converted["preln"], converted["preln"], "--outputs", "--dtype", "auto", "--json")
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(r.stdout)["outputs"]["dtype"] == "float32"


def test_log_bar_shows_error_against_the_tolerance():
    from xlmr_tools.render.terminal import BAR_WIDTH, log_bar

    assert log_bar(0.0, 1e-5) == "·" * 14 + "|·"  # exact: empty, the tolerance marked
    small, at_tol, over = log_bar(1e-12, 1e-5), log_bar(1e-5, 1e-5), log_bar(1.0, 1e-5)
    assert small.count("█") < at_tol.count("█") < over.count("█") == BAR_WIDTH
    assert log_bar(float("nan"), 1e-5) == "█" * BAR_WIDTH and "|" in small


@pytest.mark.parametrize(
    "argv,said",
    [(["convert", "a", "b", "--nonsense"], "No such option"), (["convert"], "Missing argument"),
     (["convert", "a", "b", "--dtype", "fp8"], "'fp8' is not one of"), (["verify", "a", "b", "--tol", "-1"], "x>=0"),
     (["diff", "a", "b", "--device", "tpu"], "'tpu' is not one of")],
)  # fmt: skip
def test_usage_errors_exit_2_not_as_a_bug(capsys, argv, said):
    """click's own usage errors (raised inside the command group, where our error mapping runs) are usage, exit 2,
    with click's message: not an internal error."""
    assert cli_app.run(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "internal error" not in err
