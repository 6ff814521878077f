"""A folder's tokenizer — as AutoTokenizer loads it — against fairseq's: ids on the sample texts and on texts made of
dict.txt's own symbols (fairseq's encoder is the truth), and the whole vocabulary against the tokenizer the
checkpoint's dictionary implies.

Sample texts alone cannot prove a tokenizer: two ids swapped for words no sample uses pass them. So the folder's
tokenizer is also compared, table for table, with a reference — the tokenizer `convert` writes from the checkpoint's
dict.txt and subword model, built in a temporary folder and loaded the same way: every id's token, the special
tokens, the subword model's pieces and scores (or merges), and the pipeline around it (normalizer, pre-tokenizer,
post-processor, added tokens). A pipeline written in another form (an older transformers, another tool) is judged by
what it does: both tokenizers must give the same ids on a probe corpus — the texts, every dict.txt symbol and every
BMP codepoint in context."""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xlmr_tools.compare.oracle import FairseqOracle
from xlmr_tools.mapping import tokenizer
from xlmr_tools.sources.hf import load_tokenizer

# What a special token is to a transformers tokenizer, by its attribute name.
SPECIAL_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# The parts of a fast tokenizer's pipeline around its subword model (tokenizers' JSON keys). Its decoder is judged
# by what it does (the decoding row), as every tokenizer's is.
PIPELINE = ("normalizer", "pre_tokenizer", "post_processor", "added_tokens")
# The tokenizer's own settings (tokenizer_config.json's, kept outside the pipeline) that change what `tok(...)` hands
# the model or what a pipeline reads back, though every text's ids stay the same: the inputs it returns (without
# `attention_mask` a padded batch attends to its pads: other outputs), how special-token strings in a text are
# matched (`split_special_tokens`: `Hello <mask>` gets another id before `<mask>`, the fill-mask pipeline other
# answers), which end of a long text truncation drops.
SETTINGS = ("model_input_names", "split_special_tokens", "truncation_side")


@dataclass
class VocabularyRow:
    item: str  # "vocabulary", "special tokens", "subword model", "pipeline", ...
    ok: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TokenizerCheck:
    texts: int
    equal: bool  # ids equal fairseq's on every text, <mask> too, and the whole vocabulary agrees
    mask_id: int
    fillers: int
    first_mismatch: str | None = None  # the first differing text, quoted, with both id sequences there
    mismatches: int = 0  # texts whose ids differ, sample and dictionary texts together
    dictionary_texts: int = 0  # texts made of dict.txt's symbols, beside the sample texts
    vocabulary: list[VocabularyRow] = field(default_factory=list)
    dictionary_mismatches: int = 0  # of the mismatches, dictionary texts

    @property
    def ids_equal(self) -> bool:
        return self.mismatches == 0

    def counted(self) -> str:
        """The texts compared, or, where some differ, how many of each kind: "2 of 7 sample texts and 5 of 300
        dictionary texts"."""
        kinds = [
            (self.mismatches - self.dictionary_mismatches, self.texts, "sample texts"),
            (self.dictionary_mismatches, self.dictionary_texts, "texts made of dict.txt's symbols"),
        ]
        if self.ids_equal:
            return " and ".join(f"{n} {what}" for _, n, what in kinds if n)
        return " and ".join(f"{wrong} of {n} {what}" for wrong, n, what in kinds if wrong)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "vocabulary"}
        d["vocabulary"] = [r.to_dict() for r in self.vocabulary]
        return d


@contextlib.contextmanager
def expected_tokenizer(alignment: tokenizer.Alignment, max_length: int) -> Iterator[Any]:
    """The tokenizer `convert` writes for this dictionary, loaded back as a user loads it."""
    with tempfile.TemporaryDirectory(prefix="xlmr-reference-tokenizer-") as tmp:
        tokenizer.write_hf_tokenizer(Path(tmp), alignment, max_length)
        yield load_tokenizer(Path(tmp))


