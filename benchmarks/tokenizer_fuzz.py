"""The full tokenizer fuzz sweep (tests/helpers/tokenizer_fuzz.py): every BMP codepoint in context, combining sequences,
emoji, whitespace variants, special-token and filler strings (~90,000 texts), encoded by fairseq's own hub
interface, by the tokenizer `xlmr convert` writes, and by transformers' stock XLM-R conversion of the same
sentencepiece model. Prints differences from fairseq by kind, for each committed fixture named.

    .venv/bin/python -m benchmarks.tokenizer_fuzz [--fixtures preln postln_legacy] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from tests.helpers.tokenizer_fuzz import KINDS, compare, texts_full
from xlmr_tools import convert

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--fixtures", nargs="+", default=["preln", "postln_legacy"])
    cli.add_argument("--work", type=Path, default=None)
    args = cli.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="xlmr-fuzz-"))
    texts = list(texts_full())
    print(f"{len(texts)} texts per fixture")
    for name in args.fixtures:
        out = work / f"{name}-hf"
        shutil.rmtree(out, ignore_errors=True)
        convert(ROOT / "tests" / "fixtures" / name, out, verify=False)
        start = time.monotonic()
        result = compare(ROOT / "tests" / "fixtures" / name, out, texts, work / f"{name}-stock")
        print(f"\n{name}: {result.texts} texts in {time.monotonic() - start:.1f} s")
        print("| kind | ours differs from fairseq | stock differs from fairseq |\n|---|---|---|")
        for kind in KINDS:
            print(f"| {kind} | {result.ours[kind]} | {result.stock[kind]} |")
        print(f"| total | {sum(result.ours.values())} | {sum(result.stock.values())} |")
        print(f"texts where ours differs and stock does not: {len(result.ours_not_stock)}")
        for kind, text in result.examples.items():
            print(f"  e.g. {kind}: {text!r}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
