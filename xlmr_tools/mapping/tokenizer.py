"""dict.txt vs the subword model vs embedding rows, and an HF tokenizer whose ids are fairseq's.

fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3, then dict.txt's symbols in order, then <mask> (appended by the
masked_lm task at load time, *after* any `madeupwordNNNN` padding fillers). fairseq segments a text with the whole
subword model (sentencepiece, or GPT-2's byte-level BPE whose token ids dict.txt lists as numbers) and then looks each
piece up in dict.txt: a piece it lacks becomes <unk>; a symbol listed twice (`#fairseq:overwrite`, as CamemBERT's
dict.txt lists the model's own <unk>, <s> and </s>) takes the later id.

Two routes, each exact where it is taken:
- A fast (tokenizers) tokenizer whose vocabulary is laid out in fairseq's id order: each dict.txt symbol that is a
  piece of the subword model keeps the piece (its sentencepiece score; its BPE merges), so segmentation is the
  subword model's, and gets fairseq's id. Exact when dict.txt holds every piece and nothing the subword model can
  emit besides them: the releases (dict.txt in the model's order, perhaps padded with fillers, kept unreachable) and a
  pretraining whose dict.txt is the sentencepiece vocabulary in another order.
- Sentencepiece with the dictionary looked up, fairseq's own algorithm (transformers' BartphoTokenizer: the
  sentencepiece model segments, dict.txt gives the ids, anything else is <unk>). A dict.txt made by
  fairseq-preprocess from an encoded corpus lacks the pieces the corpus never produced (fairseq maps them to <unk>
  after segmenting, which no vocabulary of a fast tokenizer can express: a piece there has an id of its own) and holds
  the raw characters sentencepiece emits for what its model does not cover (ids of their own, which a fast tokenizer
  would have to make reachable). Such a dictionary takes this route, by default.
A GPT-2 (or CamemBERT-style) dictionary lacking tokens some text encodes to has no exact route (a BPE vocabulary
cannot give two strings one id either: tokenizers serializes it by id, and the merges with it): it is refused unless
the user accepts it. Tokens no text encodes to (a vocab.json's <s> or <mask>) are missing from nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlmr_tools.errors import BadInput
from xlmr_tools.model import CAMEMBERT, GPT2, SENTENCEPIECE

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
FILLER = re.compile(r"^madeupword\d+$")
_DICT_LINE = re.compile(r"^(.+?) -?\d+( #fairseq:overwrite)?[ \t]*$", re.M)
# The files each vocabulary's tokenizer is made from, by the names fairseq's releases give them.
MODEL_FILES = {
    SENTENCEPIECE: ("sentencepiece.bpe.model",),
    CAMEMBERT: ("sentencepiece.bpe.model",),
    GPT2: ("encoder.json", "vocab.bpe"),
}
# The transformers tokenizer class written for each vocabulary (tokenizer_config.json names it for AutoTokenizer).
TOKENIZER_CLASS = {SENTENCEPIECE: "XLMRobertaTokenizer", CAMEMBERT: "CamembertTokenizer", GPT2: "RobertaTokenizer"}
LOOKUP_CLASS = "BartphoTokenizer"  # sentencepiece + dict.txt lookup: fairseq's own algorithm (see the docstring)

# A name for a special fairseq's dictionary keeps at ids 0-3 while dict.txt gives the symbol a later id (CamemBERT):
# the string is then the later id's; the early id keeps the name transformers' CamemBERT gives it.
NOT_USED = "NOTUSED"
LOOKED_UP = ("<s>", "</s>")  # specials fairseq's hub encoder writes into the text (and so looks up in dict.txt)


@dataclass
class Alignment:
    dict_symbols: int  # lines in dict.txt
    pieces: int  # the subword model's vocabulary (sentencepiece: with its control and unknown pieces)
    fillers: int  # dict.txt symbols that are no piece of the subword model (madeupwordNNNN padding, mostly)
    mask_id: int  # fairseq's <mask> row
    embedding_rows: int
    order: str = "sentencepiece"  # dict.txt lists the pieces in the subword model's order, or "dictionary"
    missing: tuple[str, ...] = ()  # pieces of the subword model dict.txt lacks (fairseq maps them to <unk>)
    symbols: tuple[str, ...] = ()  # dict.txt, in order (fairseq ids 4..)
    vocabulary: str = SENTENCEPIECE
    files: dict[str, Path] = field(default_factory=dict)  # the subword model's files, by MODEL_FILES name
    raw: tuple[str, ...] = ()  # dict.txt symbols that are no piece and no filler: what sentencepiece emits as it is
    model_type: str | None = None  # the transformers model_type the tokenizer is written for
    # AutoTokenizer honours tokenizer_config.json's tokenizer_class for that model type (families.base.Family.
    # autotokenizer_honours_class): else it loads tokenizer.json, and the lookup tokenizer, which has none, cannot load
    lookup_loadable: bool = True
    # dict.txt symbols no text encodes to (byte-level BPE: the special tokens a vocab.json lists, bytes UTF-8 never
    # uses: mapping.tokenizer.reachable_tokens); fairseq gives them ids that nothing ever gets
    unreachable: frozenset[str] = frozenset()
    add_prefix_space: bool = False  # the byte-level BPE reads a text with a space before it (bpe_add_prefix_space)
    # what the sentencepiece model does that the fast tokenizer cannot (sentencepiece_traits): then only the lookup
    # route, where sentencepiece itself segments, gives fairseq's ids
    traits: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "dict_symbols": self.dict_symbols, "pieces": self.pieces,
                "fillers": self.fillers, "mask_id": self.mask_id, "embedding_rows": self.embedding_rows,
                "order": self.order, "missing_pieces": len(self.missing), "raw_symbols": len(self.raw),
                "sentencepiece_traits": list(self.traits), "specials": self.specials,
                "tokenizer_class": self.tokenizer_class}  # fmt: skip

    @property
    def lookup(self) -> bool:
        """The tokenizer must look pieces up in dict.txt, as fairseq does (see the module docstring), and
        AutoTokenizer will load such a tokenizer for this model type."""
        return self.lookup_needed and self.lookup_loadable

    @property
    def lookup_needed(self) -> bool:
        return self.vocabulary == SENTENCEPIECE and bool(self.missing or self.raw or self.traits)

    @property
    def whitespace_pieces(self) -> str | None:
        """The sentencepiece normalization, where it leaves whitespace in pieces (see FAST_NORMALIZERS)."""
        return next((t.split("=", 1)[1] for t in self.traits if t.startswith(NORMALIZATION + "=")), None)

    @property
    def inexact(self) -> str | None:
        """Why no tokenizer AutoTokenizer loads for this model gives fairseq's ids on every text, or None."""
        if self.whitespace_pieces:
            return (
                f"indexes a sentencepiece model trained with {NORMALIZATION}={self.whitespace_pieces}, which leaves "
                "whitespace characters (tabs, newlines) in its pieces; fairseq drops them when it looks the pieces up "
                "in dict.txt (it splits them on whitespace), which no tokenizer AutoTokenizer loads does"
            )
        if self.lookup_needed and not self.lookup:
            what = ", ".join(x for x in (
                f"lacks {self.missing_summary()}" if self.missing else "",
                f"holds {len(self.raw)} {'symbol' if len(self.raw) == 1 else 'symbols'} sentencepiece emits as they are"
                if self.raw else "",
                f"indexes a sentencepiece model trained with {self.traits_summary()}" if self.traits else "",
            ) if x)  # fmt: skip
            return (
                f"{what}, so the tokenizer must look pieces up in dict.txt as fairseq does; AutoTokenizer loads every "
                f"{self.model_type} folder through tokenizer.json whatever tokenizer_config.json names (transformers' "
                "own rule), and no tokenizer.json can look pieces up"
            )
        if self.traits and not self.lookup:
            return (
                f"indexes a sentencepiece model trained with {self.traits_summary()}, which only sentencepiece itself "
                f"segments as fairseq does; no tokenizer.json or {TOKENIZER_CLASS[self.vocabulary]} can"
            )
        if self.missing and not self.lookup:
            return (
                f"lacks {self.missing_summary()}: fairseq segments texts with them and then maps them to <unk>, which "
                "no tokenizer.json can reproduce"
            )
        return None

    @property
    def tokenizer_class(self) -> str:
        """The transformers tokenizer class written for this dictionary (tokenizer_config.json names it)."""
        return LOOKUP_CLASS if self.lookup else TOKENIZER_CLASS[self.vocabulary]

    @property
    def specials(self) -> dict[str, int]:
        """fairseq's id for each special as its encoder uses it. <s> and </s> are written into the text and looked
        up, so a later dict.txt line wins (CamemBERT: 5 and 6); <pad> and <unk> are the dictionary's own indices
        (padding; any piece not in dict.txt), 1 and 3 whatever dict.txt lists."""
        ids = {s: i for i, s in enumerate(FAIRSEQ_SPECIALS)}
        for i, s in enumerate(self.symbols):
            if s in LOOKED_UP:
                ids[s] = len(FAIRSEQ_SPECIALS) + i
        return ids

    def token_names(self) -> list[str]:
        """The tokenizer's string for ids 0.. of fairseq's specials and dict.txt's specials: a special is named
        as itself at the id fairseq uses for it (see `specials`), and "<s>NOTUSED"-style at its other id."""
        used = self.specials
        names = [s if used[s] == i else s + NOT_USED for i, s in enumerate(FAIRSEQ_SPECIALS)]
        for i, s in enumerate(self.symbols, start=len(FAIRSEQ_SPECIALS)):
            if s in FAIRSEQ_SPECIALS:
                names.append(s if used[s] == i else s + NOT_USED)
            else:
                names.append(s)
        return names

    def traits_summary(self) -> str:
        return ", ".join(self.traits)

    def missing_summary(self, shown: int = 5) -> str:
        first = ", ".join(repr(p) for p in self.missing[:shown])
        more = f", … ({len(self.missing) - shown} more)" if len(self.missing) > shown else ""
        kind = "GPT-2 BPE tokens" if self.vocabulary == GPT2 else "sentencepiece model's pieces"
        return f"{len(self.missing)} of the {kind} ({first}{more})"