def check_tokenizer(
    oracle: FairseqOracle,
    folder: Path,
    texts: list[str],
    dictionary: list[str] | None = None,
    expected: Any = None,
) -> TokenizerCheck:
    """The folder's tokenizer against fairseq's encoder on `texts` and the `dictionary` texts (compare.texts.
    dictionary_texts), and, given the `expected` tokenizer (`reference`), against it over the whole vocabulary."""
    hf_tok = load_tokenizer(folder)
    mismatch = None
    wrong = [0, 0]  # sample texts, dictionary texts
    every = list(texts) + list(dictionary or [])
    # the sample texts as the models run them, truncated; the dictionary's texts whole
    hf_every = itertools.chain(
        (hf_tok(text, truncation=True, max_length=oracle.max_positions)["input_ids"] for text in texts),
        _batch_ids(hf_tok, list(dictionary or [])),
    )
    for i, (text, hf_ids) in enumerate(zip(every, hf_every)):
        sample = i < len(texts)
        ids = oracle.encode(text, truncate=sample).tolist()
        if list(hf_ids) != ids:
            wrong[0 if sample else 1] += 1
            if mismatch is None:
                at = next((j for j, (x, y) in enumerate(zip(ids, hf_ids)) if x != y), min(len(ids), len(hf_ids)))
                shown = text if len(text) <= 60 else text[:57] + "..."
                which = f"text {i}" if sample else f"dictionary text {i - len(texts)}"
                mismatch = f"{which} {shown!r}, token {at}: fairseq {ids[at : at + 4]} vs HF {hf_ids[at : at + 4]}"
    count = sum(wrong)
    if count > 1:
        counted = [f"{wrong[0]} of {len(texts)} texts"] if wrong[0] else []
        counted += [f"{wrong[1]} of {len(every) - len(texts)} dictionary texts"] if wrong[1] else []
        mismatch = f"{' and '.join(counted)} differ; first: {mismatch}"
    if mismatch is None and hf_tok.mask_token_id != oracle.mask_id:
        mismatch = f"<mask> is {hf_tok.mask_token_id} in HF, {oracle.mask_id} in fairseq"
    rows = compare_tokenizers(hf_tok, expected, lambda: every) if expected is not None else []
    if mismatch is None and any(not r.ok for r in rows):
        mismatch = next(f"{r.item}: {r.note}" for r in rows if not r.ok)
    fillers = sum(1 for symbol in oracle.dictionary.symbols if tokenizer.FILLER.match(symbol))
    return TokenizerCheck(
        len(texts), mismatch is None, oracle.mask_id, fillers, mismatch, count, len(dictionary or []), rows, wrong[1]
    )


def compare_tokenizers(a: Any, b: Any, texts: Callable[[], list[str]]) -> list[VocabularyRow]:
    """Tokenizer `a` against `b` (the reference), whole: every id's token, the special tokens, the subword model,
    the pipeline (the ids both give on `texts()`, and, where it is written differently, on a codepoint sweep)."""
    rows = [_vocabulary(a, b), _specials(a, b), _settings(a, b)]
    sa, sb = _backend(a), _backend(b)
    if sa is not None and sa == sb:  # the same tokenizer.json, to the letter (what convert writes, read back)
        rows.append(VocabularyRow("subword model", True))
        differ = []
    elif sa is not None and sb is not None:
        ja, jb = json.loads(sa), json.loads(sb)
        rows.append(_subword_model(ja["model"], jb["model"]))
        differ = [part for part in PIPELINE if ja.get(part) != jb.get(part)]
    else:  # a sentencepiece-backed (slow) tokenizer on either side: its model file, else behaviour alone
        pa, pb = _sentencepiece_proto(a), _sentencepiece_proto(b)
        rows.append(
            VocabularyRow("subword model", pa == pb, "" if pa == pb else "the sentencepiece models differ")
            if pa is not None and pb is not None
            else VocabularyRow("subword model", True, "tokenizer classes differ: judged by the ids they give")
        )
        differ = ["pipeline"]
    # The ids both give are compared on the texts always (settings of the tokenizer class — tokenizer_config.json's,
    # not the pipeline's — change them too), and on every BMP codepoint where the pipeline is written differently.
    probe = [*texts(), *special_texts(b), *(codepoint_texts() if differ else [])]
    expected = list(_batch_ids(b, probe))
    first = next((t for t, x, y in zip(probe, _batch_ids(a, probe), expected) if x != y), None)
    what = f"{', '.join(differ)} written differently; " if differ else ""
    rows.append(
        VocabularyRow("pipeline", True, f"{what}same ids on {len(probe)} texts")
        if first is None
        else VocabularyRow(
            "pipeline",
            False,
            f"{what or 'the same pipeline, other settings: '}{first[:40]!r} gives {_ids(a, first)[:8]} "
            f"instead of {_ids(b, first)[:8]}",
        )
    )
    rows.append(_decoding(a, b, expected, len(probe)))
    return rows


def _settings(a: Any, b: Any) -> VocabularyRow:
    wrong = [
        f"{name} {getattr(a, name, None)!r}, not {getattr(b, name, None)!r}"
        for name in SETTINGS
        if getattr(a, name, None) != getattr(b, name, None)
    ]
    return VocabularyRow("settings", not wrong, "; ".join(wrong))


def _decoding(a: Any, b: Any, ids: list[list[int]], texts: int) -> VocabularyRow:
    """Both tokenizers decode the reference's ids of the probe texts to the same strings, with the special tokens
    and without them (as the fill-mask pipeline shows its answers): the decoder and `clean_up_tokenization_spaces`
    change the text a user reads back, never the ids."""
    for skip in (False, True):
        da, db = a.batch_decode(ids, skip_special_tokens=skip), b.batch_decode(ids, skip_special_tokens=skip)
        first = next((i for i, (x, y) in enumerate(zip(da, db)) if x != y), None)
        if first is not None:
            return VocabularyRow(
                "decoding", False, f"{ids[first][:8]} decodes to {da[first][:40]!r}, not {db[first][:40]!r}"
            )
    return VocabularyRow("decoding", True, f"same text back from the ids of {texts} texts")


