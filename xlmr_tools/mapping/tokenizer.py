"""dict.txt vs sentencepiece vs embedding rows, and an HF tokenizer whose ids are fairseq's.

fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3, then dict.txt's symbols in order, then <mask> (appended by the
masked_lm task at load time, *after* any `madeupwordNNNN` padding fillers). The HF XLM-R tokenizer maps piece i to
i+1 and puts <mask> right after the pieces, so it agrees only when dict.txt lists the pieces in sentencepiece order;
with fillers, the written tokenizer gets the fillers too so that <mask> lands on fairseq's row.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from xlmr_tools.errors import BadInput

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
FILLER = re.compile(r"^madeupword\d+$")
_DICT_LINE = re.compile(r"^(.+?) -?\d+(?: #fairseq:overwrite)?[ \t]*$", re.M)


@dataclass
class Alignment:
    dict_symbols: int  # lines in dict.txt
    pieces: int  # sentencepiece pieces (including its 3 control/unk pieces)
    fillers: int  # madeupwordNNNN padding symbols after the pieces
    mask_id: int  # fairseq's <mask> row
    embedding_rows: int
    filler_symbols: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if k != "filler_symbols"}


def read_dict(path: Path) -> list[str]:
    """Symbols of a fairseq dict.txt, in order (fairseq's format: `symbol count [#fairseq:overwrite]`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    lines = text.splitlines()
    fast = _DICT_LINE.findall(text)  # one regex pass: 5x faster than the loop on XL's 250k lines
    if len(fast) == len(lines) and lines:
        return fast
    symbols = []
    for n, line in enumerate(lines, 1):  # slow path: find and name the bad line
        parts = line.rstrip().rsplit(" ", 2)
        if parts and parts[-1] == "#fairseq:overwrite":
            parts = parts[:-1]
        if len(parts) < 2 or not parts[-1].lstrip("-").isdigit():
            raise BadInput(path, f"line {n} is not '<symbol> <count>': {line[:60]!r}")
        symbols.append(" ".join(parts[:-1]) if len(parts) > 2 else parts[0])
    if not symbols:
        raise BadInput(path, "empty dictionary")
    return symbols


def read_pieces(path: Path) -> list[str]:
    import sentencepiece as spm

    try:
        sp = spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        raise BadInput(path, f"not a sentencepiece model ({str(e).splitlines()[0][:120]})") from e
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def align(dict_path: Path, spm_path: Path, embedding_rows: int) -> Alignment:
    symbols = read_dict(dict_path)
    pieces = read_pieces(spm_path)
    body = pieces[3:]  # sentencepiece ids 0..2 are <unk>, <s>, </s>: fairseq's specials cover them
    for i, (sym, piece) in enumerate(zip(symbols, body)):
        if sym != piece:
            raise BadInput(
                dict_path,
                f"line {i + 1} is {sym!r} but sentencepiece piece {i + 3} is {piece!r}: "
                "dict.txt is not in sentencepiece order, so HF token ids would not be fairseq's",
            )
    if len(symbols) < len(body):
        raise BadInput(dict_path, f"{len(symbols)} symbols but the sentencepiece model has {len(body)} pieces")
    extra = symbols[len(body) :]
    bad = [s for s in extra if not FILLER.match(s)]
    if bad:
        raise BadInput(
            dict_path,
            f"{len(extra)} symbols after the sentencepiece pieces, not all padding fillers (first: {bad[0]!r})",
        )
    mask_id = len(FAIRSEQ_SPECIALS) + len(symbols)
    if mask_id + 1 != embedding_rows:
        raise BadInput(
            dict_path,
            f"dictionary gives {mask_id + 1} ids (4 specials + {len(symbols)} symbols + "
            f"<mask>) but the embedding has {embedding_rows} rows",
        )
    return Alignment(len(symbols), len(pieces), len(extra), mask_id, embedding_rows, tuple(extra))


# A filler's string in tokenizer.json: fairseq's symbol with the word-boundary mark after it. The pre-tokenizer
# (Metaspace, split=True) cuts text into words that carry "▁" only as their first character, so a piece with "▁"
# anywhere else can never match any input: the fillers keep their ids (and <mask> its row) but are unreachable,
# as they are in fairseq, whose sentencepiece has no such pieces. "madeupword0005" in text is spelled out in pieces.
FILLER_MARK = "\u2581"


def filler_token(symbol: str) -> str:
    return symbol + FILLER_MARK


def write_hf_tokenizer(spm_path: Path, out: Path, alignment: Alignment, max_length: int) -> None:
    """tokenizer.json, tokenizer_config.json and sentencepiece.bpe.model in `out`, <mask> on fairseq's id.

    transformers' own conversion of the sentencepiece model gives the vocabulary (specials, pieces with their
    scores, <mask> last) and the normalizer's charsmap; fairseq's fillers go in before <mask>, unreachable (see
    FILLER_MARK) and scored at the vocabulary's minimum, so the Unigram model's penalty for unknown characters
    (derived from that minimum) is what it is without them. The tokenizer is then built once by transformers'
    XLMRobertaTokenizer from that vocabulary (tokenizers' Unigram underneath): special-token ids are resolved
    against it, so <mask> lands on fairseq's row without editing any file."""
    from transformers import XLMRobertaTokenizer

    shutil.copyfile(spm_path, out / "sentencepiece.bpe.model")
    native = XLMRobertaTokenizer.convert_to_native_format(vocab_file=str(out / "sentencepiece.bpe.model"))
    vocab = native["vocab"]
    if not vocab or vocab[-1][0] != "<mask>" or vocab[3][0] != "<unk>":
        raise RuntimeError("transformers' XLM-R conversion no longer ends its vocabulary with <mask> after <unk>=3")
    if alignment.fillers:
        floor = min(score for _, score in vocab)
        vocab = vocab[:-1] + [(filler_token(symbol), floor) for symbol in alignment.filler_symbols] + vocab[-1:]
    tok = XLMRobertaTokenizer(**{**native, "vocab": vocab}, model_max_length=max_length)
    if tok.convert_tokens_to_ids("<mask>") != alignment.mask_id:
        raise RuntimeError(f"<mask> did not land on fairseq's row {alignment.mask_id}")
    tok.save_pretrained(str(out))
