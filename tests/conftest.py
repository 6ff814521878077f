"""Shared test helpers: the committed fairseq fixtures, a CLI runner, and small file factories."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from xlmr_tools.cli.app import app

FIXTURES = Path(__file__).parent / "fixtures"
ALL = ["postln_legacy", "postln_untied", "preln", "preln_heads", "preln_fp16"]
# Training configurations users have (tests/test_configurations.py); no recorded outputs: fairseq runs live.
CONFIGURATIONS = [
    "cfg_head_inner_dim",
    "cfg_layers_to_keep",
    "cfg_scaled_embedding",
    "cfg_in_proj",
    "cfg_dictconfig",
    "cfg_gelu_accurate",
    "cfg_tanh",
    "cfg_linear",
    "cfg_spectral_norm",
    "cfg_sinusoidal",
    "cfg_no_positions",
    "cfg_position_rows",
    "cfg_sentence_prediction",
    "cfg_frequency_dict",
    "cfg_frequency_dict_missing",
    "other_transformer_lm",  # another fairseq model, for the refusal that names it
]
# The rest of fairseq's RoBERTa family (tests/test_families.py); no recorded outputs: fairseq runs live.
FAMILIES = ["roberta_gpt2", "roberta_gpt2_missing", "roberta_gpt2_untied", "camembert", "xmod_base",
            "xmod_large_prenorm"]  # fmt: skip
CONFIGURATIONS += FAMILIES


def fixture(name: str) -> Path:
    return FIXTURES / name


def reference(name: str) -> dict:
    return torch.load(FIXTURES / name / "reference.pt", weights_only=True)


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | os.PathLike):
        return self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Each fixture converted once per session (masked-LM head; both heads for preln_heads)."""
    from xlmr_tools import convert

    root = tmp_path_factory.mktemp("converted")
    out: dict[str, Path] = {}
    for name in ALL:
        out[name] = root / name
        convert(fixture(name), out[name])
    for head in ("mnli", "sentence_classification_head"):
        out[f"preln_heads:{head}"] = root / f"preln_heads-{head}"
        convert(fixture("preln_heads"), out[f"preln_heads:{head}"], head=head)
    return out


def copy_fixture(name: str, dest: Path) -> Path:
    shutil.copytree(fixture(name), dest)
    return dest


def xlmr_script() -> str:
    """The installed `xlmr` console script: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "xlmr"
    found = str(beside) if beside.exists() else shutil.which("xlmr")
    assert found, "the xlmr console script is not installed"
    return found


PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\d+s\] ")  # plain progress lines (stderr not a terminal)


def error_lines(stderr: str) -> list[str]:
    """stderr without progress lines, notes and warnings: what the one-line error promise is about."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("warning:", "note:")) and not PROGRESS_LINE.match(line)
    ]


def raise_terminated(signum, frame):
    """SIGTERM's handler as the CLI installs it."""
    from xlmr_tools.errors import Terminated

    raise Terminated()


@pytest.fixture
def sigterm_handler():
    """Set SIGTERM's handler for a test; the one before is put back."""
    before = signal.getsignal(signal.SIGTERM)
    yield lambda handler: signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGTERM, before)


@pytest.fixture
def sigterm_raises(sigterm_handler):
    """SIGTERM's handler raises Terminated, as the CLI's does, for one test."""
    sigterm_handler(raise_terminated)


@pytest.fixture
def sigterm_inside_start(monkeypatch, sigterm_raises):
    """arm(prefix): SIGTERM reaches this process inside the start of the first thread named prefix..., after the
    thread runs and before its pool has recorded it (the moment a real signal can land: Thread.start waits for the
    new thread). arm returns the list of threads it fired in."""
    real = threading.Thread.start
    fired: list[str] = []

    def arm(prefix: str) -> list[str]:
        def start(self):
            real(self)
            if self.name.startswith(prefix) and not fired:
                fired.append(self.name)
                signal.raise_signal(signal.SIGTERM)  # its handler runs here, in the main thread

        monkeypatch.setattr(threading.Thread, "start", start)
        return fired

    return arm


def leftovers(folder: Path) -> list[str]:
    """Temporary folders our writer could leave behind."""
    return [p.name for p in folder.iterdir() if ".xlmr-partial-" in p.name]


def pytest_terminal_summary(terminalreporter):
    """The bad-input suite's counts, as it ran (quoted in docs/reliability.md)."""
    import sys

    suite = sys.modules.get("test_bad_inputs")
    if suite is not None and suite.TALLY["inputs"]:
        terminalreporter.write_line(suite.summary())
