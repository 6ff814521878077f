"""The written tokenizer against fairseq's own `encode` on a seeded sample of the fuzz sweep (the full sweep:
benchmarks/tokenizer_fuzz.py, figures in docs/reliability.md)."""

from __future__ import annotations

import pytest
from conftest import fixture

from tests.helpers.tokenizer_fuzz import DOCUMENTED, compare, fairseq_encoder, texts_sample

SAMPLE = 3000


@pytest.mark.parametrize("name", ["preln", "postln_legacy"])  # a padded dictionary (fillers) and a plain one
def test_fuzz_sample_differs_only_where_the_stock_tokenizer_does(converted, tmp_path, name):
    result = compare(fixture(name), converted[name], texts_sample(SAMPLE, seed=0), tmp_path / "stock")
    assert result.texts > SAMPLE
    assert result.ours_not_stock == []  # never worse than transformers' own conversion
    assert set(k for k, n in result.ours.items() if n) <= DOCUMENTED, result.examples
    assert result.ours["filler string"] == 0


def test_fillers_are_unreachable_from_text(converted):
    from transformers import AutoTokenizer

    encode = fairseq_encoder(fixture("preln"))
    tok = AutoTokenizer.from_pretrained(str(converted["preln"]), local_files_only=True)
    for text in ["madeupword0005", "madeupword0000 madeupword0006", "xmadeupword0003y", "▁madeupword0001▁"]:
        assert tok(text)["input_ids"] == encode(text), text
    fillers = range(241, 248)
    assert all(tok.convert_ids_to_tokens(i).startswith("madeupword") for i in fillers)
    assert tok.mask_token_id == 248 and tok.convert_ids_to_tokens(248) == "<mask>"


def test_verify_reports_tokenizer_differences_on_the_users_texts(cli, converted, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("plain text is fine\nthe model predicts <mask> here\nand a second <s> one\n")
    r = cli("verify", fixture("preln"), converted["preln"], "--texts-file", texts, "--json")
    assert r.exit_code == 1
    import json

    tok = json.loads(r.stdout)["tokenizer"]
    assert tok["mismatches"] == 2 and not tok["equal"]
    assert "'the model predicts <mask> here'" in tok["first_mismatch"] and "fairseq [" in tok["first_mismatch"]
    assert "2 of 3 texts differ" in r.stderr
