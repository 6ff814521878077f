"""Bad values: what the libraries themselves do with each (the truth behind xlmr's exit 2), and the cases a CLI run
in-process cannot reach (a file-size limit). The CLI's refusals of each input, under every command, are cases of the
generated bad-input suite (tests/test_bad_inputs.py, classes "config.json values", "tokenizer files", ...)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import warnings
from pathlib import Path

import hostile
import pytest
import torch
from conftest import error_lines, fixture, leftovers, xlmr_script

from xlmr_tools.errors import BadInput
from xlmr_tools.mapping.tokenizer import read_dict
from xlmr_tools.sources.hf import open_folder

# What transformers 5.24 does with each bad config.json value (AutoModelForMaskedLM.from_pretrained, then a forward):
# "refuses" (raises while loading or running) or "runs" (and its logits are finite or not). xlmr refuses every one
# (exit 2): where transformers runs, the value is still out of what it means (a negative or NaN LayerNorm eps, an
# architectures list that is a number).
TRANSFORMERS_DOES = {
    "heads-text": "refuses",
    "heads-zero": "refuses",
    "heads-not-dividing": "refuses",
    "eps-text": "refuses",
    "eps-negative": "runs",
    "eps-nan": "runs, non-finite",
    "eps-infinite": "runs",  # every LayerNorm output is its bias
    "pad-null": "refuses",
    "pad-past-vocab": "refuses",
    "hidden-negative": "refuses",
    "hidden-float": "refuses",
    "ffn-negative": "refuses",
    "positions-1e11": "refuses",
    "vocab-text": "refuses",
    "activation-number": "refuses",
    "tie-text": "refuses",
    "model-type-list": "refuses",
    "architectures-number": "runs",
    "type-vocab-negative": "refuses",
}


def test_every_config_case_is_tabled():
    assert set(TRANSFORMERS_DOES) == {cid for cid, _, _ in hostile.BAD_CONFIG_VALUES}


@pytest.mark.parametrize("cid,key,value", hostile.BAD_CONFIG_VALUES, ids=[c[0] for c in hostile.BAD_CONFIG_VALUES])
def test_transformers_on_a_bad_config_value_and_xlmr_refuses_it(cid, key, value, converted, tmp_path):
    import transformers

    folder = shutil.copytree(converted["preln"], tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder), dtype=torch.float32)
            logits = model(torch.tensor([[0, 5, 6, 2]])).logits
        does = "runs" if torch.isfinite(logits).all() else "runs, non-finite"
    except Exception:  # noqa: BLE001 - transformers raises ValueError, TypeError, StrictDataclass...: refused
        does = "refuses"
    assert does == TRANSFORMERS_DOES[cid]
    with pytest.raises(BadInput) as e:
        open_folder(folder)
    assert e.value.path == str(folder / "config.json") and key in e.value.problem


@pytest.mark.parametrize("text", ["garbage{", "", "{}"], ids=["garbage", "empty", "not-a-tokenizer"])
def test_a_tokenizer_transformers_cannot_load_is_bad_input(text, converted, tmp_path):
    from transformers import AutoTokenizer

    from xlmr_tools.sources.hf import load_tokenizer

    folder = shutil.copytree(converted["preln"], tmp_path / "hf")
    (folder / "tokenizer.json").write_text(text)
    with pytest.raises(Exception):  # noqa: B017 - the truth: transformers cannot load it (JSONDecodeError, KeyError)
        AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    with pytest.raises(BadInput) as e:
        load_tokenizer(folder)
    assert e.value.path == str(folder / "tokenizer.json")


def _fairseq_dictionary(path: Path) -> list[str] | str:
    """fairseq's own Dictionary.load: its symbols after the four specials, or why it refused the file."""
    from fairseq.data import Dictionary

    try:
        return Dictionary.load(str(path)).symbols[4:]
    except (RuntimeError, ValueError) as e:
        return type(e).__name__


@pytest.mark.parametrize(
    "name,lines,fairseq",
    [
        ("repeated", ["a 5", "b 4", "a 3"], "RuntimeError"),
        ("empty-line", ["a 5", "", "b 4"], "ValueError"),
        ("trailing-empty-line", ["a 5", "b 4", ""], "ValueError"),
        ("special-without-overwrite", ["<unk> 5", "b 4"], "RuntimeError"),
        ("special-with-overwrite", ["<unk> 5 #fairseq:overwrite", "b 4"], ["<unk>", "b"]),
        # a symbol holding characters str.splitlines() splits at (fairseq's readlines only splits at "\n")
        ("line-separators-in-a-symbol", ["a\u2028b 5", "c\x85d 4", "e\x1cf 3"], ["a\u2028b", "c\x85d", "e\x1cf"]),
    ],
)
def test_dict_txt_is_read_as_fairseq_reads_it(name, lines, fairseq, tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _fairseq_dictionary(path) == fairseq
    if isinstance(fairseq, list):
        assert read_dict(path) == fairseq
    else:
        with pytest.raises(BadInput):
            read_dict(path)


def _limited(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return preexec


@pytest.mark.parametrize(
    "limit,flags",
    [
        (300 * 1024, ["--max-shard-size", "100KB"]),  # only tokenizer.json (337 kB, the tokenizers library) is larger
        (400 * 1024, []),  # the one safetensors shard (486 kB) is larger
    ],
    ids=["tokenizer-json", "shard"],
)
def test_a_file_size_limit_is_a_clear_error(limit, flags, tmp_path):
    """`ulimit -f`: the write fails with EFBIG (Python ignores SIGXFSZ, so the process is not killed); convert says
    so in one line naming OUT, exits 2 and leaves nothing. Before, the tokenizers library's bare Exception("File too
    large (os error 27)") was an internal error (exit 70)."""
    out = tmp_path / "out"
    r = subprocess.run(
        [xlmr_script(), "convert", str(fixture("preln_heads")), str(out), *flags],
        capture_output=True,
        text=True,
        preexec_fn=_limited(limit),
        timeout=600,
    )
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and str(out) in lines[0] and "File too large" in lines[0], lines
    assert not out.exists() and not leftovers(tmp_path)
