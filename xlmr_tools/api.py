"""The public Python API: convert, verify, diff and inspect_path with keyword options, as the README shows. Each
bundles its keywords once (settings.Settings, Assets, HubAccess) and runs the operation with them, as the CLI does
with its options; the options mean what the CLI's flags of the same names mean (cli/options.py has their help).
"""

from __future__ import annotations

from pathlib import Path

from xlmr_tools.io.digest import SourceDigest
from xlmr_tools.ops import convert as convert_op
from xlmr_tools.ops import diff as diff_op
from xlmr_tools.ops import inspect as inspect_op
from xlmr_tools.ops import verify as verify_op
from xlmr_tools.progress import Progress
from xlmr_tools.settings import Assets, HubAccess, Settings


def convert(
    src: str | Path,
    out: str | Path,
    *,
    head: str | None = None,
    dtype: str = "auto",
    max_shard_size: str | int = "5GB",
    verify: bool = True,
    force: bool = False,
    trust: bool = False,
    dict_path: str | Path | None = None,
    spm_path: str | Path | None = None,
    encoder_json: str | Path | None = None,
    vocab_bpe: str | Path | None = None,
    labels: str | Path | None = None,
    accept_missing_pieces: bool = False,
    language: str | None = None,
    texts: list[str] | None = None,
    tol: float | None = None,
    progress: Progress | None = None,
    report: str | Path | None = None,
    ema: bool = False,
    digest: SourceDigest | None = None,
) -> convert_op.ConvertResult:
    """Convert a fairseq checkpoint into a verified HF folder at `out` (ops.convert.convert); raises
    VerificationFailed (OUT not written) or BadInput."""
    settings = Settings(head=head, dtype=dtype, tol=tol, texts=texts, language=language, trust=trust, ema=ema)
    assets = Assets(_path(dict_path), _path(spm_path), _path(encoder_json), _path(vocab_bpe), _path(labels))
    return convert_op.convert(
        src, out, settings, assets, max_shard_size=max_shard_size, verify=verify, force=force,
        accept_missing_pieces=accept_missing_pieces, progress=progress, report=report, digest=digest,
    )  # fmt: skip


def verify(
    src: str | Path,
    hf_folder: str | Path,
    *,
    head: str | None = None,
    texts: list[str] | None = None,
    tol: float | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    trust: bool = False,
    dict_path: str | Path | None = None,
    spm_path: str | Path | None = None,
    encoder_json: str | Path | None = None,
    vocab_bpe: str | Path | None = None,
    labels: str | Path | None = None,
    revision: str | None = None,
    language: str | None = None,
    ema: bool = False,
    progress: Progress | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> verify_op.VerifyReport:
    """A fairseq checkpoint against an HF folder or Hub repo id (ops.verify.verify)."""
    settings = Settings(head, dtype, device, tol, texts, language=language, trust=trust, ema=ema)
    assets = Assets(_path(dict_path), _path(spm_path), _path(encoder_json), _path(vocab_bpe), _path(labels))
    hub_access = HubAccess(revision, token, _path(cache_dir))
    return verify_op.verify(src, hf_folder, settings, assets, hub_access, progress=progress)


def diff(
    a: str | Path,
    b: str | Path,
    *,
    head: str | None = None,
    tol: float = 0.0,
    outputs: bool = False,
    texts: list[str] | None = None,
    output_tol: float | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    trust: bool = False,
    revision: str | None = None,
    progress: Progress | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> diff_op.DiffReport:
    """Two models, fairseq or HF, any mix (ops.diff.diff)."""
    settings = Settings(head=head, dtype=dtype, device=device, tol=tol, texts=texts, trust=trust)
    hub_access = HubAccess(revision, token, _path(cache_dir))
    return diff_op.diff(a, b, settings, hub_access, outputs=outputs, output_tol=output_tol, progress=progress)


def inspect_path(
    path: str | Path,
    *,
    trust: bool = False,
    with_tensors: bool = False,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> inspect_op.InspectReport:
    """What a checkpoint, HF folder or Hub repo id is, without reading its tensors (ops.inspect.inspect_path)."""
    hub_access = HubAccess(revision, token, _path(cache_dir))
    return inspect_op.inspect_path(path, trust=trust, with_tensors=with_tensors, hub_access=hub_access)


def _path(given: str | Path | None) -> Path | None:
    return Path(given) if given is not None else None