def read_dict(path: Path) -> list[str]:
    """Symbols of a fairseq dict.txt, in order (fairseq's format: `symbol count [#fairseq:overwrite]`), refused
    where fairseq's Dictionary refuses it: a line that is not `symbol count` (an empty line too), or a symbol listed
    again (or one of fairseq's own specials listed) without `#fairseq:overwrite`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    # fairseq's readlines(): lines end at "\n" only (read_text has already made "\r\n" and "\r" "\n", as
    # fairseq's open() does); str.splitlines would also split at U+0085, U+2028, \x1c, ... inside a symbol
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    fast = _DICT_LINE.findall(text)  # one regex pass: 5x faster than the loop on XL's 250k lines
    if len(fast) != len(lines) or not lines:
        fast = []
        for n, line in enumerate(lines, 1):  # slow path: find and name the bad line
            parts = line.rstrip().rsplit(" ", 2)
            overwrite = bool(parts) and parts[-1] == "#fairseq:overwrite"
            if overwrite:
                parts = parts[:-1]
            if len(parts) < 2 or not parts[-1].lstrip("-").isdigit():
                raise BadInput(path, f"line {n} is not '<symbol> <count>': {line[:60]!r}")
            fast.append((" ".join(parts[:-1]) if len(parts) > 2 else parts[0], " #fairseq:overwrite" * overwrite))
    if not fast:
        raise BadInput(path, "empty dictionary")
    seen = set(FAIRSEQ_SPECIALS)
    for n, (symbol, overwrite) in enumerate(fast, 1):
        if symbol in seen and not overwrite:
            raise BadInput(
                path,
                f"line {n} lists {symbol!r} again (fairseq refuses a repeated symbol, and its own specials, "
                "without #fairseq:overwrite)",
            )
        seen.add(symbol)
    return [symbol for symbol, _ in fast]


def vocabulary_of(symbols: list[str]) -> str:
    """Which subword model a dict.txt indexes: GPT-2 BPE lists token ids as numbers; a dictionary that lists
    fairseq's own specials (#fairseq:overwrite, else fairseq refuses the duplicate) is CamemBERT's layout."""
    body = [s for s in symbols if not FILLER.match(s) and s not in FAIRSEQ_SPECIALS]
    if body and sum(s.isdigit() for s in body) >= 0.9 * len(body):
        return GPT2
    if any(s in FAIRSEQ_SPECIALS for s in symbols):
        return CAMEMBERT
    return SENTENCEPIECE


def read_pieces(path: Path) -> tuple[list[str], tuple[str, ...]]:
    """The sentencepiece model's normal pieces, in its order (its control and unknown pieces are fairseq's
    specials), and what in it the fast tokenizer cannot reproduce (`sentencepiece_traits`)."""
    import sentencepiece as spm

    try:
        sp = spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        raise BadInput(path, f"not a sentencepiece model ({str(e).splitlines()[0][:120]})") from e
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    return pieces, sentencepiece_traits(sp.serialized_model_proto())


# The sentencepiece normalizations transformers' conversion reproduces (XLM-R's is nmt_nfkc), which also turn every
# whitespace character into a space: under any other (nfkc keeps tabs and newlines, identity every whitespace
# character) sentencepiece emits pieces of whitespace, which fairseq's dictionary lookup drops (Dictionary.encode_line
# splits the joined pieces on whitespace) and no tokenizer AutoTokenizer loads drops.
FAST_NORMALIZERS = ("nmt_nfkc", "nmt_nfkc_cf")
NORMALIZATION = "normalization_rule_name"


def sentencepiece_traits(proto: bytes) -> tuple[str, ...]:
    """What a sentencepiece model does that the fast tokenizer does not (transformers' XLM-R conversion: a tokenizers
    Unigram over the pieces and their scores, behind nmt_nfkc normalization, a `▁` before every word, runs of spaces
    collapsed), each named by the spm_train option that makes it. The fast route was measured against fairseq's
    encoder on the fixture corpus, for dict.txt the model's vocabulary: exact for the defaults and split_digits,
    split_by_number, split_by_unicode_script, control_symbols, character_coverage, max_sentencepiece_length,
    allow_whitespace_only_pieces; other ids on ordinary text for each option listed here — a `bpe` model (its scores
    are no Unigram log-probabilities; `char` and `word` models, not proven either way, are treated alike),
    byte_fallback (sentencepiece spells what it does not cover as
    `<0xNN>` pieces; the conversion makes it <unk>), user_defined_symbols (sentencepiece keeps the `▁` before them as
    a piece of its own; the conversion loses it), another normalization (nfkc keeps tabs and newlines, identity also
    the non-breaking spaces), add_dummy_prefix=false, remove_extra_whitespaces=false, split_by_whitespace=false,
    treat_whitespace_as_suffix=true, special ids that leave a piece among ids 0-2 (`unk_id=3 bos_id=0 eos_id=1`,
    `bos_id=-1 eos_id=-1`: the conversion drops ids 0-2 as XLM-R's <unk>, <s>, </s>). Such a model takes the lookup
    route (sentencepiece itself segments), exact for every one of them — but another normalization, which leaves
    whitespace in pieces: no route is exact there (Alignment.whitespace_pieces)."""
    from sentencepiece import sentencepiece_model_pb2

    model_pb2: Any = sentencepiece_model_pb2  # generated protobuf code: no types for mypy
    model = model_pb2.ModelProto()
    model.ParseFromString(proto)
    trainer, normalizer = model.trainer_spec, model.normalizer_spec
    traits = []
    if trainer.model_type != model_pb2.TrainerSpec.UNIGRAM:
        traits.append(f"model_type={model_pb2.TrainerSpec.ModelType.Name(trainer.model_type).lower()}")
    if trainer.byte_fallback:
        traits.append("byte_fallback")
    user = [p.piece for p in model.pieces if p.type == model_pb2.ModelProto.SentencePiece.USER_DEFINED]
    if user:
        shown = ", ".join(repr(p) for p in user[:3]) + (", …" if len(user) > 3 else "")
        traits.append(f"{len(user)} user_defined_symbols ({shown})")
    kinds = model_pb2.ModelProto.SentencePiece
    if any(p.type not in (kinds.CONTROL, kinds.UNKNOWN) for p in model.pieces[:3]):
        # transformers' conversion takes the first three pieces for <unk>, <s>, </s> and drops them
        traits.append(", ".join(f"{k}={getattr(trainer, k)}" for k in ("unk_id", "bos_id", "eos_id", "pad_id")))
    if normalizer.name not in FAST_NORMALIZERS:
        traits.append(f"{NORMALIZATION}={normalizer.name}")
    traits += [f"{flag}={str(value).lower()}" for flag, value, usual in (
        ("add_dummy_prefix", normalizer.add_dummy_prefix, True),
        ("remove_extra_whitespaces", normalizer.remove_extra_whitespaces, True),
        ("escape_whitespaces", normalizer.escape_whitespaces, True),
        ("split_by_whitespace", trainer.split_by_whitespace, True),
        ("treat_whitespace_as_suffix", trainer.treat_whitespace_as_suffix, False),
    ) if value != usual]  # fmt: skip
    return tuple(traits)


def read_gpt2_encoder(path: Path) -> dict[str, int]:
    """GPT-2's encoder.json: {byte-level token string: GPT-2 id}."""
    try:
        encoder = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(path, f"not GPT-2's encoder.json ({e})") from e
    if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
        raise BadInput(path, "not GPT-2's encoder.json (a JSON object of token -> id)")
    return encoder


def read_gpt2_merges(path: Path) -> list[tuple[str, str]]:
    """GPT-2's vocab.bpe: a `#version` line, then one merge (`a b`) per line, in priority order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BadInput(path, f"not GPT-2's vocab.bpe (not UTF-8: {e.reason})") from e
    merges = []
    for n, line in enumerate(lines, 1):
        if n == 1 and line.startswith("#version"):
            continue
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise BadInput(path, f"line {n} is not a merge '<a> <b>': {line[:60]!r}")
        merges.append((parts[0], parts[1]))
    return merges


# The flag that names each of the files (by its MODEL_FILES name, whatever a family calls the file).
FILE_FLAGS = {"sentencepiece.bpe.model": "--spm", "encoder.json": "--encoder-json", "vocab.bpe": "--vocab-bpe"}


def model_files(
    vocabulary: str, folder: Path, given: dict[str, Path | None], names: dict[str, str] | None = None
) -> dict[str, Path]:
    """The subword model's files for this vocabulary, by their MODEL_FILES names: the ones given (--spm,
    --encoder-json, --vocab-bpe) or the ones beside the checkpoint, under the family's own names where it has them
    (`names`: families.Family.tokenizer_files, e.g. a byte-level BPE's vocab.json for encoder.json); BadInput naming
    what is missing."""
    found: dict[str, Path] = {}
    for name in MODEL_FILES[vocabulary]:
        called = (names or {}).get(name, name)
        path = given.get(name) or folder / called
        if not path.is_file():
            raise BadInput(
                folder,
                f"{called} is needed beside the checkpoint for its {vocabulary} vocabulary (or name it with "
                f"{FILE_FLAGS[name]}); xlmr never downloads it",
            )
        found[name] = path
    return found


# Bytes no UTF-8 text holds (overlong lead bytes, lead bytes beyond U+10FFFF): a byte-level BPE reads a text's UTF-8.
NOT_IN_UTF8 = frozenset({0xC0, 0xC1, *range(0xF5, 0x100)})


def reachable_tokens(encoder: dict[str, int], merges: list[tuple[str, str]]) -> set[str]:
    """The tokens a byte-level BPE can emit: the symbols of the bytes a UTF-8 text can hold and whatever a merge makes
    of tokens it can emit. A vocabulary's special tokens (<s>, <mask>, GPT-2's <|endoftext|>) are neither, nor is
    the symbol of a byte UTF-8 never uses: no text encodes to them."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    reachable = {t for b, t in bytes_to_unicode().items() if b not in NOT_IN_UTF8 and t in encoder}
    grew = True
    while grew:  # merges are listed in the order they were learned, so one pass nearly always suffices
        before = len(reachable)
        reachable.update(a + b for a, b in merges if a in reachable and b in reachable and a + b in encoder)
        grew = len(reachable) != before
    return reachable


