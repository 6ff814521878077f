"""Loading a checkpoint never runs pickle code: only the globals fairseq checkpoints need are allowed."""

from __future__ import annotations

import argparse
import os

import torch
from conftest import fixture


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(tmp_path, legacy: bool = False):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    good = torch.load(fixture("preln") / "model.pt", weights_only=False)
    good["extra_state"] = {"x": Payload(marker)}
    torch.save(good, path, _use_new_zipfile_serialization=not legacy)
    return path, marker


def test_os_system_payload_refused_by_inspect(cli, tmp_path):
    path, marker = _hostile(tmp_path)
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        (tmp_path / name).write_bytes((fixture("preln") / name).read_bytes())
    r = cli("inspect", path)
    assert r.exit_code == 2
    assert "posix.system" in r.stderr and "--trust-checkpoint" in r.stderr and str(path) in r.stderr
    assert not marker.exists()
    r = cli("convert", tmp_path, tmp_path / "out")
    assert r.exit_code == 2 and not marker.exists() and not (tmp_path / "out").exists()


def test_legacy_payload_refused(cli, tmp_path):
    path, marker = _hostile(tmp_path, legacy=True)
    r = cli("inspect", path)
    assert r.exit_code == 2 and "posix.system" in r.stderr
    assert not marker.exists()


def test_module_import_payload_refused(cli, tmp_path):
    """A pickle that only imports a module-level callable (here shutil.rmtree) is refused by name too."""
    import shutil

    path = tmp_path / "model.pt"
    torch.save({"model": {}, "args": argparse.Namespace(), "x": shutil.rmtree}, path)
    r = cli("inspect", path)
    assert r.exit_code == 2 and "shutil.rmtree" in r.stderr


def test_trust_checkpoint_runs_it_and_says_so_loudly(cli, tmp_path):
    path, marker = _hostile(tmp_path)
    r = cli("inspect", path, "--trust-checkpoint")
    assert "can run code" in r.stderr
    assert marker.exists()  # the documented consequence: that is exactly why it is opt-in


def test_loading_leaves_the_callers_allowed_globals_alone():
    """torch's safe_globals block removes its globals on exit even where the caller had allowed them: a library
    user's own allow-list must survive our load (found when fairseq's loader ran after ours in one block)."""
    import argparse

    import torch

    from xlmr_tools.sources.fairseq import open_checkpoint

    with torch.serialization.safe_globals([argparse.Namespace]):
        open_checkpoint(fixture("postln_legacy"))
        assert argparse.Namespace in torch.serialization.get_safe_globals()
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
