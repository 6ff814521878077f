"""Run the original HF conversion script as a peer, with only the workarounds it needs to run at all today:

1. its `fairseq >= 1.0.0a` gate, which no fairseq release satisfies, is skipped;
2. torch >= 2.6 loads with weights_only=True, which refuses the checkpoint's argparse.Namespace: allow that class;
3. fairseq's hub loader defaults to GPT-2 BPE and tries to download it: pass bpe="sentencepiece".

Usage: python run_seed.py --roberta_checkpoint_path DIR --pytorch_dump_folder_path OUT [--classification_head]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

SEED = Path(__file__).with_name("seed_convert_xlm_roberta_xl.py")
PATCHES = [
    ('if version.parse(fairseq.__version__) < version.parse("1.0.0a"):', "if False:  # xlmr-tools peer: gate skipped"),
    ("FairseqRobertaModel.from_pretrained(roberta_checkpoint_path)",
     'FairseqRobertaModel.from_pretrained(roberta_checkpoint_path, bpe="sentencepiece")'),
]


def main() -> None:
    code = SEED.read_text(encoding="utf-8")
    for old, new in PATCHES:
        assert old in code, f"seed changed: {old!r} not found"
        code = code.replace(old, new)
    torch.serialization.add_safe_globals([argparse.Namespace])
    sys.argv = [str(SEED), *sys.argv[1:]]
    exec(compile(code, str(SEED), "exec"), {"__name__": "__main__", "__file__": str(SEED)})


if __name__ == "__main__":
    main()
