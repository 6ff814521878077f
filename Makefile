# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first (once; re-runs are quick).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: venv test lint demo fixtures bench clean browser

venv: $(STAMP)

# The fairseq reference as a user installs it (README): ve-fairseq without its dependencies (they would pull another
# torch), and the `fairseq` extra for the ones it needs at run time.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(PIP) -e '.[test,fairseq]'
	$(PIP) --no-deps ve-fairseq==0.12.3
	touch $(STAMP)

test: lint browser
	$(BIN)/python -m pytest -q

# A real headless browser for the HTML report's test (tests/test_html_report.py): Debian's chromium, installed
# when missing and possible (root, Debian's registry); without it that test says so and the structural checks run.
browser:
	@command -v chromium >/dev/null 2>&1 || ( (timeout 300 apt-get install -y -q --no-install-recommends chromium || \
	  (timeout 120 apt-get update -q && timeout 300 apt-get install -y -q --no-install-recommends chromium)) \
	  >/dev/null 2>&1 || echo "chromium not installable here: the HTML report is checked structurally only" )

lint: $(STAMP)
	$(BIN)/ruff check xlmr_tools tests benchmarks
	$(BIN)/ruff format --check xlmr_tools tests benchmarks
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/xlmr inspect tests/fixtures/preln
	rm -rf demo-out && mkdir demo-out
	$(BIN)/xlmr convert tests/fixtures/preln_heads demo-out/xl-mlm
	$(BIN)/xlmr convert tests/fixtures/preln_heads demo-out/xl-mnli --head mnli
	$(BIN)/xlmr convert tests/fixtures/postln_legacy demo-out/base-mlm
	$(BIN)/xlmr inspect demo-out/xl-mlm
	$(BIN)/xlmr verify tests/fixtures/preln_heads demo-out/xl-mnli --head mnli
	$(BIN)/xlmr diff tests/fixtures/postln_legacy demo-out/base-mlm --outputs

# make_trained.py runs fairseq's own training CLI (a few minutes) and reuses roberta_gpt2's BPE: after make_fixtures.
fixtures: $(STAMP)
	$(BIN)/python tests/fixtures/make_fixtures.py
	$(BIN)/python tests/fixtures/make_trained.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
