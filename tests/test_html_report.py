"""`--report FILE.html` (verify, convert): one self-contained page — no script, nothing fetched — with the per-stage
chart, the config/weight/tokenizer rows and provenance. Checked structurally on any machine, and rendered in a real
headless browser (Debian's chromium, which `make test` installs) whose screenshot must show the chart's bars.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import fixture

from xlmr_tools import convert

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GREEN, RED = (0x22, 0xAA, 0x77), (0xCC, 0x33, 0x33)  # the CSS colours of passing and failing bars


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _self_contained(text: str, page: Page) -> None:
    assert text.startswith("<!doctype html>")
    assert not page.find("script") and not page.find("link") and not page.find("img") and not page.find("iframe")
    assert not any("src" in a or "href" in a for _, a in page.tags)
    assert not re.search(r"https?://|url\(", text)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """A passing verify of a bf16 folder (every stage a visible |Δ|), a failing one, and a convert report."""
    from conftest import Cli

    cli = Cli()
    root = tmp_path_factory.mktemp("reports")
    convert(fixture("preln"), root / "bf16", dtype="bfloat16", verify=False)
    out: dict[str, Path] = {}
    run = ["--dtype", "float32"]  # fairseq in fp32 against the bf16-rounded weights: every stage differs a little
    r = cli("verify", fixture("preln"), root / "bf16", "-q", *run, "--tol", "1", "--report", root / "pass.html")
    assert r.exit_code == 0, r.output
    out["pass"] = root / "pass.html"
    r = cli("verify", fixture("preln"), root / "bf16", "-q", *run, "--tol", "1e-9", "--report", root / "fail.html")
    assert r.exit_code == 1, r.output
    out["fail"] = root / "fail.html"
    r = cli("convert", fixture("preln_heads"), root / "conv", "--report", root / "convert.html", "--json")
    assert r.exit_code == 0, r.output
    out["convert"], out["convert.json"] = root / "convert.html", root / "convert.json"
    out["convert.json"].write_text(r.stdout)
    out["card"] = root / "conv" / "README.md"
    return out


def test_verify_report_is_one_self_contained_page_with_the_chart(reports):
    text = reports["pass"].read_text(encoding="utf-8")
    page = Page(text)
    _self_contained(text, page)
    charts = page.find("svg", id="stage-chart")
    assert len(charts) == 1
    bars = [a for t, a in page.tags if t == "rect" and "bar" in (a.get("class") or "")]
    assert [b["data-stage"] for b in bars] == ["embeddings", "layer 0", "layer 1", "final norm", "lm logits"]
    assert all(b["class"] == "bar ok" and float(b["data-max-abs"] or 0) > 0 for b in bars)  # bf16: visible errors
    assert page.find("line", **{"class": "tol"})
    words = " ".join(page.text)
    for expected in ("PASS", "Provenance", "transformers", "torch", "Config", "Weights, by group", "Tokenizer",
                     "FLOP bound", "xlmr verify"):  # fmt: skip
        assert expected in words, expected


def test_failing_report_says_so_in_red(reports):
    page = Page(reports["fail"].read_text(encoding="utf-8"))
    assert "FAIL" in " ".join(page.text)
    assert [a for t, a in page.tags if t == "rect" and a.get("class") == "bar bad"]


def test_convert_report_carries_the_source_hash(reports):
    page = Page(reports["convert"].read_text(encoding="utf-8"))
    sha = json.loads(reports["convert.json"].read_text())["source_sha256"]
    assert sha and sha in " ".join(page.text) and sha in reports["card"].read_text()
    assert len(page.find("svg", id="stage-chart")) == 1


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (make test installs Debian's where it can)")
@pytest.mark.parametrize("name,colour", [("pass", GREEN), ("fail", RED)])
def test_a_real_browser_renders_the_chart(reports, tmp_path, name, colour):
    from PIL import Image

    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,1200",
         reports[name].as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    near = lambda p: all(abs(a - b) <= 8 for a, b in zip(p, colour, strict=True))
    painted = sum(count for count, pixel in image.getcolors(maxcolors=1 << 20) or [] if near(pixel))
    assert painted > 500, f"{painted} pixels of the bar colour in the screenshot"
