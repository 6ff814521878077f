"""Weight-level proof without fairseq: every written tensor, read back from its shard, equals its source after the
dtype cast, bit for bit, and holds no NaN or Inf.

The source side is the tensor as torch loads it, never the zip offset the writer copied from, so a wrong offset
cannot prove itself right. The check runs in its own thread one tensor behind the shard writer (the bytes of a
written tensor never change: shards are only appended to), so it costs a fraction of the wall time it took
after the writing (docs/benchmarks.md). Each shard's header is then re-read and must place every tensor where it was
checked.

The check also serves the output verification that runs while the shards are written (`tensor`: a tensor's
written bytes once they are proven) and paces the writer (`pace`): it stays at most `ahead` bytes ahead of what
the verification has asked for (`write_ahead`: 1/32 of the memory the process may fill), so under a memory cap
both files' pages are still cached when the forward reads them — read from disk once instead of written, evicted
and read again.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from xlmr_tools.errors import BadInput
from xlmr_tools.io.chunks import iter_chunks
from xlmr_tools.io.libc import libc_function
from xlmr_tools.io.safetensors import SAFETENSORS_NAMES, SafetensorsFile, TensorToWrite

_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
MAX_AHEAD = 1 << 30  # ~3 XL layers of one model: enough that the verification never waits for the writer
MIN_AHEAD = 64 << 20  # under a tiny cap the pages are re-read anyway; below this the writer would stall on each ask


@dataclass(frozen=True)
class Written:
    tensor: TensorToWrite
    path: Path  # the shard file
    offset: int  # where the tensor's bytes begin in that file


class WrittenCheck:
    """Fed by the writer (`put`, then `close`); `run` in a thread returns the first tensor that differs, or None.

    With `ahead` (bytes), the writer calls `pace` before each tensor and a reader takes proven tensors with
    `tensor`; the reader must call `release` when it needs no more (the writer then runs freely to the end)."""

    def __init__(
        self, source: str, on_bytes: Callable[[int], None], stop: threading.Event, ahead: int | None = None
    ) -> None:
        self.source = source
        self.on_bytes = on_bytes
        self.stop = stop
        self.checked: list[Written] = []
        self._queue: queue.SimpleQueue[Written | None] = queue.SimpleQueue()
        self._state = threading.Condition()
        self._proven: dict[str, Written] = {}
        self._ended = False  # the check stopped: finished, found a difference or failed
        self._ahead = ahead
        self._sizes: dict[str, int] = {}  # name -> bytes, of every tensor the writer reached
        self._written = 0  # bytes the writer started
        self._asked: set[str] = set()
        self._asked_bytes = 0
        self._waiting: set[str] = set()  # asked for and not yet proven

    def put(self, written: Written) -> None:
        self._queue.put(written)

    def close(self) -> None:
        self._queue.put(None)

    def run(self) -> str | None:
        try:
            while (w := self._queue.get()) is not None:
                if not self._equal(w):
                    self.stop.set()  # the writer stops at its next chunk: this conversion is lost anyway
                    return w.tensor.name
                self.checked.append(w)
                with self._state:
                    self._proven[w.tensor.name] = w
                    self._waiting.discard(w.tensor.name)
                    self._state.notify_all()
            return None
        except BaseException:
            self.stop.set()
            raise
        finally:
            with self._state:
                self._ended = True
                self._state.notify_all()

    def pace(self, t: TensorToWrite) -> None:
        """Called by the writer before tensor `t`: wait while it is more than `ahead` bytes ahead of what the
        reader asked for — unless the reader waits for a tensor the writer has not reached (then never: no
        deadlock; a tensor it has reached is proven by the check without the writer)."""
        with self._state:
            while (
                self._ahead is not None
                and not self.stop.is_set()
                and all(n in self._sizes for n in self._waiting)
                and self._written - self._asked_bytes > self._ahead
            ):
                self._state.wait(0.5)  # also wakes for `stop`, which is an Event, not this condition
            self._sizes[t.name] = t.nbytes
            self._written += t.nbytes
            if t.name in self._asked:
                self._asked_bytes += t.nbytes

    def tensor(self, name: str) -> torch.Tensor:
        """Tensor `name` as written, once it is proven bit-equal to its source (blocks until then)."""
        with self._state:
            if name not in self._asked:
                self._asked.add(name)
                self._asked_bytes += self._sizes.get(name, 0)  # not reached by the writer yet: `pace` counts it
            if name not in self._proven:
                self._waiting.add(name)
                self._state.notify_all()
            while name not in self._proven:
                if self._ended or self.stop.is_set():
                    raise InterruptedError(f"{name}: the written-tensor check stopped before proving it")
                self._state.wait(0.5)
            w = self._proven[name]
        return read_back(w.path, w.offset, w.tensor.dtype, w.tensor.shape)

    def release(self) -> None:
        """The reader needs no more tensors: the writer runs to the end unpaced."""
        with self._state:
            self._ahead = None
            self._state.notify_all()

    def _equal(self, w: Written) -> bool:
        t = w.tensor
        back = read_back(w.path, w.offset, t.dtype, t.shape)
        for a, b in zip(iter_chunks(t.source(), t.dtype), iter_chunks(back), strict=True):
            if a.is_floating_point() and not _all_finite(a):
                raise BadInput(self.source, f"tensor for {t.name} holds NaN or Inf values: refusing to publish it")
            if a.dtype != b.dtype or not same_bits(a, b):
                return False
            self.on_bytes(b.numel() * b.element_size())
        return True

    def headers_agree(self, folder: Path, files: dict[str, str]) -> str | None:
        """After writing, each shard's header places every checked tensor exactly where it was checked (our header
        reader: offsets), and the safetensors library's own reader — an independent parser vouching for our
        writer — finds each with its dtype and shape and nothing else, its first and last rows being the bytes
        that were checked."""
        from safetensors import safe_open

        by_file: dict[str, list[Written]] = {}
        for w in self.checked:
            by_file.setdefault(files[w.tensor.name], []).append(w)
        for fname, written in by_file.items():
            header = SafetensorsFile(folder / fname)
            for w in written:
                info = header.infos.get(w.tensor.name)
                if info is None or (info.dtype, info.shape, header.data_start + info.begin) != (
                    w.tensor.dtype,
                    w.tensor.shape,
                    w.offset,
                ):
                    return w.tensor.name
            with safe_open(str(folder / fname), framework="pt") as f:
                if set(f.keys()) != {w.tensor.name for w in written}:
                    return "(a tensor no one wrote)"
                for w in written:
                    t = w.tensor
                    part = f.get_slice(t.name)
                    if part.get_dtype() != SAFETENSORS_NAMES[t.dtype] or tuple(part.get_shape()) != t.shape:
                        return t.name
                    if not t.shape or not t.shape[0]:
                        continue
                    ours = read_back(w.path, w.offset, t.dtype, t.shape)
                    last = t.shape[0] - 1
                    if not (
                        same_bits(part[0:1].contiguous(), ours[0:1].contiguous())
                        and same_bits(part[last : last + 1].contiguous(), ours[last : last + 1].contiguous())
                    ):
                        return t.name
        return None if sum(map(len, by_file.values())) == len(files) else "(a tensor no one checked)"


AHEAD_SHARE = 32  # the window is 1/32 of the memory room: see write_ahead


def write_ahead(room: int | None) -> int:
    """How far the writer may run ahead of the verification, given the bytes of page cache the process can keep
    (io.memory.memory_room): 1/AHEAD_SHARE of it, within [MIN_AHEAD, MAX_AHEAD]. Small, because beside the window of
    written pages are the source pages the writer read for it, those the hash read ahead of the writer, the layer
    being verified on both sides and the runtime's growth, all of which must stay cached. 1/32 was the fastest
    share under a cap of 1/4 of the checkpoint, and made no difference uncapped (docs/benchmarks.md, the window
    convert's writer may run ahead)."""
    return MAX_AHEAD if room is None else max(MIN_AHEAD, min(MAX_AHEAD, room // AHEAD_SHARE))


def read_back(path: Path, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor's bytes as they are in the file now, memory-mapped privately (reading never copies)."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), offset + nbytes - start, access=mmap.ACCESS_COPY, offset=start)
    raw = torch.frombuffer(mm, dtype=torch.uint8, count=nbytes, offset=offset - start)  # keeps `mm` alive
    return raw.view(dtype).reshape(shape)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit patterns, not values (-0.0 is not 0.0 here): libc's memcmp, faster than torch.equal (docs/benchmarks.md)."""
    n = a.numel() * a.element_size()
    if a.shape != b.shape or n != b.numel() * b.element_size():
        return False
    if n == 0:
        return True
    if _memcmp is not None and a.is_contiguous() and b.is_contiguous() and a.device.type == b.device.type == "cpu":
        return _memcmp(ctypes.c_void_p(a.data_ptr()), ctypes.c_void_p(b.data_ptr()), ctypes.c_size_t(n)) == 0
    ints = _SAME_SIZE_INT[a.element_size()]
    return torch.equal(a.reshape(-1).view(ints), b.reshape(-1).view(ints))


def _all_finite(t: torch.Tensor) -> bool:
    """A finite sum proves every element finite (NaN and ±Inf propagate) in one cheap pass; only a sum that
    overflowed needs aminmax to tell overflow from a real NaN/Inf (isfinite().all() is 10x slower)."""
    if t.numel() == 0 or bool(torch.sum(t, dtype=torch.float32).isfinite()):
        return True
    return all(bool(v.isfinite()) for v in torch.aminmax(t))


# None without a C library: torch.equal on integer views instead
_memcmp = libc_function("memcmp", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t])
