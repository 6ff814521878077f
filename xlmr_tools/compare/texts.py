"""The default multilingual sample batch used by verification (and by the fixtures' references)."""

from __future__ import annotations

from pathlib import Path

from xlmr_tools.errors import BadInput

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
