"""The edges a new user hits (issue 23): output paths checked before any work, a failed convert that still reports,
paths never taken for Hub ids, verification without fairseq, progress in logs and on a terminal, tables on narrow
terminals, the model card's Hub metadata, and the smaller rough edges. Every case runs the real CLI or library
on the real fixtures; where a verdict depends on a library (the model card's tag vs transformers' model_type, the
Hub client's token) that library is asked."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import PROGRESS_LINE, error_lines, fixture, leftovers, xlmr_script

from xlmr_tools import convert

# --- 1. every output path before any work ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["convert", "verify", "diff"])
def test_a_report_path_that_cannot_be_written_is_refused_before_any_work(cli, converted, tmp_path, command):
    out = tmp_path / "out"
    second = out if command == "convert" else converted["preln"]
    for report, named in ((tmp_path / "missing" / "r.html", "folder does not exist"), (tmp_path, "is a folder")):
        r = cli(command, fixture("preln"), second, "--report", report)
        assert r.exit_code == 2, r.output
        lines = error_lines(r.stderr)
        assert len(lines) == 1 and "--report" in lines[0] and named in lines[0], r.stderr
        assert not any(PROGRESS_LINE.match(line) for line in r.stderr.splitlines())  # no work was started
    assert not out.exists() and leftovers(tmp_path) == [] and not (tmp_path / "missing").exists()


def test_out_is_checked_before_the_checkpoint_is_read(cli, tmp_path):
    broken = tmp_path / "model.pt"
    broken.write_bytes(b"not a checkpoint")  # reading it would fail with its own error
    r = cli("convert", broken, tmp_path / "no" / "such" / "out")
    assert r.exit_code == 2 and "parent folder does not exist" in r.stderr and "model.pt" not in r.stderr


# --- 2. a failed convert still gives the table, the JSON and the report -------------------------------------------

FAIL = ["--dtype", "float16", "--tol", "1e-9"]  # fp16 outputs cannot meet 1e-9: verification fails at the logits


def test_failed_convert_prints_json_and_writes_the_report(cli, tmp_path):
    out, report = tmp_path / "out", tmp_path / "r.html"
    r = cli("convert", fixture("preln"), out, *FAIL, "--json", "--report", report)
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["published"] is False
    assert data["failures"] and "outputs differ from fairseq" in data["failures"][0]
    assert [s["stage"] for s in data["outputs"]["stages"]][-1] == "lm logits"
    assert not data["outputs"]["ok"] and data["tokenizer"]["equal"]
    page = report.read_text(encoding="utf-8")
    assert "FAIL" in page and "nothing was written" in page and 'id="stage-chart"' in page
    assert not out.exists() and leftovers(tmp_path) == []  # nothing published, nothing left
    assert "outputs differ" in r.stderr  # still the one error line on stderr


def test_failed_convert_shows_its_table(cli, tmp_path):
    r = cli("convert", fixture("preln"), tmp_path / "out", *FAIL)
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "lm logits" in r.stdout and "not converted" in r.stdout
    assert not (tmp_path / "out").exists()


def test_the_library_gets_the_failed_result_with_the_exception(tmp_path):
    from xlmr_tools.errors import VerificationFailed

    with pytest.raises(VerificationFailed) as e:
        convert(fixture("preln"), tmp_path / "out", dtype="float16", tol=1e-9)
    result = e.value.result
    assert result is not None and not result.ok and result.outputs is not None and not result.outputs.ok
    assert result.failures == [e.value.problem]
    assert not (tmp_path / "out").exists()


# --- 3. anything written as a path is a path ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["./out/base-mlmm", "../out/base-mlmm", "/nonexistent/base-mlmm", "~/nonexistent-xlmr/x"]
)
def test_a_path_written_as_a_path_is_never_a_repo_id(cli, monkeypatch, tmp_path, spec):
    from xlmr_tools.sources import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # before: "not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
    assert not hub.is_repo_id(spec)
    r = cli("inspect", spec)
    assert r.exit_code == 2
    (line,) = error_lines(r.stderr)
    assert "no such file or directory" in line and "Hugging Face" not in line
    r = cli("verify", fixture("preln"), spec)
    assert r.exit_code == 2 and "no such file or directory" in r.stderr


def test_repo_id_rules():
    from xlmr_tools.sources import hub

    assert hub.is_repo_id("facebook/xlm-roberta-xl")
    assert not hub.is_repo_id(Path("facebook/xlm-roberta-xl"))  # a caller's Path is a path
    for spec in ("out/org/name", "org/name/", "./org/name", "~/org", "name", "/org/name"):
        assert not hub.is_repo_id(spec), spec


# --- 4. without fairseq: "partially verified", and how to install it ----------------------------------------------

NO_FAIRSEQ = (
    "import sys; sys.modules['fairseq'] = None; from xlmr_tools.cli.app import main; sys.argv[0] = 'xlmr'; main()"
)


def _without_fairseq(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where `import fairseq` fails (fairseq removed, not imitated)."""
    return subprocess.run([sys.executable, "-c", NO_FAIRSEQ, *args], capture_output=True, text=True)


