"""Tokenizer fuzzing: the written tokenizer and transformers' stock XLM-R tokenizer against fairseq's own `encode`.

Shared by tests/test_tokenizer_fuzz.py (a seeded sample, in `make test`) and benchmarks/tokenizer_fuzz.py (the full
sweep). Every difference is put in one kind; the kinds that come from the tokenizers library itself (and that the
stock tokenizer shows too) are documented in docs/reliability.md.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.full_forward import fairseq_hub

SPECIAL_STRINGS = ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["\u200b", "\u2060", "\ufeff"]
COMBINING = [chr(c) for c in range(0x300, 0x370)] + [chr(c) for c in (0x1AB0, 0x1DC0, 0x20D0, 0xFE20)]
EMOJI = [chr(c) for c in range(0x1F300, 0x1FAFF)]
ZWJ, SKIN = "\u200d", [chr(c) for c in range(0x1F3FB, 0x1F400)]
BASES = "aeiounAEIOUNcCsSzZ"
WORDS = ["hello", "world", "Straße", "café", "мир", "你好", "東京", "مرحبا", "κόσμε", "1234", "3.14"]

# Kinds of difference, in the order a text is classified (the first that applies).
KINDS = (
    "filler string",
    "special-token string",
    "NFKC-made special string",
    "U+0085",
    "decomposed combining sequence",
    "other",
)
# The kinds that come from the tokenizers library itself (the stock tokenizer shows them too; docs/reliability.md).
DOCUMENTED = {"special-token string", "NFKC-made special string", "U+0085", "decomposed combining sequence"}


def texts_full() -> Iterator[str]:
    """The full sweep (~89,000 texts): every BMP codepoint in context, combining sequences, emoji, whitespace
    variants, and the strings that name special tokens and dictionary fillers."""
    for cp in range(0x20, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        yield f"a{c}b {c} x{c}"
    for base in BASES:
        for i, mark in enumerate(COMBINING):
            yield f"{base}{mark} {base}{mark}{COMBINING[(i + 7) % len(COMBINING)]}s word"
            yield unicodedata.normalize("NFD", f"{base}{mark}é résumé")
    for i, e in enumerate(EMOJI):
        yield f"ok {e} {e}{SKIN[i % len(SKIN)]} {e}{ZWJ}{EMOJI[(i * 7) % len(EMOJI)]}!"
    for i, ws in enumerate(WHITESPACE):
        for word in WORDS:
            yield f"{ws}{word}{ws}{ws}{WORDS[(i + 1) % len(WORDS)]}{ws}"
    for s in SPECIAL_STRINGS:
        for word in WORDS:
            yield f"{word} {s} {word}{s}"
    for n in range(10000):
        yield f"madeupword{n:04d}"
        yield f"x madeupword{n:04d}y {n}"
    for s in ("＜mask＞", "﹤s﹥", "〈mask〉", "＜/s＞", "<\u0338mask>"):
        yield f"a {s} b"


def texts_sample(n: int, seed: int = 0) -> list[str]:
    """A seeded sample of the sweep, always with the special strings and fillers in it."""
    every = list(texts_full())
    pinned = [t for t in every if "madeupword" in t or any(s in t for s in SPECIAL_STRINGS) or "\x85" in t]
    chosen = set(pinned)
    rest = [t for t in every if t not in chosen]
    return pinned[:200] + random.Random(seed).sample(rest, n)


def completions(piece: bytes) -> list[str]:
    """Texts holding a byte-level BPE token's bytes where the token splits a character: each lead byte (and the
    continuation bytes it still needs) before the continuation bytes the token starts with, each continuation byte
    after the character it leaves open. A token that splits none is its own text."""
    lead = len(piece) - len(piece.lstrip(bytes(range(0x80, 0xC0))))
    before = [bytes([b]) + b"\x80" * (_width(b) - 1 - lead) for b in range(0xC2, 0xF5) if lead and _width(b) > lead]
    start = len(piece) - 1
    while start > 0 and 0x80 <= piece[start] < 0xC0:
        start -= 1
    open_ = max(_width(piece[start]) - (len(piece) - start), 0) if piece[start] >= 0xC0 else 0
    after = [bytes([b]) * open_ for b in range(0x80, 0xC0)] if open_ else [b""]
    texts = [(b + piece + a).decode("utf-8", "ignore") for b in before or [b""] for a in after]
    return [t for t in texts if t]


def _width(lead: int) -> int:
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def kind_of(text: str) -> str:
    if "madeupword" in text:
        return "filler string"
    if any(s in text for s in SPECIAL_STRINGS):
        return "special-token string"
    if any(s in unicodedata.normalize("NFKC", text) for s in SPECIAL_STRINGS):
        return "NFKC-made special string"
    if "\x85" in text:
        return "U+0085"
    if any(unicodedata.combining(c) for c in text):
        return "decomposed combining sequence"
    return "other"


@dataclass
class FuzzResult:
    texts: int = 0
    ours: Counter = field(default_factory=Counter)  # kind -> texts where ours differs from fairseq
    stock: Counter = field(default_factory=Counter)  # kind -> texts where the stock tokenizer differs
    ours_not_stock: list[str] = field(default_factory=list)  # texts where ours differs and stock does not
    examples: dict[str, str] = field(default_factory=dict)  # kind -> first text of that kind (ours)

    def rows(self) -> list[tuple[str, int, int]]:
        return [(k, self.ours[k], self.stock[k]) for k in KINDS]


def fairseq_encoder(folder: Path) -> Callable[[str], list[int]]:
    """fairseq's own hub interface: its sentencepiece BPE and dictionary."""
    hub = fairseq_hub(folder)
    return lambda text: hub.encode(text).tolist()


def stock_tokenizer(folder: Path, workdir: Path):
    """What transformers builds from the sentencepiece model alone (its XLM-R conversion, or its CamemBERT one
    where dict.txt lists the model's own specials); None for GPT-2 BPE (transformers has no conversion from
    encoder.json and a fairseq dictionary)."""
    import shutil

    from transformers import CamembertTokenizer, XLMRobertaTokenizer

    if not (folder / "sentencepiece.bpe.model").is_file():
        return None
    camembert = "#fairseq:overwrite" in (folder / "dict.txt").read_text(encoding="utf-8")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "sentencepiece.bpe.model", workdir / "sentencepiece.bpe.model")
    return (CamembertTokenizer if camembert else XLMRobertaTokenizer).from_pretrained(str(workdir))


def compare(fairseq_folder: Path, converted: Path, texts: list[str], workdir: Path) -> FuzzResult:
    from transformers import AutoTokenizer

    encode = fairseq_encoder(fairseq_folder)
    ours = AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
    stock = stock_tokenizer(fairseq_folder, workdir)
    result = FuzzResult(texts=len(texts))
    ours_ids = ours(texts, add_special_tokens=True)["input_ids"]
    stock_ids = stock(texts, add_special_tokens=True)["input_ids"] if stock is not None else [None] * len(texts)
    for text, a, b in zip(texts, ours_ids, stock_ids):
        want = encode(text)
        kind = kind_of(text)
        if a != want:
            result.ours[kind] += 1
            result.examples.setdefault(kind, text)
            if b == want:
                result.ours_not_stock.append(text)
        if b != want:
            result.stock[kind] += 1
    return result
