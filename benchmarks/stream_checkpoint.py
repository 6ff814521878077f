"""Write a fairseq checkpoint of any size — XL-36, XXL-48 — without holding the model: the file fairseq's own
`Trainer.state_dict()` + `checkpoint_utils.torch_persistent_save` would write, byte for byte (all but torch's random
serialization id), with seeded values generated one tensor at a time.

How: fairseq builds the model on the meta device (its parser, task, registry and `build_model`; no memory), fairseq's
`Trainer.state_dict()` gives the object it saves (cfg, model state, optimizer history, ...), and torch's own zip
writer (`torch._C.PyTorchFileWriter`, as `torch.save` drives it) writes it: the pickle as `torch.save` pickles
tensors, then each storage's bytes, generated when its record is written and freed after. Peak memory is the
largest tensor (the embedding: 2.6 GB at XL fp32, 4.1 GB at XXL). tests/test_stream_checkpoint.py proves the layout
at 2 layers: the streamed file equals fairseq's own save of the same values, record by record.

    .venv/bin/python -m benchmarks.stream_checkpoint OUT --preset xl --layers 36 [--dtype float16]
"""

from __future__ import annotations

import argparse
import collections
import io
import logging
import os
import pickle
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent

# Real XLM-R sizes: (hidden, ffn, heads), 250,880 rows (dict.txt padded with madeupword fillers, as the releases).
PRESETS = {"xl": (2560, 10240, 32), "xxl": (4096, 16384, 32)}
ROWS = 250_880


