"""Exceptions the CLI maps to one-line messages and documented exit codes (0 ok, 1 check failed, 2 bad input,
70 internal error, 130 Ctrl-C, 143 SIGTERM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # a bug in xlmr-tools (sysexits' EX_SOFTWARE), never a verdict on the input
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM (timeout, container stop, batch scheduler): 128 + 15


class XlmrError(Exception):
    """An error with a path and a one-line problem; `exit_code` is what the CLI returns."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def naming(self, path: str | Path) -> XlmrError:
        """This error, naming `path` instead: a reader was given another name for the same file (/proc/self/fd/N
        of a file opened once, io/opened.py), and the user knows it by theirs."""
        self.path = str(path)
        self.args = (f"{self.path}: {self.problem}",)
        return self


class BadInput(XlmrError):
    """The input is missing, malformed, unsupported or unsafe (exit 2)."""


class UnsafeCheckpoint(BadInput):
    """The checkpoint's pickle asks for a global outside the allowlist (exit 2)."""

    def __init__(self, path: str | Path, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(
            path,
            f"refusing to load: the pickle needs the global '{global_name}', which is not on the allowlist of "
            "what fairseq checkpoints need (it could run code); pass --trust-checkpoint only if you trust the file",
        )


class VerificationFailed(XlmrError):
    """A comparison ran and found differences above tolerance (exit 1). `result`: the operation's report as far as
    it got (convert's ConvertResult, with `failures`), so a caller can still show the table, the JSON and the
    report of a run that published nothing."""

    exit_code = EXIT_FAILED

    def __init__(self, path: str | Path | None, problem: str, result: Any = None) -> None:
        super().__init__(path, problem)
        self.result = result


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so every cleanup path for an interrupt runs (exit 143)."""
