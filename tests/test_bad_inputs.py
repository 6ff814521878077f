"""Generated bad inputs for every command: each gives exit 2 (or 1 for a failed comparison), one stderr line that
names the file and the problem, no traceback, no output or temporary folder left, and no payload ever runs.

The cases are generated from the fixtures with a seeded generator (truncations at many offsets, bit flips, …), so
the count is stable; docs/reliability.md quotes it and test_reliability_doc_matches_the_suite keeps them in sync.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hostile
import pytest
import torch
from conftest import FIXTURES, error_lines, fixture

SEED = 20261128
MARKER = "XLMR_PAYLOAD_RAN"
GOOD_FAIRSEQ = "preln_heads"


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # inspect | convert | verify | diff
    make: Callable[[Path, Path], list[str]]  # (tmp, converted folder) -> argv after the command
    allowed: tuple[int, ...] = (2,)  # exit codes that are correct for this input
    names: bool = True  # the error line must name one of the paths given
    kind: str = ""  # the class of bad input (CLASSES), counted per class in the summary and docs/reliability.md


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------------ input factories


def _fairseq_copy(tmp: Path, name: str = GOOD_FAIRSEQ) -> Path:
    dest = tmp / "src"
    shutil.copytree(FIXTURES / name, dest)
    (dest / "reference.pt").unlink(missing_ok=True)
    return dest


def _hf_copy(tmp: Path, converted: Path) -> Path:
    dest = tmp / "hf"
    shutil.copytree(converted, dest)
    return dest


def _with_model_bytes(data_fn: Callable[[bytes], bytes], name: str = GOOD_FAIRSEQ):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp, name)
        model = src / "model.pt"
        model.write_bytes(data_fn(model.read_bytes()))
        return src

    return make


def _flip(data: bytes, rng: random.Random, n: int) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _hostile(kind: str):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        good = torch.load(src / "model.pt", weights_only=False)
        if kind == "system":
            good["extra_state"] = {"x": Payload(tmp / MARKER)}
        else:
            good["extra_state"] = {"x": shutil.rmtree}
        torch.save(good, src / "model.pt")
        return src

    return make


def _zip_not_torch(tmp: Path) -> Path:
    src = _fairseq_copy(tmp)
    with zipfile.ZipFile(src / "model.pt", "w") as z:
        z.writestr("hello.txt", "not a torch archive")
    return src


def _nonfinite(value: float):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        ckpt = torch.load(src / "model.pt", weights_only=False)
        ckpt["model"]["encoder.sentence_encoder.layers.1.fc2.weight"][3, 5] = value
        torch.save(ckpt, src / "model.pt")
        return src

    return make


def _dict_edit(fn: Callable[[list[str]], list[str]]):
    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp)
        lines = (src / "dict.txt").read_text().splitlines()
        (src / "dict.txt").write_text("\n".join(fn(lines)) + "\n")
        return src

    return make


def _garbage_spm(tmp: Path) -> Path:
    src = _fairseq_copy(tmp)
    (src / "sentencepiece.bpe.model").write_bytes(random.Random(SEED).randbytes(4096))
    return src


def _hf_edit(fn: Callable[[Path], None]):
    def make(tmp: Path, converted: Path) -> Path:
        dest = _hf_copy(tmp, converted)
        fn(dest)
        return dest

    return make


def _shard_lies(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = "roberta.encoder.layer.0.output.dense.weight"
    header[name]["shape"] = [header[name]["shape"][0] * 4, header[name]["shape"][1]]
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(data[8 + n :]))


def _hf_nan(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    begin = 8 + n + header["roberta.encoder.layer.1.output.dense.weight"]["data_offsets"][0]
    data[begin : begin + 4] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(data))


def _split_shards(folder: Path) -> None:
    """Re-shard an HF folder by converting again with a small shard size, then drop shard 2."""
    from xlmr_tools import convert

    shutil.rmtree(folder)
    convert(fixture(GOOD_FAIRSEQ), folder, verify=False, max_shard_size="100KB")
    next(folder.glob("model-00002-*.safetensors")).unlink()


def _hostile_bin(tmp: Path, converted: Path) -> Path:
    dest = _hf_copy(tmp, converted)
    from xlmr_tools.io.safetensors import SafetensorsFile

    st = SafetensorsFile(dest / "model.safetensors")
    state = {n: st.tensor(n).clone() for n in st.infos}
    state["x"] = Payload(tmp / MARKER)
    (dest / "model.safetensors").unlink()
    torch.save(state, dest / "pytorch_model.bin")
    return dest


# ------------------------------------------------------------------------------------------------ issue 20's classes
# (corrupt archives, allocation bombs, values of the wrong type or range, tensors that are no weights, layer numbers,
# tokenizer files, configs that contain themselves): built by tests/hostile.py where the bytes matter


def _model_pt_replaced(data: Callable[[], bytes]):
    """The fixture folder (dict.txt, sentencepiece model) with model.pt replaced by other bytes."""
    return _with_model_bytes(lambda d: data())


def _state_edit(fn: Callable[[dict], None], name: str = GOOD_FAIRSEQ, deep: bool = False):
    """The fixture folder with its checkpoint's state (fully unpickled: the test trusts its fixture) edited by fn."""

    built: list[bytes] = []  # made once, for the four commands that are given it

    def make(tmp: Path) -> Path:
        src = _fairseq_copy(tmp, name)
        if not built:
            state = torch.load(src / "model.pt", weights_only=False)
            fn(state)
            (hostile.save_deep if deep else torch.save)(state, src / "model.pt")
            built.append((src / "model.pt").read_bytes())
        (src / "model.pt").write_bytes(built[0])
        return src

    return make