# Where a fill-mask text puts a special token: alone, between words, touching them, before punctuation, among spaces.
SPECIAL_CONTEXTS = ("{}", "a {} b", "a{}b", "Hello {}.", "{}!", "x  {}  y")


def special_texts(tok: Any) -> list[str]:
    """The tokenizer's special-token strings in SPECIAL_CONTEXTS: how a text's `<mask>` is matched (its lstrip,
    rstrip, single_word) decides the ids the fill-mask pipeline runs, and no sample or dictionary text holds one."""
    return [context.format(token) for token in tok.all_special_tokens for context in SPECIAL_CONTEXTS]


def codepoint_texts(per_line: int = 32) -> list[str]:
    """Every BMP codepoint (no surrogates) inside and around a word, a line per `per_line` codepoints."""
    points = [c for c in range(0x20, 0x10000) if not 0xD800 <= c <= 0xDFFF]
    return [" ".join(f"a{chr(c)}b {chr(c)}" for c in points[i : i + per_line]) for i in range(0, len(points), per_line)]


def _ids(tok: Any, text: str) -> list[int]:
    """A whole text's ids (no truncation, and no warning that it is longer than the model takes)."""
    return list(tok(text, verbose=False)["input_ids"])


def _batch_ids(tok: Any, texts: list[str], chunk: int = 2048) -> Iterator[list[int]]:
    """Each text's ids as `_ids` gives them, encoded `chunk` texts at a time (a fast tokenizer encodes a batch in
    parallel: a dictionary's texts at XLM-V size are tens of thousands)."""
    for i in range(0, len(texts), chunk):
        yield from (list(ids) for ids in tok(texts[i : i + chunk], verbose=False)["input_ids"])


def _vocabulary(a: Any, b: Any) -> VocabularyRow:
    na, nb = len(a), len(b)
    if na != nb:
        return VocabularyRow("vocabulary", False, f"{na} tokens, the checkpoint's dictionary gives {nb}")
    ta, tb = a.convert_ids_to_tokens(list(range(na))), b.convert_ids_to_tokens(list(range(nb)))
    wrong = [i for i in range(na) if ta[i] != tb[i]]
    if wrong:
        i = wrong[0]
        return VocabularyRow(
            "vocabulary", False, f"{len(wrong)} ids hold another token; first: id {i} is {ta[i]!r}, not {tb[i]!r}"
        )
    return VocabularyRow("vocabulary", True, f"{na} tokens, each at its id")


def _specials(a: Any, b: Any) -> VocabularyRow:
    wrong = []
    for attr in SPECIAL_ATTRIBUTES:
        have = (getattr(a, attr, None), getattr(a, f"{attr}_id", None))
        want = (getattr(b, attr, None), getattr(b, f"{attr}_id", None))
        if have != want:
            wrong.append(f"{attr} {have[0]!r} (id {have[1]}), not {want[0]!r} (id {want[1]})")
    if a.model_max_length != b.model_max_length:
        wrong.append(f"model_max_length {a.model_max_length}, not {b.model_max_length}")
    return VocabularyRow("special tokens", not wrong, "; ".join(wrong))


def _subword_model(ma: dict[str, Any], mb: dict[str, Any]) -> VocabularyRow:
    """Unigram: every piece with its score at its id; BPE: the vocabulary and the merges in order; anything else:
    the model's whole description."""
    if ma.get("type") != mb.get("type"):
        return VocabularyRow("subword model", False, f"a {ma.get('type')} model, not {mb.get('type')}")
    if ma == mb:
        return VocabularyRow("subword model", True)
    if ma.get("type") == "Unigram" and ma.get("vocab") != mb.get("vocab"):
        va, vb = ma.get("vocab") or [], mb.get("vocab") or []
        i = next((i for i, (x, y) in enumerate(zip(va, vb)) if x != y), min(len(va), len(vb)))
        shown = (va[i] if i < len(va) else None, vb[i] if i < len(vb) else None)
        return VocabularyRow("subword model", False, f"piece {i} is {shown[0]}, not {shown[1]} (piece, score)")
    if ma.get("type") == "BPE" and ma.get("merges") != mb.get("merges"):
        return VocabularyRow("subword model", False, "the BPE merges differ")
    other = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    return VocabularyRow("subword model", False, f"{ma.get('type')} settings differ: {', '.join(other)}")


def _backend(tok: Any) -> str | None:
    """A fast tokenizer's whole pipeline as tokenizer.json writes it (None: a sentencepiece-backed one)."""
    backend = getattr(tok, "backend_tokenizer", None) if getattr(tok, "is_fast", False) else None
    return str(backend.to_str()) if backend is not None else None


def _sentencepiece_proto(tok: Any) -> bytes | None:
    sp = getattr(tok, "sp_model", None)
    return sp.serialized_model_proto() if sp is not None else None
