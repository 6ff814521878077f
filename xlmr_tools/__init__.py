"""xlmr-tools: fairseq XLM-RoBERTa checkpoints -> Hugging Face transformers folders, proven exact.

Python API (api.py; the CLI is a thin layer over the same operations):
    convert(src, out, head=None, dtype="auto", ...) -> ConvertResult
    inspect_path(path) -> InspectReport
    verify(src, hf_folder, head=None, ...) -> VerifyReport
    diff(a, b, tol=0.0, outputs=False, ...) -> DiffReport

The names are resolved on first use (PEP 562): `xlmr --help` and the CLI's early start on hashing the source must
not wait ~2 s for torch, which the operations import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from xlmr_tools._version import __version__

_EXPORTS = {
    "convert": "api",
    "ConvertResult": "ops.convert",
    "diff": "api",
    "DiffReport": "ops.diff",
    "inspect_path": "api",
    "InspectReport": "ops.inspect",
    "verify": "api",
    "VerifyReport": "ops.verify",
    "BadInput": "errors",
    "VerificationFailed": "errors",
    "XlmrError": "errors",
}

__all__ = [
    "BadInput",
    "ConvertResult",
    "DiffReport",
    "InspectReport",
    "VerificationFailed",
    "VerifyReport",
    "XlmrError",
    "__version__",
    "convert",
    "diff",
    "inspect_path",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from xlmr_tools.api import convert, diff, inspect_path, verify
    from xlmr_tools.errors import BadInput, VerificationFailed, XlmrError
    from xlmr_tools.ops.convert import ConvertResult
    from xlmr_tools.ops.diff import DiffReport
    from xlmr_tools.ops.inspect import InspectReport
    from xlmr_tools.ops.verify import VerifyReport
