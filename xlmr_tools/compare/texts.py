"""The texts verification runs: the default multilingual sample batch (also the fixtures' references), the user's
--text/--texts-file, and texts made of a dictionary's own symbols."""

from __future__ import annotations

from pathlib import Path

from xlmr_tools.errors import BadInput
from xlmr_tools.mapping.tokenizer import FAIRSEQ_SPECIALS, FILLER, Alignment, read_gpt2_encoder
from xlmr_tools.model import GPT2

_LONG = (
    "The quick brown fox jumps over the lazy dog. Le café est près de la forêt. "
    "Привет, мир! 你好，世界！ مرحبا بالعالم "
) * 40  # far more than 512 tokens: verification truncates it to exactly 512 (the maximum)

DEFAULT_TEXTS: tuple[str, ...] = (
    "Hello world! cécé herlolip",
    "Bonjour le monde ! Les élèves étudient à l'école près de la forêt.",
    "Привет, мир! Москва — столица России.",
    "你好，世界！东京是日本的首都。",
    "مرحبا بالعالم! هذه جملة عربية.",
    "ᚠᛇᚻ ⰀⰁⰂ ꦲꦏ 🜁🜂🜃",  # runes, Glagolitic, Javanese, alchemical symbols: unknown to the vocabulary
    _LONG,
)


def read_texts(texts: list[str] | None, texts_file: str | Path | None) -> list[str]:
    out = list(texts or [])
    if texts_file is not None:
        p = Path(texts_file)
        if not p.is_file():
            raise BadInput(p, "no such file")
        out += [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out or list(DEFAULT_TEXTS)


def dictionary_texts(alignment: Alignment, per_line: int = 32) -> list[str]:
    """Texts made of dict.txt's own symbols — each as the text the subword model reads it from — a line per
    `per_line` symbols, so the tokenizer proof exercises every symbol of the dictionary, rare pieces, raw
    characters and ids near the ends included, not only those the sample texts happen to use. fairseq's specials,
    the padding fillers and the tokens the subword model never emits are left out (no text produces them)."""
    if alignment.vocabulary == GPT2:
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        token_of = {str(i): t for t, i in read_gpt2_encoder(alignment.files["encoder.json"]).items()}
        surfaces = []
        for symbol in alignment.symbols:
            token = None if symbol in alignment.unreachable else token_of.get(symbol)
            if token is not None and all(c in byte_of for c in token):
                surfaces.append(bytes(byte_of[c] for c in token).decode("utf-8", "ignore").strip())
    else:
        surfaces = [s.replace("\u2581", " ").strip() for s in alignment.symbols
                    if s not in FAIRSEQ_SPECIALS and not FILLER.match(s)]  # fmt: skip
    surfaces = [s for s in surfaces if s]
    lines = [" ".join(surfaces[i : i + per_line]) for i in range(0, len(surfaces), per_line)]
    # and the first symbols again with runs of spaces and tabs around them, leading and trailing: how a tokenizer
    # treats whitespace (sentencepiece's remove_extra_whitespaces, a byte-level BPE's space runs) shows only there
    gaps = ("  ", " \t ", "   ", "\t")
    spaced = "".join(s + gaps[i % len(gaps)] for i, s in enumerate(surfaces[:per_line]))
    return lines + (["  " + spaced] if spaced else [])
