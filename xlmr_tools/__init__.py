"""xlmr-tools: fairseq XLM-RoBERTa checkpoints -> Hugging Face transformers folders, proven exact.

Python API (the CLI is a thin layer over these):
    convert(src, out, head=None, dtype="auto", ...) -> ConvertResult
    inspect_path(path) -> InspectReport
    verify(src, hf_folder, head=None, ...) -> VerifyReport
    diff(a, b, tol=0.0, outputs=False, ...) -> DiffReport
"""

import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Loaded on first use: `xlmr --help` and the CLI's early start on hashing must not wait ~2 s for torch.
_EXPORTS = {
    "convert": "convert", "ConvertResult": "convert", "diff": "diff", "DiffReport": "diff",
    "BadInput": "errors", "VerificationFailed": "errors", "XlmrError": "errors",
    "inspect_path": "inspect_model", "InspectReport": "inspect_model", "verify": "verify", "VerifyReport": "verify",
}

__all__ = ["BadInput", "ConvertResult", "DiffReport", "InspectReport", "VerificationFailed", "VerifyReport",
           "XlmrError", "convert", "diff", "inspect_path", "verify", "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """`xlmr_tools.convert` stays the function when the submodule of the same name is imported first."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from .convert import ConvertResult, convert
    from .diff import DiffReport, diff
    from .errors import BadInput, VerificationFailed, XlmrError
    from .inspect_model import InspectReport, inspect_path
    from .verify import VerifyReport, verify
