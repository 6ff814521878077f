"""xlmr-tools: fairseq XLM-RoBERTa checkpoints -> Hugging Face transformers folders, proven exact.

Python API (the CLI is a thin layer over these):
    convert(src, out, head=None, dtype="auto", ...) -> ConvertResult
    inspect_path(path) -> InspectReport
    verify(src, hf_folder, head=None, ...) -> VerifyReport
    diff(a, b, tol=0.0, outputs=False, ...) -> DiffReport
"""

__version__ = "0.1.0"

from .convert import ConvertResult, convert  # noqa: E402
from .diff import DiffReport, diff  # noqa: E402
from .errors import BadInput, VerificationFailed, XlmrError  # noqa: E402
from .inspect_model import InspectReport, inspect_path  # noqa: E402
from .verify import VerifyReport, verify  # noqa: E402

__all__ = ["BadInput", "ConvertResult", "DiffReport", "InspectReport", "VerificationFailed", "VerifyReport",
           "XlmrError", "convert", "diff", "inspect_path", "verify", "__version__"]