def _args(**values):
    """fairseq training arguments set to values of the wrong type or range."""

    def edit(state: dict) -> None:
        model = state["cfg"]["model"]
        for key, value in values.items():
            setattr(model, key, value)

    return _state_edit(edit)


def _tensor(name: str, fn: Callable[[torch.Tensor], torch.Tensor]):
    return _state_edit(lambda state: state["model"].__setitem__(name, fn(state["model"][name])))


def _config(**values):
    """config.json with these values (None writes null)."""

    def edit(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(values)
        (folder / "config.json").write_text(json.dumps(cfg))

    return _hf_edit(edit)


def _config_text(old: str, new: str):
    return _hf_edit(lambda f: (f / "config.json").write_text((f / "config.json").read_text().replace(old, new)))


def _safetensors_edit(fn: Callable[[dict[str, torch.Tensor]], None]):
    def edit(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "model.safetensors")
        fn(tensors)
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})

    return _hf_edit(edit)


def _as_bin(fn: Callable[[dict[str, torch.Tensor]], None]):
    """The folder's weights as a pytorch_model.bin, edited by fn (a .bin may hold any tensor torch can pickle)."""

    def edit(folder: Path) -> None:
        from safetensors.torch import load_file

        tensors = load_file(folder / "model.safetensors")
        fn(tensors)
        (folder / "model.safetensors").unlink()
        torch.save(tensors, folder / "pytorch_model.bin")

    return _hf_edit(edit)