def values(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Seeded values for one tensor, by its name alone (so any layer count gives the same layer k): norm weights
    around 1, biases around 0.05, matrices N(0, 0.02) — far from 1/0, small enough to keep 48 layers finite. Made in
    row blocks straight into the tensor, so the peak is the tensor itself (in its dtype) and one block."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    out = torch.empty(shape, dtype=dtype)
    rows = out.view(-1, shape[-1]) if len(shape) > 1 else out.view(1, -1)
    for start in range(0, rows.shape[0], 4096):
        block = torch.empty(rows[start : start + 4096].shape)
        if name.endswith("weight") and len(shape) == 1:
            block.uniform_(0.6, 1.4, generator=g)
        elif name.endswith("bias"):
            block.uniform_(-0.15, 0.25, generator=g)
        else:
            block.normal_(0.0, 0.02, generator=g)
        rows[start : start + 4096] = block
    return out


def fairseq_state(folder: Path, arch: str, args: list[str], dims: list[str], half: bool) -> tuple[dict, dict]:
    """(the object fairseq's Trainer.state_dict() returns for this model, built on the meta device; the real values
    of its buffers). `folder` holds dict.txt (the task reads it)."""
    from fairseq.trainer import Trainer

    from tests.fixtures import make_fixtures
    from xlmr_tools.compare.oracle import _meta_safe_init

    logging.disable(logging.WARNING)
    with torch.device("meta"), _meta_safe_init():
        _, cfg, task, model = make_fixtures.build_model(folder, arch, args, seed=None, dims=dims)
    # The Trainer moves its model to the CPU when built, which a meta model cannot do: it is built around a
    # one-layer real model of the same architecture, then given the meta model before anything reads it.
    _, _, _, small = make_fixtures.build_model(folder, arch, [], seed=None, dims=make_fixtures.dims(1, 8, 16, 2))
    trainer = Trainer(cfg, task, small, task.build_criterion(cfg.criterion))
    if half:
        model.half()
    trainer._model, trainer._wrapped_model = model, None
    state = trainer.state_dict()
    state["extra_state"] = {"epoch": 1, "val_loss": None}  # as tests/fixtures/make_fixtures.save_checkpoint
    buffers = {n: b for n, b in small.state_dict().items() if n in dict(model.named_buffers())}
    return state, buffers


class _Storage:
    """A storage in the pickle: what torch.save's persistent_id writes for a tensor's TypedStorage."""

    def __init__(self, key: str, dtype: torch.dtype, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


_CPU = "cpu"  # torch's location_tag returns one constant string: the pickle memoizes it, as here
_STORAGE = "storage"


def stream_save(state: dict, path: Path, make: Callable[[str, tuple[int, ...], torch.dtype], torch.Tensor]) -> None:
    """torch.save(state, open(path, "wb")) as fairseq calls it, with every tensor's bytes made by `make(name, shape,
    dtype)` when its record is written. Tensors sharing a storage (a tied LM head) are one record, made from the
    first name. torch's writer given a Python file object copies each record into a Python bytes object (measured:
    8 GB peak for XL's 2.6 GB embedding), so it writes to a path — named `archive`, the name torch gives the zip's
    root folder for a file object, as fairseq's save has it — renamed to `path` after."""
    storages: dict[int, _Storage] = {}
    first_name: dict[str, tuple[str, tuple[int, ...], torch.dtype]] = {}
    names = {id(t): n for n, t in state["model"].items()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, _Storage):
                storage_type = getattr(torch, torch.empty(0, dtype=obj.dtype)._typed_storage()._pickle_storage_type())
                return (_STORAGE, storage_type, obj.key, _CPU, obj.numel)
            return None

        def reducer_override(self, obj: Any) -> Any:
            if not isinstance(obj, torch.Tensor):
                return NotImplemented
            ref = obj.untyped_storage()._cdata
            if ref not in storages:
                storages[ref] = _Storage(str(len(storages)), obj.dtype, obj.numel())
                first_name[storages[ref].key] = (names[id(obj)], tuple(obj.shape), obj.dtype)
            backward_hooks: dict = collections.OrderedDict()
            args = (storages[ref], obj.storage_offset(), tuple(obj.size()), obj.stride(), obj.requires_grad)
            return torch._utils._rebuild_tensor_v2, (*args, backward_hooks)

    data = io.BytesIO()
    Pickler(data, protocol=2).dump(state)  # torch.save's default protocol
    staging = path.parent / f".stream-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    writer = torch._C.PyTorchFileWriter(
        str(staging / "archive"), torch.serialization.get_crc32_options(), torch.serialization._get_storage_alignment()
    )
    payload = data.getvalue()
    writer.write_record("data.pkl", payload, len(payload))
    alignment = str(torch.serialization._get_storage_alignment())
    writer.write_record(".format_version", "1", len("1"))
    writer.write_record(".storage_alignment", alignment, len(alignment))
    writer.write_record("byteorder", sys.byteorder, len(sys.byteorder))
    for key, (name, shape, dtype) in first_name.items():
        t = make(name, shape, dtype).contiguous()
        writer.write_record(f"data/{key}", t.untyped_storage(), t.nbytes)
        del t
    writer.write_end_of_file()
    del writer
    os.replace(staging / "archive", path)
    staging.rmdir()


def build(out: Path, preset: str, layers: int, dtype: torch.dtype = torch.float32) -> Path:
    """A release-style folder: model.pt (streamed), dict.txt padded to 250,880 rows, sentencepiece.bpe.model."""
    import sentencepiece

    from tests.fixtures import make_fixtures

    hidden, ffn, heads = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    spm = out / "sentencepiece.bpe.model"
    make_fixtures.train_sentencepiece(spm)
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(spm)).get_piece_size()
    make_fixtures.write_dict(spm, out / "dict.txt", 1)
    with open(out / "dict.txt", "a") as f:  # pad like the XL release: madeupwordNNNN up to 250,880 rows
        f.writelines(f"madeupword{i:04d} 0\n" for i in range(ROWS - 4 - 1 - (pieces - 3)))
    dims = make_fixtures.dims(layers, hidden, ffn, heads)
    state, buffers = fairseq_state(out, "roberta_prenorm", [], dims, dtype == torch.float16)
    make = lambda n, s, d: buffers[n].to(d) if n in buffers else values(n, s, d)
    stream_save(state, out / "model.pt", make)
    return out / "model.pt"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("out", type=Path)
    cli.add_argument("--preset", choices=sorted(PRESETS), default="xl")
    cli.add_argument("--layers", type=int, default=36)
    cli.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    a = cli.parse_args()
    path = build(a.out, a.preset, a.layers, getattr(torch, a.dtype))
    print(f"{path}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
