"""README.md model card: where the weights came from and the proof that they match."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xlmr_tools.ops.convert import ConvertResult


def write_model_card(folder: Path, result: ConvertResult, sha256: str, version: str) -> None:
    lines = [
        "---", "library_name: transformers", "tags:", "- xlm-roberta", "- fairseq-conversion", "---", "",
        f"# {result.model_class} converted from fairseq", "",
        f"Converted by xlmr-tools {version} (`xlmr convert`).", "",
        "| | |", "|---|---|",
        f"| source | `{result.source.name}` |", f"| source sha256 | `{sha256}` |",
        f"| family | {result.family} |", f"| class | `{result.model_class}` |",
        f"| head | {result.head or 'masked LM'} |", f"| dtype | {result.dtype} |",
        f"| tensors | {result.tensors_written} in {len(result.shards)} file(s), {result.bytes_written:,} bytes |",
        f"| weights re-read and equal to source | {'yes' if result.weights_equal else 'NO'} |", "",
    ]
    if result.tokenizer:
        t = result.tokenizer
        lines += [f"Tokenizer ids equal fairseq's on {t.texts} texts: {'yes' if t.equal else 'NO'} "
                  f"(`<mask>` = {t.mask_id}, {t.fillers} dictionary padding fillers).", ""]
    if result.outputs:
        o = result.outputs
        lines += [f"## Verification against fairseq ({o.dtype}, {o.texts} texts, {o.tokens} tokens, pads excluded)", "",
                  "| stage | max abs diff | mean abs diff | tolerance | ok |", "|---|---|---|---|---|"]
        lines += [f"| {r.stage} | {r.max_abs:.3e} | {r.mean_abs:.3e} | {r.tol:g} | {'yes' if r.ok else 'NO'} |"
                  for r in o.rows]
        lines.append("")
    for s in result.skipped:
        lines.append(f"Not checked: {s}.")
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
