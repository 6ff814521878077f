"""`--report FILE.html`: a self-contained page (no script, no network: inline CSS and SVG) for people who look
rather than read — the per-stage chart of max |Δ| against the tolerance on a log scale, the config, weight and
tokenizer rows, the compute against the FLOP bound, and provenance. Rendered from the plain report dict of
`verify` or `convert` (their `to_dict()`), as the model card is.
"""

from __future__ import annotations

import html
import math
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from xlmr_tools.io.atomic_folder import atomic_write_text

FLOOR = 1e-12  # where an exact 0.0 is drawn on the log scale (labelled "0")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1 .verdict{padding:.1em .5em;border-radius:.3em;color:#fff}.pass{background:#2a7}.fail{background:#c33}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.bad td{background:#fdd}
svg text{font:11px system-ui,sans-serif}.bar.ok{fill:#2a7}.bar.bad{fill:#c33}.tol{stroke:#c33;stroke-dasharray:6 4}
.grid{stroke:#ddd}code{background:#f5f5f5;padding:0 .2em}
"""


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """Who made the report, with what, where and when."""
    versions = {}
    for dist in ("xlmr-tools", "torch", "transformers", "tokenizers", "safetensors", "ve-fairseq", "fairseq"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {
        "command": " ".join(command) if command else None,
        "versions": versions,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def write_html_report(path: str | Path, kind: str, report: dict[str, Any], prov: dict[str, Any]) -> None:
    """Write the page atomically (a temporary file beside it, renamed)."""
    atomic_write_text(Path(path), render(kind, report, prov))


def render(kind: str, report: dict[str, Any], prov: dict[str, Any]) -> str:
    """kind: "verify", "convert" or "diff"; report: that operation's to_dict()."""
    ok = report.get("ok", report.get("weights_equal", False)) and (report.get("outputs") or {}).get("ok", True)
    title = f"xlmr {kind}: " + (
        f"{report.get('a')} vs {report.get('b')}" if kind == "diff" else report.get("source", "")
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f'<h1>xlmr {_e(kind)} <span class="verdict {"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}</span></h1>',
        _provenance(kind, report, prov),
    ]
    outputs = report.get("outputs")
    if outputs:
        parts += [_chart(outputs), _stages(outputs), _performance(outputs.get("performance"))]
    if report.get("config"):
        columns = ["item", "a", "b", "ok", "note"] if kind == "diff" else ["item", "expected", "actual", "ok", "note"]
        parts.append(_table("Config", columns, report["config"]))
    load = report.get("load")
    if isinstance(load, dict):
        parts.append(_table("What AutoModel loads", ["auto_class", "model_class", "dtype", "ok", "problems"], [load]))
    weights = report.get("weights")
    if isinstance(weights, dict):
        parts.append(_table("Weights, by group", ["group", "tensors", "max_abs", "worst", "ok"], weights["groups"]))
        for key in ("missing", "extra", "misshaped"):
            if weights.get(key):
                names = [n["name"] if isinstance(n, dict) else n for n in weights[key]]
                parts.append(f"<p><b>{key}</b>: " + ", ".join(f"<code>{_e(n)}</code>" for n in names) + "</p>")
    elif kind == "convert":
        parts.append(
            f"<h2>Weights</h2><p>{report.get('tensors_written')} tensors written in {len(report.get('shards', []))} "
            f"file(s), {report.get('bytes_written', 0):,} bytes; every one re-read and bit-equal to its source "
            f"after the cast: {'yes' if report.get('weights_equal') else 'no'}.</p>"
        )
    tok = report.get("tokenizer")
    if isinstance(tok, list) and tok:  # diff: B's tokenizer against A's, row by row
        parts.append(_table("Tokenizer", ["item", "ok", "note"], tok))
    elif isinstance(tok, dict):
        parts.append(_table("Tokenizer", [k for k in tok if k != "vocabulary"], [tok]))
        if tok.get("vocabulary"):
            parts.append(_table("Tokenizer, whole vocabulary", ["item", "ok", "note"], tok["vocabulary"]))
    if report.get("only_a_cast"):
        parts.append(f"<h2>Only a dtype cast</h2><p>{_e(report['only_a_cast'])}</p>")
    for key, heading in (("skipped", "Not checked"), ("accepted", "Accepted differences"), ("failures", "Failures")):
        if report.get(key):
            parts.append(f"<h2>{heading}</h2><ul>" + "".join(f"<li>{_e(s)}</li>" for s in report[key]))
            parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _provenance(kind: str, report: dict[str, Any], prov: dict[str, Any]) -> str:
    if kind == "diff":
        rows = [("A (the reference)", report.get("a")), ("B", report.get("b"))]
    else:
        rows = [("source", report.get("source")), ("source sha256", report.get("source_sha256"))]
        rows += [("folder" if kind == "verify" else "output", report.get("folder") or report.get("out"))]
    if kind == "convert" and report.get("published") is False:
        rows.append(("published", "no: verification failed, nothing was written"))
    rows += [(k, report.get(k)) for k in ("model_class", "head", "dtype") if report.get(k) is not None]
    rows += [("command", prov.get("command")), ("made", prov.get("date")), ("machine", prov.get("machine"))]
    rows += [("python", prov.get("python"))] + list(prov.get("versions", {}).items())
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v is not None)
    return f'<h2>Provenance</h2><table id="provenance">{body}</table>'


def _log(x: float) -> float:
    return math.log10(max(x, FLOOR)) if x == x and x != math.inf else 3.0  # NaN/inf drawn at the top


def _chart(outputs: dict[str, Any]) -> str:
    """One bar per stage: log10 max |Δ| (exact zeros at the floor), the tolerance as a dashed line."""
    stages = outputs["stages"]
    top = max([_log(s["max_abs"]) for s in stages] + [_log(s["tol"]) for s in stages] + [-4.0]) + 1
    bottom = math.log10(FLOOR)
    left, width, height, pad = 60, max(600, 16 * len(stages)), 260, 30
    scale = lambda v: pad + (top - v) / (top - bottom) * (height - 2 * pad)
    step = width / max(len(stages), 1)
    label = "max |Δ| per stage, log scale, against the tolerance"
    out = [f'<svg id="stage-chart" width="{left + width + 10}" height="{height + 70}" role="img" aria-label="{label}">']
    for exp in range(int(bottom), int(top) + 1, 2):
        y = scale(exp)
        label = "0" if exp == int(bottom) else f"1e{exp}"
        out.append(f'<line class="grid" x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for i, s in enumerate(stages):
        v = _log(s["max_abs"])
        x, y = left + i * step + step * 0.15, scale(v)
        cls = "ok" if s["ok"] else "bad"
        out.append(
            f'<rect class="bar {cls}" data-stage="{_e(s["stage"])}" data-max-abs="{s["max_abs"]:.3e}" x="{x:.1f}" '
            f'y="{y:.1f}" width="{step * 0.7:.1f}" height="{max(scale(bottom) - y, 1):.1f}">'
            f"<title>{_e(s['stage'])}: max |Δ| {s['max_abs']:.3e} (tol {s['tol']:g})</title></rect>"
        )
        if len(stages) <= 24 or i % max(1, len(stages) // 24) == 0:
            out.append(
                f'<text x="{x + step * 0.35:.1f}" y="{height - pad + 14}" transform="rotate(45 {x + step * 0.35:.1f} '
                f'{height - pad + 14})">{_e(s["stage"])}</text>'
            )
    tols = sorted({s["tol"] for s in stages})
    for tol in tols:
        y = scale(_log(tol))
        out.append(f'<line class="tol" x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left + width}" y="{y - 4:.1f}" text-anchor="end">tol {tol:g}</text>')
    out.append("</svg>")
    dtype, texts, tokens = outputs.get("dtype"), outputs.get("texts"), outputs.get("tokens")
    langs = outputs.get("languages") or []
    note = f"; X-MOD adapters: {', '.join(langs)}" if langs else ""
    return (
        f"<h2>Outputs, stage by stage</h2><p>fairseq vs transformers, {_e(dtype)}, {texts} texts, {tokens} tokens, "
        f"pads excluded{_e(note)}. Log scale; an exact 0 is drawn at the floor.</p>" + "".join(out)
    )


def _stages(outputs: dict[str, Any]) -> str:
    return _table("Stages", ["stage", "max_abs", "mean_abs", "text", "token", "tol", "ok"], outputs["stages"])


def _performance(p: dict[str, Any] | None) -> str:
    if not p:
        return ""
    ratio = p.get("ratio_to_bound")
    return (
        f"<h2>Compute</h2><p>{p['flops'] / 1e9:,.1f} GFLOP on {p['tokens']:,} real tokens ({p['padded_tokens']:,} "
        f"run, pads included) in {p['seconds']:.1f} s: {p['achieved_flops'] / 1e9:,.1f} GFLOPS against a GEMM peak "
        f"of {p['peak_flops'] / 1e9:,.0f} GFLOPS measured in the same run"
        + (f", <b>{ratio:.2f}× the FLOP bound</b>" if ratio else "")
        + (
            f"; the weights were compared between the stages in {p['weights_seconds']:.1f} s more"
            if p.get("weights_seconds")
            else ""
        )
        + ".</p>"
    )


# Column headers as a reader says them (the report dicts' keys are identifiers).
HEADERS = {
    "max_abs": "max |Δ|",
    "mean_abs": "mean |Δ|",
    "tol": "tolerance",
    "ok": "",
    "text": "at text",
    "token": "token",
    "worst": "worst tensor",
    "actual": "found",
    "mask_id": "<mask> id",
    "first_mismatch": "first mismatch",
    "equal": "ids equal",
}


def _cell(column: str, v: Any) -> str:
    """A value as a reader reads it: the verdict as ok/FAIL, other booleans yes/no, lists joined, None empty."""
    if isinstance(v, bool):
        return ("ok" if v else "FAIL") if column == "ok" else ("yes" if v else "no")
    if isinstance(v, float) and column in ("max_abs", "mean_abs"):
        return f"{v:.3e}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_cell('', x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell("", x) for x in v)
    return "" if v is None else str(v)


def _table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{_e(HEADERS.get(c, c.replace('_', ' ')))}</th>" for c in columns)
    body = []
    for r in rows:
        bad = r.get("ok") is False
        cells = []
        for c in columns:
            v = r.get(c)
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f"<td{' class=num' if num else ''}>{_e(_cell(c, v))}</td>")
        body.append(f"<tr{' class=bad' if bad else ''}>" + "".join(cells) + "</tr>")
    return f"<h2>{_e(title)}</h2><table><tr>{head}</tr>{''.join(body)}</table>"