def align(
    dict_path: Path,
    files: dict[str, Path],
    embedding_rows: int,
    symbols: list[str] | None = None,
    model_type: str | None = None,
    lookup_loadable: bool = True,
    add_prefix_space: bool = False,
) -> Alignment:
    """dict.txt against the subword model (`files`, from model_files) and the embedding's rows; `symbols`: dict.txt as
    already read (parsing one of XLM-V's size takes a while: docs/benchmarks.md), else it is read here; `model_type`:
    the transformers model type the tokenizer is for; `lookup_loadable`: whether AutoTokenizer loads the lookup
    tokenizer for it; `add_prefix_space`: a byte-level BPE that reads texts with a space before them (as the
    checkpoint records). A token dict.txt lacks that the subword model can never emit is not missing: fairseq never
    looks it up."""
    symbols = read_dict(dict_path) if symbols is None else symbols
    vocabulary = vocabulary_of(symbols)
    mask_id = len(FAIRSEQ_SPECIALS) + len(symbols)
    if mask_id + 1 != embedding_rows:
        raise BadInput(
            dict_path,
            f"dictionary gives {mask_id + 1} ids (4 specials + {len(symbols)} symbols + "
            f"<mask>) but the embedding has {embedding_rows} rows",
        )
    specials = [s for s in symbols if s in FAIRSEQ_SPECIALS]
    twice = next((s for s in specials if specials.count(s) > 1), None)
    if twice is not None:
        raise BadInput(dict_path, f"lists {twice} twice")
    plain = [s for s in symbols if s not in FAIRSEQ_SPECIALS]
    shown: dict[str, str] = {}  # how a missing piece is named to the user
    unreachable: set[str] = set()  # pieces (as dict.txt spells them) the subword model never emits
    traits: tuple[str, ...] = ()
    if vocabulary == GPT2:
        encoder = read_gpt2_encoder(files["encoder.json"])
        body = [str(i) for i in sorted(encoder.values())]
        shown = {str(i): t for t, i in encoder.items()}
        size = len(encoder)
        emitted = reachable_tokens(encoder, read_gpt2_merges(files["vocab.bpe"]))
        unreachable = {str(i) for t, i in encoder.items() if t not in emitted}
    else:
        body, traits = read_pieces(files["sentencepiece.bpe.model"])
        size = len(body) + 3
    pieces = set(body)
    in_dict = set(symbols)
    model_order = plain[: len(body)] == body and all(FILLER.match(s) for s in plain[len(body) :])
    not_pieces = [s for s in plain if s not in pieces]
    return Alignment(
        len(symbols), size, sum(1 for s in not_pieces if FILLER.match(s)), mask_id, embedding_rows,
        ("encoder" if vocabulary == GPT2 else "sentencepiece") if model_order else "dictionary",
        tuple(shown.get(p, p) for p in body if p not in in_dict and p not in unreachable), tuple(symbols),
        vocabulary, {name: files[name] for name in MODEL_FILES[vocabulary]},
        tuple(s for s in not_pieces if not FILLER.match(s)) if vocabulary != GPT2 else (), model_type,
        lookup_loadable, frozenset(unreachable & in_dict), add_prefix_space, traits,
    )  # fmt: skip


