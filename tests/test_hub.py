"""Hugging Face repo ids for inspect, verify and diff, resolved by huggingface_hub from a real hub cache laid out as
huggingface_hub lays it out (blobs by hash, snapshots of symlinks, refs), offline: no network is touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import error_lines, fixture
from safetensors.torch import load_file, save_file

REPO = "someone/xlmr-xl-test"
MAIN = "1" * 40
V1 = "2" * 40


def _commit(repo: Path, folder: Path, commit: str, ref: str) -> None:
    """One revision in huggingface_hub's cache layout: content-addressed blobs, a snapshot of relative symlinks."""
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / digest
        blob.parent.mkdir(exist_ok=True)
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / f.name)


@pytest.fixture
def hub_cache(tmp_path, converted, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    _commit(repo, converted["preln"], MAIN, "main")
    changed = tmp_path / "changed"
    shutil.copytree(converted["preln"], changed)
    weights = load_file(str(changed / "model.safetensors"))
    weights["roberta.encoder.layer.1.intermediate.dense.weight"] += 0.01
    save_file(weights, str(changed / "model.safetensors"), metadata={"format": "pt"})
    _commit(repo, changed, V1, "v1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_the_cache_is_what_huggingface_hub_reads(hub_cache):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub_cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and {r.commit_hash for r in repo.revisions} == {MAIN, V1}


def test_inspect_verify_and_diff_take_a_repo_id(cli, hub_cache):
    r = cli("inspect", REPO, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["description"]["family"] == "pre-ln"
    r = cli("verify", fixture("preln"), REPO, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ok"] and data["folder"] == REPO
    assert cli("diff", fixture("preln"), REPO, "-q").exit_code == 0


def test_revision_selects_a_branch_or_commit(cli, hub_cache, converted):
    r = cli("verify", fixture("preln"), REPO, "--revision", "v1", "-q")
    assert r.exit_code == 1 and "layer 1" in r.stderr and f"{REPO}@v1" in r.stderr
    r = cli("diff", converted["preln"], REPO, "--revision", V1, "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["failures"][0].startswith("roberta.encoder.layer.1.intermediate.dense.weight")


@pytest.mark.parametrize(
    "args,named",
    [
        (["inspect", "someone/not-cached"], "HF_HUB_OFFLINE"),
        (["verify", str(fixture("preln")), REPO, "--revision", "nope"], "HF_HUB_OFFLINE"),
        (["inspect", str(fixture("preln")), "--revision", "v1"], "--revision applies to a Hugging Face repo id"),
    ],
)
def test_repo_id_errors_are_one_line(cli, hub_cache, args, named):
    r = cli(*args)
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and named in lines[0]


def test_a_path_that_exists_is_never_taken_for_a_repo_id(tmp_path, monkeypatch, converted):
    from xlmr_tools.sources import hub

    local = tmp_path / "someone" / "local-model"
    shutil.copytree(converted["preln"], local)
    monkeypatch.chdir(tmp_path)
    assert not hub.is_repo_id("someone/local-model") and hub.local("someone/local-model") == Path("someone/local-model")
    assert hub.is_repo_id("facebook/xlm-roberta-xl") and not hub.is_repo_id("a/b/c")
