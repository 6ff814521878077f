"""A fairseq checkpoint against an HF folder, output by output: the folder's tokenizer against fairseq's encoder,
then every stage streamed (compare/streamed.py) with fairseq's own model on one side and the folder's, as AutoModel*
loads it, on the other."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from xlmr_tools.compare.fairseq_runner import FairseqRunner
from xlmr_tools.compare.hf_runner import HFRunner
from xlmr_tools.compare.oracle import FairseqOracle
from xlmr_tools.compare.stages import OutputReport, default_tol
from xlmr_tools.compare.streamed import compare_streamed
from xlmr_tools.compare.texts import dictionary_texts
from xlmr_tools.compare.tokenizer import TokenizerCheck, check_tokenizer, expected_tokenizer
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.mapping.tokenizer import Alignment
from xlmr_tools.sources.fairseq import FairseqCheckpoint
from xlmr_tools.sources.hf import HFFolder
from xlmr_tools.sources.loaded import LoadedModel


def compare_outputs_streamed(
    ckpt: FairseqCheckpoint,
    folder: HFFolder,
    head: str | None,
    loaded: LoadedModel | None,
    dtype: torch.dtype,
    texts: list[str],
    tol: float | None,
    device: str = "cpu",
    on_stage: Callable[[str], None] = lambda s: None,
    language: str | None = None,
    on_loaded: Callable[[str], None] = lambda s: None,
    ahead: ReadAhead | None = None,
    ahead_layers: bool = True,
    alignment: Alignment | None = None,
    reference_tokenizer: bool = True,
) -> tuple[TokenizerCheck | None, OutputReport]:
    """fairseq vs an HF folder, one module at a time (memory does not grow with the model); the folder's side as
    AutoModel* loads it (`loaded`, see HFRunner). The tokenizer is compared when the folder has one (None
    otherwise). X-MOD: every text through `language`'s adapters, or, by default, every language's adapters run
    (compare_streamed). `alignment`: the checkpoint's dict.txt against its subword model (aligned here when not
    given); `reference_tokenizer`: also compare the folder's tokenizer, whole, with the one the dictionary implies
    (convert's own is that one)."""
    oracle = FairseqOracle(ckpt, dtype, materialize=False)
    tok_check = None
    if folder.tokenizer_file_names():
        on_stage("tokenizer")
        if alignment is None:
            alignment = ckpt.alignment()
        with contextlib.ExitStack() as stack:
            expected = (
                stack.enter_context(expected_tokenizer(alignment, ckpt.description.max_positions))
                if reference_tokenizer
                else None
            )
            tok_check = check_tokenizer(oracle, folder.path, texts, dictionary_texts(alignment), expected)
    ids = [oracle.encode(t) for t in texts]
    tolerance = tol if tol is not None else default_tol(dtype, device)
    report = compare_streamed(
        FairseqRunner(oracle, dtype, device, head),
        HFRunner(folder, dtype, device, head, loaded),
        ids,
        oracle.dictionary.pad(),
        tolerance,
        dtype,
        on_stage=on_stage,
        languages=[language] if language is not None else None,
        on_loaded=on_loaded,
        ahead=ahead,
        ahead_layers=ahead_layers,
    )
    return tok_check, report