# A filler's string in tokenizer.json: fairseq's symbol with a character after it that no input word can end in.
# sentencepiece: the pre-tokenizer (Metaspace, split=True) cuts text into words that carry "▁" only as their first
# character, so a piece with "▁" anywhere else can never match. GPT-2 BPE: a token is only ever made by merges, and
# a plain space is no character of the byte-level alphabet. The fillers keep their ids (and <mask> its row) but are
# unreachable, as they are in fairseq, whose subword model has no such pieces.
FILLER_MARK = {SENTENCEPIECE: "\u2581", CAMEMBERT: "\u2581", GPT2: " "}


def filler_token(symbol: str, vocabulary: str = SENTENCEPIECE) -> str:
    return symbol + FILLER_MARK[vocabulary]


def write_hf_tokenizer(out: Path, alignment: Alignment, max_length: int) -> None:
    """The tokenizer files in `out` (tokenizer.json, tokenizer_config.json, the subword model's own files), ids,
    specials and <mask> fairseq's; built by transformers' own tokenizer class for the vocabulary, from a vocabulary
    laid out in fairseq's id order (see the module docstring), so special-token ids are resolved against it and
    nothing is edited after."""
    tok = (_lookup if alignment.lookup else _BUILDERS[alignment.vocabulary])(out, alignment, max_length)
    if tok.convert_tokens_to_ids("<mask>") != alignment.mask_id:
        raise RuntimeError(f"<mask> did not land on fairseq's row {alignment.mask_id}")
    for name, fairseq_id in alignment.specials.items():
        if tok.convert_tokens_to_ids(name) != fairseq_id:
            raise RuntimeError(f"{name} did not land on fairseq's id {fairseq_id}")
    try:
        tok.save_pretrained(str(out))
    except Exception as e:
        # the tokenizers library (Rust) reports a failed write as a bare Exception("... (os error 27)"): made the
        # OSError it is, so a full disk or `ulimit -f` reads as any other failed write
        m = re.search(r"\(os error (\d+)\)", str(e))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code)) from e


