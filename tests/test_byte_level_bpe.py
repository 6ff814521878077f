"""fairseq's byte-level BPEs — GPT-2's (`--bpe gpt2`: encoder.json + vocab.bpe) and Hugging Face tokenizers' (`--bpe
hf_byte_bpe`: vocab.json + merges.txt, GottBERT's) — whose dict.txt lists the BPE's token ids as numbers.

The truth is fairseq's own encoder (GPT2BPE, HuggingFaceByteLevelBPE) and its hub loader: which tokens a text can
encode to at all, and which ids a text gets.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, fixture
from transformers import AutoTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from tests.helpers.full_forward import trained, trained_hub
from tests.helpers.tokenizer_fuzz import completions
from xlmr_tools.settings import Assets
from xlmr_tools.sources.fairseq import open_checkpoint

BEST = "checkpoints/checkpoint_best.pt"


def corpus() -> list[str]:
    return [line for p in sorted(trained("corpus").glob("*.txt")) for line in p.read_text().splitlines() if line]


def fairseq_encoder(files: dict[str, Path]):
    """fairseq's own encoder for the files: GPT2BPE for encoder.json + vocab.bpe, HuggingFaceByteLevelBPE for
    vocab.json + merges.txt."""
    if "vocab.json" in files:
        from fairseq.data.encoders.hf_byte_bpe import HuggingFaceByteLevelBPE, HuggingFaceByteLevelBPEConfig

        return HuggingFaceByteLevelBPE(
            HuggingFaceByteLevelBPEConfig(bpe_vocab=str(files["vocab.json"]), bpe_merges=str(files["merges.txt"]))
        )
    from fairseq.data.encoders.gpt2_bpe import GPT2BPE, GPT2BPEConfig

    return GPT2BPE(GPT2BPEConfig(gpt2_encoder_json=str(files["encoder.json"]), gpt2_vocab_bpe=str(files["vocab.bpe"])))


def _fixture_builder():
    """tests/fixtures/make_fixtures.py as a module: its CORPUS is what the GPT-2 fixtures' BPE was trained on."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# (the checkpoint, its BPE's files by their own names, the corpus the BPE was trained on)
BYTE_LEVEL = {
    "gpt2": (fixture("roberta_gpt2_missing"), ("encoder.json", "vocab.bpe"), lambda: _fixture_builder().CORPUS),
    "hf_byte_bpe": (trained("gottbert") / BEST, ("vocab.json", "merges.txt"), lambda: "\n".join(corpus())),
}


@pytest.mark.parametrize("kind", list(BYTE_LEVEL))
def test_only_tokens_some_text_encodes_to_count_as_missing(kind):
    """A token dict.txt lacks matters only if fairseq's encoder can emit it: <s>, <mask>, <|endoftext|> and the
    symbols of bytes UTF-8 never uses (0xC0, 0xC1, 0xF5-0xFF) are no token of any text. The tokens counted missing
    are exactly those dict.txt lacks that fairseq's own encoder emits on the BPE's training corpus (where every token
    was made) and on each token's own text, completed where it splits a character (every lead byte before it, every
    continuation byte after it): a byte UTF-8 uses is emitted in some character."""
    src, names, trained_on = BYTE_LEVEL[kind]
    home = src if src.is_dir() else src.parent.parent
    files = {name: home / name for name in names}
    ckpt = open_checkpoint(src, assets=Assets(encoder_json=files[names[0]], vocab_bpe=files[names[1]]))
    vocab = json.loads(files[names[0]].read_text())
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    texts = trained_on().splitlines()
    texts += [bytes(byte_of[c] for c in token).decode("utf-8", "ignore") for token in vocab]
    bpe = fairseq_encoder(files)
    emitted = {int(i) for text in texts for i in bpe.encode(text).split()}
    for token, i in vocab.items():  # a token splitting characters: in the texts that hold its bytes
        if i not in emitted and all(c in byte_of for c in token):
            emitted |= {
                int(j) for text in completions(bytes(byte_of[c] for c in token)) for j in bpe.encode(text).split()
            }
    listed = {int(s) for s in ckpt.dict_symbols or [] if s.isdigit()}
    token_of = {i: t for t, i in vocab.items()}
    missing = ckpt.alignment().missing
    assert set(missing) == {token_of[i] for i in emitted - listed}
    assert not {"<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"} & set(missing) and missing


def test_a_dictionary_listing_the_bpes_special_tokens_keeps_fairseqs_specials(cli, tmp_path):
    """dict.txt lists every vocab.json id, <s> (vocab.json's 0) and <mask> (4) too, at ids of their own: the
    tokenizer keeps fairseq's <s>=0 ... <mask>=last (before: exit 70, "<s> did not land on fairseq's id 0"), and the
    folder's ids are fairseq's hub encoder's on the corpus."""
    home = trained("gottbert_srcdict")
    out = tmp_path / "out"
    r = cli("convert", home / BEST, out, "--encoder-json", home / "vocab.json", "--vocab-bpe", home / "merges.txt")
    assert r.exit_code == 0, r.output
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = trained_hub("gottbert_srcdict")
    d = hub.task.source_dictionary
    assert [tok.convert_tokens_to_ids(s) for s in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [
        d.bos(),
        d.pad(),
        d.eos(),
        d.unk(),
        d.index("<mask>"),
    ]
    assert d.index("0") != d.bos() and d.index("4") != d.index("<mask>")  # vocab.json's <s> and <mask>: other ids
    for text in corpus()[::7]:
        assert tok(text)["input_ids"] == hub.encode(text).tolist(), text


def test_the_bpe_files_the_checkpoint_records_are_found(cli, tmp_path):
    """fairseq-train --bpe hf_byte_bpe --bpe-vocab vocab.json --bpe-merges merges.txt records the files (cfg.bpe):
    found beside the save dir with no flag, shown by inspect, and the folder's ids are fairseq's hub encoder's."""
    src, out = trained("gottbert_srcdict") / BEST, tmp_path / "out"
    r = cli("inspect", src, "--json")
    assert r.exit_code == 0, r.output
    tok = json.loads(r.stdout)["tokenizer"]
    assert Path(tok["encoder.json"]).name == "vocab.json" and Path(tok["vocab.bpe"]).name == "merges.txt"
    assert tok["missing_pieces"] == 0
    r = cli("convert", src, out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokenizer"]["equal"]
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    hub = trained_hub("gottbert_srcdict")
    for text in corpus()[::5]:
        assert tok(text)["input_ids"] == hub.encode(text).tolist(), text
