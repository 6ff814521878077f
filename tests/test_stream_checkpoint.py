"""The benchmarks' streaming checkpoint writer (benchmarks/stream_checkpoint.py) writes what fairseq writes.

At 2 layers, fairseq builds the real model, the same seeded values are set in it, and fairseq's own
`Trainer.state_dict()` + `checkpoint_utils.torch_persistent_save` save it; the streamed file (meta-device model,
tensors made one at a time) must equal it record by record — names, offsets, sizes, CRCs and bytes — except torch's
random serialization id, load identically in fairseq, and convert to identical folders.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import torch
from conftest import fixture

from benchmarks import stream_checkpoint
from tests.fixtures import make_fixtures
from xlmr_tools import convert

DIMS = make_fixtures.dims(2, 64, 128, 4)


def _fairseq_save(folder: Path, out: Path) -> None:
    from fairseq import checkpoint_utils
    from fairseq.trainer import Trainer

    _, cfg, task, model = make_fixtures.build_model(folder, "roberta_prenorm", [], seed=None, dims=DIMS)
    seen: set[int] = set()
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, p in model.state_dict(keep_vars=True).items():
            if id(p) in seen or name in buffers:  # the tied LM head takes the embedding's values
                continue
            seen.add(id(p))
            p.copy_(stream_checkpoint.values(name, tuple(p.shape), p.dtype))
    state = Trainer(cfg, task, model, task.build_criterion(cfg.criterion)).state_dict()
    state["extra_state"] = {"epoch": 1, "val_loss": None}
    checkpoint_utils.torch_persistent_save(state, str(out))


def _records(path: Path) -> dict[str, tuple[int, int, int, bytes]]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: (i.header_offset, i.file_size, i.CRC, z.read(i)) for i in z.infolist()}


def test_streamed_file_is_fairseqs_own_save(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        shutil.copy(fixture("preln") / name, folder / name)
    reference = tmp_path / "fairseq.pt"
    _fairseq_save(folder, reference)
    state, buffers = stream_checkpoint.fairseq_state(folder, "roberta_prenorm", [], DIMS, half=False)
    stream_checkpoint.stream_save(
        state,
        folder / "model.pt",
        lambda n, s, d: buffers[n].to(d) if n in buffers else stream_checkpoint.values(n, s, d),
    )
    ours, theirs = _records(folder / "model.pt"), _records(reference)
    assert list(ours) == list(theirs) and len(ours) > 40
    for name in ours:
        if name.endswith("serialization_id"):
            continue
        assert ours[name] == theirs[name], name
    # fairseq loads both to the same state, and xlmr converts both to the same folder
    import argparse

    from fairseq import checkpoint_utils

    with torch.serialization.safe_globals([argparse.Namespace]):  # fairseq's loader leaves weights_only on
        a = checkpoint_utils.load_checkpoint_to_cpu(str(folder / "model.pt"))
        b = checkpoint_utils.load_checkpoint_to_cpu(str(reference))
    assert a["cfg"] == b["cfg"] and a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    other = shutil.copytree(folder, tmp_path / "other")
    shutil.copy(reference, other / "model.pt")
    convert(folder, tmp_path / "out-a")
    convert(other, tmp_path / "out-b", verify=False)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "out-a" / name).read_bytes() == (tmp_path / "out-b" / name).read_bytes(), name