def test_verify_without_fairseq_says_partially_verified(converted, tmp_path):
    from xlmr_tools.compare.oracle import INSTALL

    r = _without_fairseq("verify", str(fixture("preln")), str(converted["preln"]))
    assert r.returncode == 0, r.stderr
    verdict = r.stdout.strip().splitlines()[-1]
    assert verdict.startswith("partially verified") and "fairseq is not importable" in verdict
    command = INSTALL.split("install it with: ")[1]
    assert command in " ".join(r.stdout.split())  # the whole command, [fairseq] included (not eaten as markup)
    r = _without_fairseq("verify", str(fixture("preln")), str(converted["preln"]), "--json")
    data = json.loads(r.stdout)
    assert data["ok"] and data["complete"] is False and data["outputs"] is None
    r = _without_fairseq("convert", str(fixture("preln")), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "outputs not compared with fairseq" in r.stdout and command in r.stderr


def test_the_install_command_is_what_the_readme_and_makefile_do():
    from xlmr_tools.compare.oracle import INSTALL

    root = Path(__file__).resolve().parent.parent
    command = INSTALL.split("install it with: ")[1]
    assert command in root.joinpath("README.md").read_text()
    pin = re.search(r"ve-fairseq==[\d.]+", command).group(0)
    makefile = root.joinpath("Makefile").read_text()
    assert f"--no-deps {pin}" in makefile and ".[test,fairseq]" in makefile
    assert re.search(r"^fairseq = \[", root.joinpath("pyproject.toml").read_text(), re.M)


# --- 5. progress: per layer in a log, a stage counter on a terminal -----------------------------------------------


@pytest.mark.parametrize("command", ["convert", "verify"])
def test_a_log_shows_every_compared_layer(converted, tmp_path, command):
    second = tmp_path / "out" if command == "convert" else converted["preln"]
    r = subprocess.run([xlmr_script(), command, str(fixture("preln")), str(second)], capture_output=True, text=True,
                       env=dict(os.environ, XLMR_PROGRESS_SECONDS="3600"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    step = r": (tokenizer|embeddings|layer \d+|final norm|lm logits) \((\d+) of (\d+)\)"
    steps = [m.groups() for m in re.finditer(step, r.stderr)]
    assert [s[0] for s in steps] == ["tokenizer", "embeddings", "layer 0", "layer 1", "final norm", "lm logits"]
    assert [int(s[1]) for s in steps] == list(range(1, 7)) and {s[2] for s in steps} == {"6"}  # the count is exact


def test_a_terminal_shows_the_stage_counter(monkeypatch):
    from rich.console import Console

    from xlmr_tools.cli import console

    screen = io.StringIO()
    term = Console(file=screen, force_terminal=True, width=100, color_system=None)
    monkeypatch.setattr(console, "err", term)  # the bars draw on stderr; here on a recorded terminal
    p = console.RichProgress(quiet=False)
    with p:
        write = p.bar("writing safetensors", 1000)
        write(500)
        p.start("comparing", 4)
        p.step("embeddings")
        p.step("layer 0")
        p._p.refresh()
        frame = screen.getvalue()
    assert "comparing: layer 0" in frame and "1/4" in frame  # the step counter, beside …
    assert "writing safetensors" in frame and "kB" in frame  # … the byte bar, which start() keeps


# --- 6. narrow terminals: never a cut number or verdict ------------------------------------------------------------


@pytest.mark.parametrize("width", [30, 40, 60, 80, 100, 140])
def test_tables_never_cut_a_number_or_a_verdict(width):
    from rich.console import Console

    from xlmr_tools.render import terminal

    rows = [
        {"stage": f"layer {k}", "max_abs": 1.2345e-7 * 10**k, "mean_abs": 3.2e-9, "text": k, "token": 511 - k,
         "tol": 1e-5, "ok": k < 3}
        for k in range(5)
    ] + [{"stage": "head sentence_classification_head", "max_abs": float("nan"), "mean_abs": 0.0, "text": 6,
          "token": -1, "tol": 0.15, "ok": False}]  # fmt: skip
    groups = [{"group": "layer 0", "tensors": 16, "max_abs": 1.5e-3, "rel": 2.5e-4, "ok": False,
               "worst": "roberta.encoder.layer.0.attention.self.query.weight"}]  # fmt: skip
    for table, numbers, fails in (
        (terminal.stage_table(rows, "outputs", width=width), [f"{r['max_abs']:.3e}" for r in rows], 3),
        (terminal.weights_table(groups, "weights", width=width), ["1.500e-03"], 1),
    ):
        term = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        term.print(table)
        text = term.export_text()
        assert "…" not in text and max(map(len, text.splitlines())) <= width, text
        cells = [c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)]
        for n in numbers:
            assert n in cells, (width, n, text)  # whole, in one cell: neither cut nor folded
        assert cells.count("FAIL") == fails and cells.count("ok") == len(numbers) - fails, text
    wide = Console(width=140, record=True, file=io.StringIO(), color_system=None)
    wide.print(terminal.stage_table(rows, "outputs", width=140))
    text = wide.export_text()
    assert "mean |Δ|" in text and "log |Δ| / tol" in text  # dropped only when narrow


def test_a_narrow_terminal_end_to_end(converted):
    r = subprocess.run([xlmr_script(), "verify", str(fixture("preln")), str(converted["preln"]), "-q"],
                       capture_output=True, text=True, env=dict(os.environ, COLUMNS="60"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]  # titles soft-wrap, as prose does
    assert "…" not in r.stdout and rows and max(map(len, rows)) <= 60
    assert r.stdout.count("0.000e+00") >= 5 + 5  # every weight group's and every stage's max |Δ|, whole


# --- 9. the model card's Hub metadata ------------------------------------------------------------------------------


def _front_matter(folder: Path) -> dict[str, object]:
    text = (folder / "README.md").read_text().split("---\n")[1]
    meta: dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith("- "):
            meta.setdefault("tags", []).append(line[2:])  # type: ignore[union-attr]
        elif line.endswith(":"):
            meta[line[:-1]] = []
        elif ":" in line:
            key, value = line.split(":", 1)
            meta[key] = value.strip()
    return meta


@pytest.mark.parametrize("name,head", [("preln", None), ("postln_legacy", None), ("preln_heads", "mnli"),
                                       ("roberta_gpt2", None), ("camembert", None), ("xmod_base", None)])  # fmt: skip
def test_model_card_tags_the_models_own_family(converted, tmp_path, name, head):
    from transformers import AutoConfig

    key = f"{name}:{head}" if head else name
    out = converted.get(key)
    if out is None:
        out = tmp_path / "out"
        convert(fixture(name), out, head=head, verify=False)
    meta = _front_matter(out)
    assert meta["pipeline_tag"] == ("text-classification" if head else "fill-mask")
    model_type = AutoConfig.from_pretrained(str(out), local_files_only=True).model_type  # transformers' own word
    tags = meta["tags"]
    assert isinstance(tags, list) and tags[0] == model_type and "fairseq-conversion" in tags
    if model_type != "xlm-roberta":
        assert "xlm-roberta" not in tags


# --- 10. the smaller edges -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,said",
    [(["--tol", "-1"], "x>=0"), (["--tol", "nan"], "--tol must be a number >= 0"),
     (["--max-shard-size", "5"], "give a unit"), (["--max-shard-size", "0GB"], "cannot read")],
)  # fmt: skip
def test_nonsense_values_are_refused_before_any_work(cli, tmp_path, args, said):
    r = cli("convert", fixture("preln"), tmp_path / "out", *args)
    assert r.exit_code == 2 and said in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_the_library_refuses_them_too(tmp_path):
    from xlmr_tools.errors import BadInput

    with pytest.raises(BadInput, match="--tol"):
        convert(fixture("preln"), tmp_path / "out", tol=-1.0)
    with pytest.raises(BadInput, match="give a unit"):
        convert(fixture("preln"), tmp_path / "out", max_shard_size="5")


def test_diff_lists_groups_in_model_order_says_what_it_hides_and_spots_a_cast(cli, converted, tmp_path):
    bf16 = tmp_path / "bf16"
    convert(fixture("preln"), bf16, dtype="bfloat16", verify=False)
    r = cli("diff", converted["preln"], bf16, "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    groups = [g["group"] for g in data["weights"]["groups"]]
    assert groups == ["embeddings", "layer 0", "layer 1", "final norm", "lm head"]
    assert data["only_a_cast"] and "B is A cast to bfloat16" in data["only_a_cast"]
    r = cli("diff", fixture("preln"), bf16)
    rows = [line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")]
    assert [g for g in rows if g][: len(groups)] == groups  # fairseq's names too: final norm after the layers
    differing = sum(1 for t in data["weights"]["tensors"] if not t["ok"])
    assert differing > 20 and f"… and {differing - 20} more differing tensors" in r.stdout
    assert "only a dtype cast" in r.stdout
    changed = tmp_path / "changed"
    shutil.copytree(bf16, changed)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(changed / "model.safetensors"))
    weights["roberta.encoder.layer.1.intermediate.dense.weight"] += 0.5
    save_file(weights, str(changed / "model.safetensors"), metadata={"format": "pt"})
    assert json.loads(cli("diff", converted["preln"], changed, "--json").stdout)["only_a_cast"] is None


def test_compute_line_only_with_verbose_and_never_a_ratio_below_one(cli, converted):
    from xlmr_tools.compare.flops import Performance
    from xlmr_tools.render.terminal import performance_line

    plain = cli("verify", fixture("preln"), converted["preln"], "-q")
    assert plain.exit_code == 0 and "GFLOP" not in plain.stdout
    verbose = cli("verify", fixture("preln"), converted["preln"], "-q", "-v")
    assert "the FLOP bound" in verbose.stdout or "no bound" in verbose.stdout
    fast = Performance(tokens=100, padded_tokens=100, flops=1e9, seconds=0.3, peak_flops=1e9)  # 0.30x the "bound"
    line = performance_line(fast, "float16")
    assert "0.30×" not in line and "no bound for float16" in line
    slow = Performance(tokens=100, padded_tokens=100, flops=1e9, seconds=2.0, peak_flops=1e9)
    assert "2.00× the FLOP bound" in performance_line(slow)


def test_html_tables_read_like_text(cli, converted, tmp_path):
    report = tmp_path / "v.html"
    assert cli("verify", fixture("preln"), converted["preln"], "-q", "--report", report).exit_code == 0
    page = report.read_text(encoding="utf-8")
    cells = re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", page)
    assert "True" not in cells and "False" not in cells
    assert not {"max_abs", "mean_abs", "mask_id", "first_mismatch"} & set(cells)
    assert "max |Δ|" in cells and "ok" in cells


def test_diff_report_names_a_and_b(cli, converted, tmp_path):
    report = tmp_path / "d.html"
    assert cli("diff", fixture("preln"), converted["preln"], "-q", "--report", report).exit_code == 0
    page = report.read_text(encoding="utf-8")
    title = re.search(r"<title>(.*)</title>", page).group(1)
    assert str(fixture("preln")) in title and str(converted["preln"]) in title
    assert "A (the reference)" in page and str(converted["preln"]) in page.split('id="provenance"')[1]


def _keys(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *_keys(v)]]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


@pytest.mark.parametrize(
    "name", ["preln", "postln_legacy", "cfg_sentence_prediction", "cfg_layers_to_keep", "xmod_base"]
)
def test_inspect_json_keys_are_identifiers_and_its_table_reads_like_text(cli, name):
    data = json.loads(cli("inspect", fixture(name), "--json").stdout)
    assert [k for k in _keys(data) if re.search(r"\s", k)] == []  # keys are names (token strings like <s> are data)
    r = cli("inspect", fixture(name))
    assert r.exit_code == 0
    assert not re.search(r"\['|\{'|\bNone\b|\bTrue\b|\bFalse\b", r.stdout), r.stdout  # no Python reprs


def test_inspect_notes_what_convert_handles_and_lists_x_mod_languages(cli):
    r = cli("inspect", fixture("preln"))  # the XL dictionary's madeupword fillers: convert handles them
    assert re.search(r"^note: dict.txt holds \d+ symbols", r.stderr, re.M) and "warning:" not in r.stderr
    r = cli("inspect", fixture("xmod_base"))
    from xlmr_tools.sources.fairseq import open_checkpoint

    languages = open_checkpoint(fixture("xmod_base")).description.adapters.languages
    assert re.search(rf"languages \({len(languages)} X-MOD adapters\)\s*│\s*{', '.join(languages)}", r.stdout)
    assert json.loads(cli("inspect", fixture("xmod_base"), "--json").stdout)["details"]["languages"] == languages


def test_own_texts_are_announced(cli, tmp_path):
    r = cli("convert", fixture("preln"), tmp_path / "out", "--text", "Hallo Welt")
    assert r.exit_code == 0 and "note: checking on your texts instead of the 7 built-in ones" in r.stderr
    assert "1 texts" in r.stdout


def test_force_says_out_was_replaced(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("earlier")
    r = cli("convert", fixture("preln"), out, "--force", "--no-verify")
    assert r.exit_code == 0 and "replaced the folder that was there" in r.stdout
    r = cli("convert", fixture("preln"), tmp_path / "fresh", "--no-verify", "--json")
    assert json.loads(r.stdout)["replaced"] is False


# --- 8. --token and --cache-dir reach huggingface_hub ---------------------------------------------------------------


class _Hub(BaseHTTPRequestHandler):
    """A stand-in Hub endpoint on localhost that records the Authorization header and answers 404 (no repository)."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub_endpoint():
    _Hub.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("how", ["--token", "HF_TOKEN"])
def test_the_token_is_sent_to_the_hub(hub_endpoint, tmp_path, how):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub_endpoint, HF_HOME=str(tmp_path / "home"))
    args = [xlmr_script(), "inspect", "someone/private-model", "--cache-dir", str(tmp_path / "cache")]
    if how == "--token":
        args += ["--token", "hf_fromflag"]
    else:
        env["HF_TOKEN"] = "hf_fromenv"
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    (line,) = error_lines(r.stderr)
    assert "someone/private-model" in line and "Traceback" not in r.stderr
    want = "Bearer hf_fromflag" if how == "--token" else "Bearer hf_fromenv"
    assert want in _Hub.seen, _Hub.seen


def test_a_report_never_shows_the_token(converted, tmp_path):
    report = tmp_path / "v.html"
    for form in (["--token", "hf_secret123"], ["--token=hf_secret123"]):
        r = subprocess.run([xlmr_script(), "verify", str(fixture("preln")), str(converted["preln"]), "-q", *form,
                            "--report", str(report)], capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
        page = report.read_text(encoding="utf-8")
        assert "hf_secret123" not in page and "--token" in page and "***" in page


def test_cache_dir_is_the_cache_read(cli, converted, tmp_path, monkeypatch):
    from test_hub import MAIN, REPO, _commit

    cache = tmp_path / "elsewhere"
    _commit(cache / ("models--" + REPO.replace("/", "--")), converted["preln"], MAIN, "main")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli("inspect", REPO).exit_code == 2  # not in the default cache
    r = cli("inspect", REPO, "--cache-dir", cache, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["description"]["family"] == "pre-ln"