def _index(weight_map: object):
    """A sharded folder (the index is what transformers reads: no model.safetensors beside it) whose index is bad."""

    def edit(folder: Path) -> None:
        (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    return _hf_edit(edit)


FS_LAYER = "encoder.sentence_encoder.layers."
HF_LAYER = "roberta.encoder.layer."


def _issue20_fairseq() -> list[tuple[str, str, Callable[[Path], Path]]]:
    """(class, id, factory) of bad checkpoints, each given to inspect, convert, verify and diff."""
    legacy = (FIXTURES / "postln_legacy" / "model.pt").read_bytes()
    out: list[tuple[str, str, Callable[[Path], Path]]] = [
        ("corrupt archive", f"zip-{k}", _with_model_bytes(edit))
        for k, (edit, _) in sorted(hostile.ZIP_CORRUPTIONS.items())
    ]
    out += [
        ("allocation bomb", "legacy-bytearray-6e9", _model_pt_replaced(lambda: hostile.legacy_bytearray(6 * 10**9))),
        (
            "allocation bomb",
            "zip-pickle-bytearray-6e9",
            _model_pt_replaced(lambda: hostile.zip_with_pickle(hostile.bytearray_pickle(6 * 10**9))),
        ),
        ("allocation bomb", "zip-deflate-bomb-64MB", _model_pt_replaced(lambda: hostile.deflate_bomb(64 << 20))),
        (
            "allocation bomb",
            "legacy-storage-claims-6GB",
            _model_pt_replaced(lambda: hostile.legacy_storage_claim(legacy, 1_500_000_000)),
        ),
    ]
    out += [
        ("fairseq arguments", f"args-{k}", _args(**{key: value}))
        for k, key, value in [
            ("layers-to-keep-letters", "encoder_layers_to_keep", "a,b"),
            ("max-positions-text", "max_positions", "x"),
            ("max-positions-100000-digits", "max_positions", 10**100_000),
            ("activation-number", "activation_fn", 5),
            ("heads-text", "encoder_attention_heads", "4"),
            ("heads-negative", "encoder_attention_heads", -4),
            ("embed-dim-float", "encoder_embed_dim", 64.0),
            ("quant-noise-text", "quant_noise_pq", "x"),
            ("dropout-above-one", "dropout", 2.5),
            ("untie-text", "untie_weights_roberta", "yes"),
            ("normalize-before-list", "encoder_normalize_before", [True]),
        ]
    ]
    weight = FS_LAYER + "1.fc1.weight"
    out += [
        ("tensor kinds", "tensor-sparse", _tensor(weight, lambda t: t.to_sparse())),
        ("tensor kinds", "tensor-meta", _tensor(weight, lambda t: t.to("meta"))),
        ("tensor kinds", "tensor-int64", _tensor(weight, lambda t: t.to(torch.int64))),
        ("tensor kinds", "tensor-complex", _tensor(weight, lambda t: t.to(torch.complex64))),
        (
            "tensor kinds",
            "tensor-int32-embedding",
            _tensor("encoder.sentence_encoder.embed_tokens.weight", lambda t: t.to(torch.int32)),
        ),
        (
            "layer numbering",
            "layer-1000000",
            _state_edit(lambda st: st["model"].__setitem__(FS_LAYER + "1000000.fc1.weight", torch.empty(0))),
        ),
        (
            "layer numbering",
            "layer-5000-digits",
            _state_edit(lambda st: st["model"].__setitem__(FS_LAYER + "9" * 5000 + ".fc1.weight", torch.empty(0))),
        ),
        ("layer numbering", "layer-incomplete", _state_edit(lambda st: st["model"].pop(FS_LAYER + "1.fc2.bias"))),
    ]
    out += [
        ("nested config", f"dictconfig-{k}", _state_edit(hostile.hostile_cfg(k), "cfg_dictconfig", deep=True))
        for k in ("cycle", "deep", "doubling")
    ]
    return out


def _issue20_hf() -> list[tuple[str, str, Callable[[Path, Path], Path], tuple[int, ...]]]:
    """(class, id, factory, allowed exit codes of diff) of bad folders, each given to verify, diff and inspect."""
    two = (2,)
    out: list[tuple[str, str, Callable[[Path, Path], Path], tuple[int, ...]]] = [
        ("config.json values", f"config-{k}", _config(**{key: value}), two)
        for k, key, value in hostile.BAD_CONFIG_VALUES
    ]
    out += [
        (
            "config.json values",
            "config-100000-digits",
            _config_text('"hidden_size": 64', '"hidden_size": ' + "9" * 100_000),
            two,
        ),
        # well-typed but another model than the weights: transformers would build it and initialise what the weights
        # lack; verify and diff report that (exit 1) before anything is built
        ("config.json values", "config-layers-10000000", _config(num_hidden_layers=10_000_000), (1,)),
        ("config.json values", "config-layers-3", _config(num_hidden_layers=3), (1,)),
        (
            "tensor kinds",
            "hf-tensor-int64",
            _safetensors_edit(
                lambda t: t.__setitem__(HF_LAYER + "1.output.dense.bias", torch.zeros(64, dtype=torch.int64))
            ),
            two,
        ),
        (
            "tensor kinds",
            "hf-bin-sparse",
            _as_bin(
                lambda t: t.__setitem__(
                    HF_LAYER + "1.output.dense.weight", t[HF_LAYER + "1.output.dense.weight"].to_sparse()
                )
            ),
            two,
        ),
        (
            "tensor kinds",
            "hf-bin-complex",
            _as_bin(
                lambda t: t.__setitem__(
                    HF_LAYER + "1.output.dense.weight", t[HF_LAYER + "1.output.dense.weight"].to(torch.complex64)
                )
            ),
            two,
        ),
        (
            "layer numbering",
            "hf-layer-1000000",
            _safetensors_edit(lambda t: t.__setitem__(HF_LAYER + "1000000.intermediate.dense.weight", torch.zeros(0))),
            two,
        ),
        ("HF folder files", "hf-index-null", _index({HF_LAYER + "0.output.dense.weight": None}), two),
        ("HF folder files", "hf-index-list", _index([1, 2]), two),
        ("HF folder files", "hf-index-path", _index({HF_LAYER + "0.output.dense.weight": "../model.safetensors"}), two),
    ]
    return out


def _issue20_verify_only() -> list[tuple[str, str, Callable[[Path, Path], list[str]], tuple[str, ...]]]:
    """(class, id, argv maker, commands) of tokenizer files only verify (and convert) read."""
    hf_tok = [
        (name, _hf_edit(lambda f, text=text: (f / "tokenizer.json").write_text(text)))
        for name, text in [("tokenizer-json-garbage", "garbage{"), ("tokenizer-json-empty", ""),
                           ("tokenizer-json-not-a-tokenizer", "{}")]
    ]  # fmt: skip
    out: list[tuple[str, str, Callable[[Path, Path], list[str]], tuple[str, ...]]] = [
        ("tokenizer files", cid, lambda tmp, conv, m=m: [str(fixture(GOOD_FAIRSEQ)), str(m(tmp, conv))], ("verify",))
        for cid, m in hf_tok
    ]
    dicts = [
        ("dict-duplicate", _dict_edit(lambda ls: ls[:6] + [ls[5]] + ls[6:])),
        ("dict-empty-line", _dict_edit(lambda ls: ["", *ls])),
        ("dict-special-without-overwrite", _dict_edit(lambda ls: ["<unk> 1", *ls[1:]])),
        ("spm-corrupt", _garbage_spm),
    ]
    for cid, m in dicts:
        out.append(("tokenizer files", cid, lambda tmp, conv, m=m: [str(m(tmp)), str(conv)], ("verify",)))
        if cid != "spm-corrupt":  # convert's own spm-garbage case is above
            out.append(("tokenizer files", cid, lambda tmp, conv, m=m: [str(m(tmp)), str(tmp / "out")], ("convert",)))
    return out


# ------------------------------------------------------------------------------------------------ the case table


def _fairseq_inputs() -> list[tuple[str, str, Callable[[Path], Path], tuple[int, ...], bool]]:
    """(class, id, factory, allowed exit codes for convert, detectable by inspect without reading tensor data)."""
    rng = random.Random(SEED)
    zip_size = (FIXTURES / GOOD_FAIRSEQ / "model.pt").stat().st_size
    legacy_size = (FIXTURES / "postln_legacy" / "model.pt").stat().st_size
    out: list[tuple[str, str, Callable[[Path], Path], tuple[int, ...], bool]] = []
    for cut in sorted({0, 1, 7, 64, 512} | {rng.randrange(zip_size) for _ in range(12)}):
        out.append(
            ("truncated checkpoint", f"zip-truncated-{cut}", _with_model_bytes(lambda d, c=cut: d[:c]), (2,), True)
        )
    for cut in sorted({1, 100} | {rng.randrange(legacy_size) for _ in range(8)}):
        out.append(
            (
                "truncated checkpoint",
                f"legacy-truncated-{cut}",
                _with_model_bytes(lambda d, c=cut: d[:c], "postln_legacy"),
                (2,),
                True,
            )
        )
    for i in range(10):
        flips = rng.choice([1, 4, 64])
        seed = rng.randrange(2**32)
        # A flip inside tensor data is a valid file with other numbers: converting it is correct (0); a flip that
        # makes a NaN, or breaks the pickle or the zip, is bad input (2). Never a traceback, never a leftover.
        # A flip to a huge exponent is a valid file whose model computes Inf/NaN: convert's output check fails (1).
        out.append(
            (
                "bit flips",
                f"bitflip-{i}-x{flips}",
                _with_model_bytes(lambda d, s=seed, n=flips: _flip(d, random.Random(s), n)),
                (0, 1, 2),
                False,
            )
        )
    out += [
        ("not a checkpoint", "empty-file", _with_model_bytes(lambda d: b""), (2,), True),
        ("not a checkpoint", "text-file", _with_model_bytes(lambda d: b"just some text\n" * 10), (2,), True),
        ("not a checkpoint", "zip-not-torch", _zip_not_torch, (2,), True),
        ("hostile pickle", "payload-os-system", _hostile("system"), (2,), True),
        ("hostile pickle", "payload-module-import", _hostile("import"), (2,), True),
        ("non-finite weights", "nan-weight", _nonfinite(float("nan")), (2,), False),
        ("non-finite weights", "inf-weight", _nonfinite(float("inf")), (2,), False),
    ]
    out += [(kind, cid, make, (2,), True) for kind, cid, make in _issue20_fairseq()]
    return out


def _tokenizer_inputs() -> list[tuple[str, Callable[[Path], Path]]]:
    return [
        ("dict-bad-line", _dict_edit(lambda ls: ls[:10] + ["this line has no count"] + ls[10:])),
        ("dict-too-many-symbols", _dict_edit(lambda ls: ls + ["madeupword9999 0"])),
        ("dict-too-few-symbols", _dict_edit(lambda ls: ls[:-3])),
        # a sentencepiece piece renamed away: dict.txt lacks it (another order alone is a valid dictionary)
        ("dict-lacks-a-piece", _dict_edit(lambda ls: ["notapiece " + ls[0].split()[-1], *ls[1:]])),
        (
            "dict-not-utf8",
            lambda tmp: (lambda s: ((s / "dict.txt").write_bytes(b"\xff\xfe 1\n"), s)[1])(_fairseq_copy(tmp)),
        ),
        ("spm-garbage", _garbage_spm),
    ]


def _hf_inputs() -> list[tuple[str, str, Callable[[Path, Path], Path], tuple[int, ...]]]:
    """(class, id, factory, allowed exit codes of verify and diff)."""
    files = "HF folder files"
    return [
        (files, "hf-config-not-json", _hf_edit(lambda f: (f / "config.json").write_text("{not json")), (2,)),
        (files, "hf-no-config", _hf_edit(lambda f: (f / "config.json").unlink()), (2,)),
        (files, "hf-missing-shard", _hf_edit(_split_shards), (2,)),
        (files, "hf-shard-header-lies", _hf_edit(_shard_lies), (2,)),
        (
            files,
            "hf-shard-truncated",
            _hf_edit(lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000])),
            (2,),
        ),
        ("non-finite weights", "hf-nan-weight", _hf_edit(_hf_nan), (1,)),
        ("hostile pickle", "hf-payload-bin", _hostile_bin, (2,)),
        (files, "hf-is-a-file", lambda tmp, conv: (lambda p: (p.write_text("x"), p)[1])(tmp / "file"), (2,)),
    ]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for kind, cid, make, convert_codes, structural in _fairseq_inputs():
        cases.append(
            Case(
                f"inspect-{cid}",
                "inspect",
                lambda tmp, conv, m=make: [str(m(tmp))],
                (2,) if structural else (0, 2),
                kind=kind,
            )
        )
        cases.append(
            Case(
                f"convert-{cid}",
                "convert",
                lambda tmp, conv, m=make: [str(m(tmp)), str(tmp / "out")],
                convert_codes,
                kind=kind,
            )
        )
        cases.append(
            Case(
                f"verify-{cid}",
                "verify",
                lambda tmp, conv, m=make: [str(m(tmp)), str(conv)],
                (1, 2) if 0 not in convert_codes else (0, 1, 2),
                kind=kind,
            )
        )
        cases.append(
            Case(
                f"diff-{cid}",
                "diff",
                lambda tmp, conv, m=make: [str(conv), str(m(tmp))],
                (1, 2) if 0 not in convert_codes else (0, 1, 2),
                kind=kind,
            )
        )
    for cid, make in _tokenizer_inputs():
        cases.append(
            Case(
                f"convert-{cid}",
                "convert",
                lambda tmp, conv, m=make: [str(m(tmp)), str(tmp / "out")],
                (2,),
                kind="dictionary and subword model",
            )
        )
    hf = [(kind, cid, make, codes, codes) for kind, cid, make, codes in _hf_inputs()]
    hf += [(kind, cid, make, (1,) if cid.startswith("config-layers-") else (2,), diff_codes)
           for kind, cid, make, diff_codes in _issue20_hf()]  # fmt: skip
    for kind, cid, make, codes, diff_codes in hf:
        cases.append(
            Case(
                f"verify-{cid}",
                "verify",
                lambda tmp, conv, m=make: [str(fixture(GOOD_FAIRSEQ)), str(m(tmp, conv))],
                codes,
                kind=kind,
            )
        )
        cases.append(
            Case(f"diff-{cid}", "diff", lambda tmp, conv, m=make: [str(conv), str(m(tmp, conv))], diff_codes, kind=kind)
        )
        # inspect reads no tensor data (a NaN is described) and no sizes against the config (another layer count
        # is a warning)
        described = cid == "hf-nan-weight" or cid.startswith("config-layers-")
        inspect_codes = (0,) if described else codes
        cases.append(
            Case(f"inspect-{cid}", "inspect", lambda tmp, conv, m=make: [str(m(tmp, conv))], inspect_codes, kind=kind)
        )
    for kind, cid, argv, commands in _issue20_verify_only():
        cases += [Case(f"{command}-{cid}", command, argv, (2,), kind=kind) for command in commands]
    arguments = "arguments and paths"
    cases += [
        Case(
            "convert-missing-head",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str(tmp / "out"), "--head", "sst2"],
            (2,),
            kind=arguments,
        ),
        Case(
            "verify-missing-head",
            "verify",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str(conv), "--head", "sst2"],
            (2,),
            kind=arguments,
        ),
        Case(
            "convert-src-is-dir-without-checkpoint",
            "convert",
            lambda tmp, conv: [str(tmp), str(tmp / "out")],
            (2,),
            kind=arguments,
        ),
        Case(
            "convert-out-is-a-file",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), str((tmp / "f").write_text("x") and tmp / "f")],
            (2,),
            kind=arguments,
        ),
        Case(
            "convert-out-parent-unwritable",
            "convert",
            lambda tmp, conv: [str(fixture(GOOD_FAIRSEQ)), "/proc/xlmr-out"],
            (2,),
            kind=arguments,
        ),
        Case("inspect-missing", "inspect", lambda tmp, conv: [str(tmp / "missing")], (2,), kind=arguments),
        Case("diff-missing", "diff", lambda tmp, conv: [str(conv), str(tmp / "missing")], (2,), kind=arguments),
    ]
    return cases