def _sentencepiece(out: Path, alignment: Alignment, max_length: int):
    """transformers' own conversion of the sentencepiece model gives the pieces' scores and the normalizer's
    charsmap; symbols that are no piece are scored at the vocabulary's minimum, so the Unigram model's penalty for
    unknown characters (derived from that minimum) is what it is without them. The Unigram unknown id is 3, as in
    fairseq: sentencepiece hands out an unknown character as itself, which dict.txt lacks (CamemBERT's listed
    "<unk>", id 4, is never produced)."""
    from transformers import CamembertTokenizer, XLMRobertaTokenizer

    shutil.copyfile(alignment.files["sentencepiece.bpe.model"], out / "sentencepiece.bpe.model")
    native = XLMRobertaTokenizer.convert_to_native_format(vocab_file=str(out / "sentencepiece.bpe.model"))
    stock = native["vocab"]
    if not stock or stock[-1][0] != "<mask>" or [p for p, _ in stock[:4]] != list(FAIRSEQ_SPECIALS):
        raise RuntimeError("transformers' XLM-R conversion changed its vocabulary layout (specials, pieces, <mask>)")
    score = dict(stock[4:-1])
    floor = min(s for _, s in stock)
    names = alignment.token_names()
    vocab = [(name, 0.0) for name in names[: len(FAIRSEQ_SPECIALS)]]
    for sym, name in zip(alignment.symbols, names[len(FAIRSEQ_SPECIALS) :]):
        if sym in FAIRSEQ_SPECIALS:
            vocab.append((name, 0.0))
        elif sym in score:
            vocab.append((sym, score[sym]))
        else:
            vocab.append((filler_token(sym, alignment.vocabulary), floor))
    vocab.append(stock[-1])
    if alignment.vocabulary == CAMEMBERT:
        return CamembertTokenizer(
            vocab=vocab,
            _spm_precompiled_charsmap=native.get("_spm_precompiled_charsmap"),
            vocab_file=str(out / "sentencepiece.bpe.model"),
            additional_special_tokens=[n for n in alignment.token_names() if n.endswith(NOT_USED)],
            model_max_length=max_length,
        )
    return XLMRobertaTokenizer(**{**native, "vocab": vocab}, model_max_length=max_length)


