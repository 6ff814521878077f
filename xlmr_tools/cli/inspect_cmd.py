"""`xlmr inspect PATH`: what a checkpoint or HF folder is, without reading its tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xlmr_tools.cli import console
from xlmr_tools.cli.options import Json, Revision, Trust

ASSET_NAMES = ("dict.txt", "sentencepiece.bpe.model", "encoder.json", "vocab.bpe")  # shown by file name


def inspect(
    path: Annotated[
        Path, typer.Argument(help="A fairseq folder or model.pt, a Hugging Face model folder, or a Hub repo id.")
    ],
    json_: Json = False,
    tensors: Annotated[bool, typer.Option("--tensors", help="Also list every tensor: name, shape, dtype.")] = False,
    trust: Trust = False,
    revision: Revision = None,
) -> None:
    """Describe a checkpoint or HF folder: family, sizes, heads, dtype, tokenizer assets, and known traps."""
    console.warn_if_trusting(trust)
    from xlmr_tools.ops.inspect import inspect_path

    report = inspect_path(path, trust=trust, with_tensors=tensors, revision=revision)
    if json_:
        console.print_json(report.to_dict())
        return
    d = report.description
    heads = ", ".join(f"{n} ({c} classes)" for n, c in d["classification_heads"].items()) or "none"
    items = [
        ("path", report.path),
        ("format", report.format),
        ("family", f"{d['family']} → {d['hf_model_type']}" + (f" ({d['release']})" if d["release"] else "")),
        ("layers / hidden / heads / ffn", f"{d['layers']} / {d['hidden']} / {d['heads']} / {d['ffn']}"),
        ("vocab rows", d["vocab_rows"]),
        ("positions", f"{d['position_rows']} rows ({d['max_positions']} tokens)"),
        ("padding idx / eps / activation", f"{d['padding_idx']} / {d['layer_norm_eps']:g} / {d['activation']}"),
        ("dtype", d["dtype"]),
        ("parameters", f"{d['parameters']:,}"),
        ("bytes on disk", f"{report.file_bytes:,} ({console.human_bytes(report.file_bytes)})"),
        ("LM head", ("tied" if d["tied_lm_head"] else "untied") if d["lm_head"] else "none"),
        ("classification heads", heads),
    ]
    for k, v in report.details.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        items.append((k, v))
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
    console.out.print(console.kv_table(f"xlmr inspect: {path}", items))
    if report.tensors is not None:
        t = Table("name", "shape", "dtype", title=f"{len(report.tensors)} tensors", title_justify="left")
        for row in report.tensors:
            t.add_row(row["name"], "×".join(map(str, row["shape"])) or "scalar", row["dtype"])
        console.out.print(t)
    for w in report.warnings:
        console.warn(w)