CASES = _cases()
CLASSES = list(dict.fromkeys(c.kind for c in CASES))  # in the order of the table above
TALLY = {"inputs": 0, "tracebacks": 0, "leftovers": 0, "payloads run": 0, "wrong exit code": 0}  # printed at the end
TRIED: dict[str, int] = dict.fromkeys(CLASSES, 0)  # inputs tried, by class


def summary() -> str:
    """The line pytest prints at the end (conftest.py) and docs/reliability.md quotes."""
    by_class = ", ".join(f"{kind} {TRIED[kind]}" for kind in CLASSES if TRIED[kind])
    counts = ", ".join(f"{v} {k}" for k, v in TALLY.items())
    return f"bad-input suite: {counts} ({by_class})"


@pytest.fixture(scope="module")
def hf_good(converted) -> Path:
    return converted[GOOD_FAIRSEQ]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(cli, case: Case, tmp_path: Path, hf_good: Path):
    work = tmp_path / "work"
    work.mkdir()
    before = set(hf_good.parent.iterdir())
    argv = case.make(work, hf_good)
    r = cli(case.command, *argv)
    left = [p for p in work.rglob("*") if ".xlmr-partial-" in p.name]
    TALLY["inputs"] += 1
    TRIED[case.kind] += 1
    TALLY["tracebacks"] += "Traceback" in r.output
    TALLY["leftovers"] += bool(left) or ((work / "out").exists() and r.exit_code != 0)
    TALLY["payloads run"] += (work / MARKER).exists()
    TALLY["wrong exit code"] += r.exit_code not in case.allowed
    assert r.exit_code in case.allowed, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    assert not (work / MARKER).exists(), "a checkpoint payload ran"
    assert not (work / "out").exists() or r.exit_code == 0
    assert not left, "temporary folder left behind"
    assert set(hf_good.parent.iterdir()) == before
    if r.exit_code != 0:
        lines = error_lines(r.stderr)
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("error: ")
        paths = [a for a in argv if "/" in a] + [str(work)]
        assert any(p in lines[0] or str(Path(p).parent) in lines[0] for p in paths), lines[0]


def test_every_case_has_a_class():
    assert all(c.kind for c in CASES), [c.id for c in CASES if not c.kind]


def test_reliability_doc_matches_the_suite():
    """docs/reliability.md states the number of generated inputs, and how many of each class."""
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    m = re.search(r"(\d+) generated bad inputs", doc)
    assert m and int(m.group(1)) == len(CASES), f"docs/reliability.md must say {len(CASES)} generated bad inputs"
    for kind in CLASSES:
        n = sum(c.kind == kind for c in CASES)
        assert re.search(rf"^\| {re.escape(kind)} \| {n} \|", doc, re.M), f"docs/reliability.md: | {kind} | {n} |"