def _gpt2(out: Path, alignment: Alignment, max_length: int):
    """transformers' RobertaTokenizer (byte-level BPE) with GPT-2's merges and a vocabulary mapping each token's
    string to fairseq's id for it. Tokens dict.txt lacks (accepted by the user) are left out with the merges that
    make them or use them. A token spelled as one of the tokenizer's specials (a byte-level BPE's vocab.json lists
    <s>, <mask>, ... among its tokens) keeps its id under a filler's name: the specials keep fairseq's ids."""
    from transformers import RobertaTokenizer

    encoder = read_gpt2_encoder(alignment.files["encoder.json"])
    merges = read_gpt2_merges(alignment.files["vocab.bpe"])
    specials = {*FAIRSEQ_SPECIALS, "<mask>"}
    token_of = {str(i): t for t, i in encoder.items() if t not in specials}
    vocab: dict[str, int] = {}
    names = alignment.token_names()
    for i, name in enumerate(names[: len(FAIRSEQ_SPECIALS)]):
        vocab[name] = i
    for i, (sym, name) in enumerate(zip(alignment.symbols, names[len(FAIRSEQ_SPECIALS) :]), len(FAIRSEQ_SPECIALS)):
        vocab[token_of.get(sym) or (name if sym in FAIRSEQ_SPECIALS else filler_token(sym, GPT2))] = i
    vocab["<mask>"] = alignment.mask_id
    merges = [(a, b) for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    # transformers' own file pair beside tokenizer.json (what roberta-base on the Hub has): the vocabulary in fairseq's
    # ids and the merges kept; GPT-2's encoder.json (GPT-2's ids) is not copied, it would mislead
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return RobertaTokenizer(
        vocab=vocab,
        # tokenizers takes merges as (a, b) pairs; transformers' annotation says strings, which tokenizers rejects
        merges=merges,  # type: ignore[arg-type]
        add_prefix_space=alignment.add_prefix_space,
        model_max_length=max_length,
    )


def _lookup(out: Path, alignment: Alignment, max_length: int):
    """transformers' BartphoTokenizer: the sentencepiece model segments, dict.txt (copied beside it) gives the ids,
    a piece it lacks is <unk>, <mask> comes last — fairseq's encoding step for step. It reads a dict.txt line's symbol
    as its first whitespace-separated field: a symbol that is not one such field cannot be read back, and is refused."""
    from transformers import BartphoTokenizer

    unreadable = next((s for s in alignment.symbols if s.split()[:1] != [s]), None)
    if unreadable is not None:
        raise BadInput(
            None,
            f"dict.txt symbol {unreadable!r} holds whitespace: the sentencepiece + dict.txt tokenizer cannot read it",
        )
    shutil.copyfile(alignment.files["sentencepiece.bpe.model"], out / "sentencepiece.bpe.model")
    (out / "dict.txt").write_text("".join(f"{s} 1\n" for s in alignment.symbols), encoding="utf-8")
    tok = BartphoTokenizer(
        vocab_file=str(out / "sentencepiece.bpe.model"),
        monolingual_vocab_file=str(out / "dict.txt"),
        model_max_length=max_length,
    )
    ids = tok.fairseq_tokens_to_ids
    at = next((i for i, s in enumerate(alignment.symbols, len(FAIRSEQ_SPECIALS)) if ids.get(s) != i), None)
    if at is not None:
        raise RuntimeError(f"dict.txt symbol {alignment.symbols[at - len(FAIRSEQ_SPECIALS)]!r} did not land on id {at}")
    return tok


_BUILDERS = {SENTENCEPIECE: _sentencepiece, CAMEMBERT: _sentencepiece, GPT2: _gpt2}
