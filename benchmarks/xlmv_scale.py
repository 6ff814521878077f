"""XLM-V at its real vocabulary size: 901,629 embedding rows (4 specials + 901,624 dict.txt symbols + <mask>), post-LN,
at a tiny hidden size (8) so that only the vocabulary is large.

The sentencepiece model is the fixtures' trained one grown to 901,627 pieces (its ModelProto, written by
sentencepiece's own protobuf schema): the trained pieces, then synthetic word pieces "▁" + letters and continuation
pieces, scored below every trained piece, so texts made of them segment into them. dict.txt is written by fairseq's
Dictionary in sentencepiece order (as XLM-R's and XLM-V's), the model is built and saved by fairseq's own code
(never committed). Then, in one run: `xlmr inspect`, `xlmr convert --no-verify`, and `xlmr convert` (verification:
tokenizer ids against fairseq's own encoder on texts that use the synthetic pieces, <mask> at row 901,628, every
layer against fairseq), `xlmr verify` and `xlmr diff`, each with wall time and peak memory.

    .venv/bin/python -m benchmarks.xlmv_scale [--work DIR]

Prints a markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
from pathlib import Path

import torch

from benchmarks.measure import Run, measure

ROOT = Path(__file__).resolve().parent.parent

ROWS = 901_629  # XLM-V's embedding (facebook/xlm-v-base: vocab_size 901629)
SYMBOLS = ROWS - 4 - 1
BIN = Path(sys.executable).parent
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def synthetic(k: int) -> str:
    """The k-th lowercase word (a, b, ..., z, aa, ab, ...)."""
    word = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        word = LETTERS[r] + word
    return word


def grow_sentencepiece(trained: Path, out: Path, pieces: int) -> list[str]:
    """The trained model's proto with synthetic pieces appended up to `pieces`; returns some synthetic words."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    model.ParseFromString(trained.read_bytes())
    have = {p.piece for p in model.pieces}
    floor = min(p.score for p in model.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL)
    k = 0
    words = []
    while len(model.pieces) < pieces:
        word = synthetic(k)
        for text in ("\u2581" + word, word):  # a word-initial piece, and the same letters inside a word
            if text not in have and len(model.pieces) < pieces:
                piece = model.pieces.add()
                piece.piece, piece.score, piece.type = text, floor - 1 - k * 1e-6, pb.ModelProto.SentencePiece.NORMAL
                have.add(text)
                if len(word) >= 4 and len(words) < 5000:
                    words.append(word)
        k += 1
    model.trainer_spec.vocab_size = pieces
    out.write_bytes(model.SerializeToString())
    return words


def build(folder: Path) -> list[str]:
    import sentencepiece as spm

    from tests.fixtures import make_fixtures

    logging.disable(logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    trained = folder / "trained.model"
    make_fixtures.train_sentencepiece(trained)
    words = grow_sentencepiece(trained, folder / "sentencepiece.bpe.model", SYMBOLS + 3)
    trained.unlink()
    assert (
        spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model")).get_piece_size() == SYMBOLS + 3
    )
    make_fixtures.write_dict(folder / "sentencepiece.bpe.model", folder / "dict.txt", 1)
    torch.manual_seed(0)
    _, cfg, task, model = make_fixtures.build_model(
        folder, "roberta_base", [], seed=3, dims=make_fixtures.dims(1, 8, 16, 2)
    )
    assert model.encoder.sentence_encoder.embed_tokens.weight.shape[0] == ROWS
    make_fixtures.save_checkpoint(cfg, task, model, folder / "model.pt", None, False)
    return words


def main() -> None:
    import time

    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--work", type=Path, default=ROOT / "bench-work" / "xlmv")
    work = cli.parse_args().work
    shutil.rmtree(work, ignore_errors=True)
    ckpt = work / "ckpt"
    start = time.perf_counter()
    words = build(ckpt)
    built = time.perf_counter() - start
    rng = random.Random(0)
    texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(40)]
    texts += ["Hello world! " + " ".join(rng.choice(words) for _ in range(6)), "Привет, мир! 你好"]
    (work / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    xlmr = str(BIN / "xlmr")
    texts_file = ["--texts-file", str(work / "texts.txt")]
    runs: list[Run] = [
        measure("xlmr inspect", [xlmr, "inspect", str(ckpt)]),
        measure("xlmr convert --no-verify", [xlmr, "convert", str(ckpt), str(work / "nv"), "--no-verify", "-q"]),
        measure("xlmr convert (verify)", [xlmr, "convert", str(ckpt), str(work / "out"), "-q", *texts_file]),
        measure(
            "xlmr verify",
            [xlmr, "verify", str(ckpt), str(work / "out"), "-q", *texts_file, "--report", str(work / "v.json")],
        ),
        measure("xlmr diff", [xlmr, "diff", str(ckpt), str(work / "out"), "-q"]),
    ]
    report = json.loads((work / "v.json").read_text())
    tok = report["tokenizer"]
    size = (ckpt / "model.pt").stat().st_size
    print(
        f"XLM-V shape: {ROWS:,} embedding rows, hidden 8, 1 layer; model.pt {size / 1e6:.1f} MB; "
        f"dict.txt {(ckpt / 'dict.txt').stat().st_size / 1e6:.1f} MB; built by fairseq in {built:.0f} s\n"
    )
    print("| run | exit | wall s | peak RSS GB | peak anon GB |\n|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.label} | {r.rc} | {r.wall_s:.1f} | {r.peak_rss / 1e9:.2f} | {r.peak_anon / 1e9:.2f} |")
    worst = max(s["max_abs"] for s in report["outputs"]["stages"])
    print(
        f"\ntokenizer: {tok['texts']} texts, ids equal fairseq's: {tok['equal']}; <mask> = {tok['mask_id']} "
        f"(fairseq's row {ROWS - 1}); worst stage max|Δ| {worst:.3g}"
    )
    from transformers import AutoTokenizer

    written = AutoTokenizer.from_pretrained(str(work / "out"))
    ids = [i for t in texts for i in written(t)["input_ids"]]
    print(
        f"the texts' {len(ids)} tokens: {sum(i > 4 + 240 for i in ids)} are synthetic pieces (ids above the 240 "
        f"trained ones), highest id {max(ids):,}"
    )
    if not (tok["equal"] and tok["mask_id"] == ROWS - 1 and all(r.rc == 0 for r in runs)):
        raise SystemExit("XLM-V scale check failed")


if __name__ == "__main__":
    main()
