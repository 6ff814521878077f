"""`--device cuda` for real: these run only where torch sees a CUDA device (benchmarks/gpu_check.sh runs them on a
GPU machine; last run: docs/benchmarks.md, "GPU check"); on a CPU-only machine the clear refusal is tested in
test_verify_diff.py."""

from __future__ import annotations

import pytest
import torch
from conftest import fixture

from xlmr_tools import verify

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CASES = [
    ("postln_legacy", None),
    ("postln_untied", None),
    ("preln", None),
    ("preln_heads", "mnli"),
    ("preln_heads", "sentence_classification_head"),
    ("preln_fp16", None),
]


@needs_cuda
@pytest.mark.parametrize(("name", "head"), CASES)
def test_verify_on_cuda_agrees_with_cpu(converted, name, head):
    folder = converted[name if head is None else f"{name}:{head}"]
    cpu = verify(fixture(name), folder, head=head)
    gpu = verify(fixture(name), folder, head=head, device="cuda")
    assert cpu.ok and gpu.ok, gpu.failures()
    assert [r.stage for r in gpu.outputs.rows] == [r.stage for r in cpu.outputs.rows]
    for g in gpu.outputs.rows:
        assert g.max_abs <= g.tol, g  # fairseq and transformers on the GPU agree as they do on the CPU


@needs_cuda
def test_verify_on_cuda_in_reduced_precision(converted):
    for dtype in ("float16", "bfloat16"):
        report = verify(fixture("preln"), converted["preln"], dtype=dtype, device="cuda")
        assert report.ok and report.outputs.dtype == dtype, report.failures()


@needs_cuda
def test_diff_outputs_on_cuda(cli, converted):
    r = cli(
        "diff", fixture("preln_heads"), converted["preln_heads:mnli"], "--head", "mnli", "--outputs", "--device", "cuda"
    )
    assert r.exit_code == 0, r.output
    assert "equal within tolerance" in r.stdout


def test_cuda_fp32_default_tolerance_is_documented_and_only_for_cuda():
    """Runs everywhere: the default tolerance depends on where the models run, not only on the dtype."""
    from xlmr_tools.compare.stages import default_tol

    assert default_tol(torch.float32) == 1e-5 and default_tol(torch.float32, "cuda") == 1e-4
    assert default_tol(torch.bfloat16, "cuda") == default_tol(torch.bfloat16) == 1.5e-1
