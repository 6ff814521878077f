"""Test helpers the benchmarks use too (the tokenizer fuzz corpus and its checks, fairseq's own hub and full-model
forwards): imported as `tests.helpers.…` by both, from the repository root (pytest's `pythonpath` in pyproject.toml;
the benchmarks run as `python -m benchmarks.NAME` there), never through sys.path edits."""
