"""Help, README and behaviour say one thing: every option each command's `--help` shows is in the README's usage
block for that command (read from the rendered help, so a new option without documentation fails here), choices
are shown as `[auto|float32|float16|bfloat16]`, and the defaults the help states are the ones the code applies.
Also the conventions of huggingface_hub's `hf`: -h, `python -m`, `version`/-V and shell completion."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import xlmr_script
from typer.testing import CliRunner

from xlmr_tools._version import __version__
from xlmr_tools.cli.app import app

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = ["inspect", "convert", "verify", "diff"]
CHOICES = "auto|float32|float16|bfloat16"
WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def _help(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    return r.stdout


def _options(help_text: str) -> set[str]:
    """Every option the help lists: the first words of each row of its Options panel (`--verify --no-verify`,
    `--quiet -q`, …)."""
    panel = help_text.split("Options")[1]
    found: set[str] = set()
    for line in panel.splitlines():
        cells = line.strip("│ ").split()
        for word in cells:
            if not re.fullmatch(r"--?[a-zA-Z][\w-]*", word):
                break
            found.add(word)
    return found


def _usage(command: str) -> str:
    """The README's usage lines for one command (its `xlmr COMMAND` line and the lines continuing it)."""
    block = README.read_text().split("## Usage\n\n```sh\n")[1].split("```")[0]
    lines, inside = [], False
    for line in block.splitlines():
        if line.startswith("xlmr "):
            inside = line.split()[1] == command if command else line.startswith("xlmr [")
        if inside:
            lines.append(line)
    assert lines, f"no usage line for {command!r} in the README"
    return "\n".join(lines)


@pytest.mark.parametrize("command", [*COMMANDS, ""])
def test_every_option_in_help_is_in_the_readme(command):
    shown = _options(_help(*([command] if command else [])))
    assert {"--help", "-h"} <= shown
    usage = _usage(command)
    missing = sorted(o for o in shown - {"--help", "-h"} if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", usage))
    assert missing == [], f"`xlmr {command} --help` shows options the README's usage omits: {missing}"
    if not command:
        assert "-h/--help" in usage
    documented = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", usage)) - {"-h"}
    assert documented <= shown | {"--help"}, f"README documents options {command} does not have"


@pytest.mark.parametrize("command", ["convert", "verify", "diff"])
def test_choices_are_shown_and_documented(command):
    text = _help(command)
    assert f"[{CHOICES}]" in text
    assert f"--dtype {CHOICES}" in _usage(command)
    if command != "convert":  # convert has no --device: its models run on the CPU
        assert "[cpu|cuda]" in text and "--device cpu|cuda" in _usage(command)
    else:
        assert "--device" not in text and "cuda" not in text.lower()  # --tol's help mentions no device either


def test_dtype_choices_are_the_models_dtypes():
    from xlmr_tools.cli.options import DtypeName
    from xlmr_tools.model import DTYPES

    assert [d.value for d in DtypeName] == ["auto", *DTYPES]


def test_help_states_the_defaults_the_code_applies():
    from xlmr_tools import diff
    from xlmr_tools.compare.stages import CUDA_FP32_TOLERANCE, TOLERANCE

    for command in ("convert", "verify"):
        text = " ".join(_help(command).split())
        for dtype, tol in TOLERANCE.items():
            name = str(dtype).removeprefix("torch.")
            stated = re.search(rf"{name} ([0-9.e-]+)", text)
            assert stated and float(stated.group(1)) == tol, (command, name)
    verify_help = " ".join(_help("verify").split())
    assert float(re.search(r"or ([0-9.e-]+) with --device cuda", verify_help).group(1)) == CUDA_FP32_TOLERANCE
    assert "the folder's" in verify_help.split("--dtype")[1][:200]  # auto runs in the folder's dtype (ops.verify)
    diff_help = " ".join(_help("diff").split())
    assert "[default: auto]" in diff_help.split("--dtype")[1][:300]
    assert inspect.signature(diff).parameters["dtype"].default == "auto"
    assert torch.float32 in TOLERANCE


def test_h_is_help_everywhere():
    for command in ["", *COMMANDS]:
        r = CliRunner().invoke(app, [*([command] if command else []), "-h"], env=WIDE)
        assert r.exit_code == 0 and "Usage:" in r.stdout, (command, r.output)


def test_version_three_ways_and_python_m(tmp_path):
    want = f"xlmr-tools {__version__}"
    for argv in (["version"], ["-V"], ["--version"]):
        r = subprocess.run([xlmr_script(), *argv], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == want, (argv, r.stderr)
    r = subprocess.run([sys.executable, "-m", "xlmr_tools", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == want, r.stderr
    r = subprocess.run([sys.executable, "-m", "xlmr_tools", "inspect", str(tmp_path / "nope")], capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 2 and "no such file" in r.stderr and "Usage: xlmr" not in r.stderr


def test_shell_completion_completes_commands_and_options():
    """What the installed completion script asks the program (bash's protocol, as `--show-completion` prints it)."""
    env = dict(os.environ, _XLMR_COMPLETE="complete_bash", COMP_WORDS="xlmr co", COMP_CWORD="1")
    r = subprocess.run([xlmr_script()], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["convert"], r.stderr
    env.update(COMP_WORDS="xlmr verify --to", COMP_CWORD="2")
    r = subprocess.run([xlmr_script()], capture_output=True, text=True, env=env)
    assert set(r.stdout.split()) == {"--tol", "--token"}, r.stdout
    r = subprocess.run([xlmr_script(), "--show-completion", "bash"], capture_output=True, text=True)
    assert r.returncode == 0 and "_XLMR_COMPLETE" in r.stdout
