"""`xlmr inspect PATH`: what a checkpoint or HF folder is, without reading its tensors."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from xlmr_tools.cli import console
from xlmr_tools.cli.options import CacheDir, Debug, InspectPath, Json, Revision, Tensors, Token, Trust
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.render import terminal
from xlmr_tools.settings import HubAccess

ASSET_NAMES = ("dict.txt", "sentencepiece.bpe.model", "encoder.json", "vocab.bpe")  # shown by file name


def inspect(
    path: InspectPath,
    json_: Json = False,
    tensors: Tensors = False,
    trust: Trust = False,
    revision: Revision = None,
    token: Token = None,
    cache_dir: CacheDir = None,
    debug: Debug = False,
) -> None:
    """Describe a checkpoint or HF folder: family, sizes, heads, dtype, tokenizer assets, and known traps."""
    console.set_debug(debug)
    console.warn_if_trusting(trust)
    with deferred_interrupts():  # a signal inside torch's import can abort the process: deferred past it
        from xlmr_tools.ops.inspect import inspect_path

    report = inspect_path(path, trust=trust, with_tensors=tensors, hub_access=HubAccess(revision, token, cache_dir))
    if json_:
        console.print_json(report.to_dict())
        return
    d = report.description
    heads = ", ".join(f"{n} ({c} classes)" for n, c in d["classification_heads"].items()) or "none"
    items = [
        ("path", report.path),
        ("format", report.format),
        ("family", _family(d)),
        ("layers / hidden / heads / ffn", f"{d['layers']} / {d['hidden']} / {d['heads']} / {d['ffn']}"),
        ("vocab rows", d["vocab_rows"]),
        ("positions", f"{d['position_rows']} rows ({d['max_positions']} tokens)"),
        ("padding idx / eps / activation", f"{d['padding_idx']} / {d['layer_norm_eps']:g} / {d['activation']}"),
        ("dtype", d["dtype"]),
        ("parameters", f"{d['parameters']:,}"),
        ("bytes on disk", f"{report.file_bytes:,} ({terminal.human_bytes(report.file_bytes)})"),
        ("LM head", ("tied" if d["tied_lm_head"] else "untied") if d["lm_head"] else "none"),
        ("classification heads", heads),
    ]
    for k, v in report.details.items():
        if k == "labels":  # {head: [class names]}: a row per head
            items += [(f"labels ({h})", names) for h, names in v.items()]
        elif k == "languages":
            items.append((f"languages ({len(v)} X-MOD adapters)", v))
        else:
            items.append((k.replace("_", " "), v))
    tok = report.tokenizer
    if report.kind == "fairseq":
        if "dict_symbols" in tok:
            items.append(
                (
                    "dictionary",
                    f"{tok['dict_symbols']} symbols ({tok['fillers']} padding fillers) vs "
                    f"{tok['pieces']} {'GPT-2 BPE tokens' if tok['vocabulary'] == 'gpt2' else 'sentencepiece pieces'}"
                    f" vs {tok['embedding_rows']} embedding rows; <mask> = {tok['mask_id']}",
                )
            )
        items.append(
            (
                "tokenizer assets",
                ", ".join(Path(v).name for k, v in tok.items() if k in ASSET_NAMES and v) or "none",
            )
        )
    else:
        items.append(("tokenizer assets", ", ".join(tok.get("files", [])) or "none"))
    console.out.print(terminal.kv_table(f"xlmr inspect: {path}", items))
    if report.tensors is not None:
        rows = [
            [escape(row["name"]), "×".join(map(str, row["shape"])) or "scalar", row["dtype"]] for row in report.tensors
        ]
        cols = [terminal.Col("name", wrap=True), terminal.Col("shape", "right"), terminal.Col("dtype")]
        console.out.print(terminal.fitted_table(f"{len(report.tensors)} tensors", cols, rows))
    for n in report.notes:
        console.note(n)
    for w in report.warnings:
        console.warn(w)


def _family(d: dict) -> str:
    """The norm placement → transformers' model_type, the registered family where its name is another (one whose
    folders are another family's), and the public release it matches."""
    named = f" ({d['hf_family']} family)" if d["hf_family"] != d["hf_model_type"] else ""
    return f"{d['family']} → {d['hf_model_type']}{named}" + (f" ({d['release']})" if d["release"] else "")
