"""README.md model card: where the weights came from and the proof that they match.

Written from the conversion's plain report (`ConvertResult.to_dict()`), so this module imports nothing of convert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlmr_tools.model import head_kind

PIPELINE_TAGS = {"masked-lm": "fill-mask", "classifier": "text-classification", "encoder": "feature-extraction"}
WEIGHTS = {
    "model": "the checkpoint's model (its live weights)",
    "ema": "the exponential moving average kept by `--store-ema` (`extra_state['ema']`, as fairseq's "
    "`save_ema_as_checkpoint` exports it)",
}


def front_matter(result: dict[str, Any]) -> list[str]:
    """The Hub's metadata: `pipeline_tag` (what the widget and search offer: fill-mask for the masked-LM head,
    text-classification for a classifier) and tags naming the model's own family (its transformers model_type:
    `roberta`, `camembert`, `xmod`, `xlm-roberta`, `xlm-roberta-xl`), never another's."""
    tags = [t for t in (result.get("model_type"), "fairseq", "fairseq-conversion") if t]
    return [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {PIPELINE_TAGS[head_kind(result['head'])]}",
        "tags:",
        *(f"- {t}" for t in tags),
        "---",
    ]


def write_model_card(folder: Path, result: dict[str, Any], sha256: str, tool_version: str) -> None:
    lines = [
        *front_matter(result),
        "",
        f"# {result['model_class']} converted from fairseq",
        "",
        f"Converted by xlmr-tools {tool_version} (`xlmr convert`).",
        "",
        "| | |",
        "|---|---|",
        f"| source | `{Path(result['source']).name}` |",
        f"| source sha256 | `{sha256}` |",
        f"| weights | {WEIGHTS[result.get('weights', 'model')]} |",
        f"| family | {result['family']} |",
        f"| class | `{result['model_class']}` |",
        f"| head | {result['head'] or 'masked LM'} |",
        f"| dtype | {result['dtype']} |",
        f"| tensors | {result['tensors_written']} in {len(result['shards'])} file(s), "
        f"{result['bytes_written']:,} bytes |",
        f"| weights re-read and equal to source | {'yes' if result['weights_equal'] else 'NO'} |",
        "",
    ]
    if head_kind(result["head"]) == "encoder":
        lines += [
            "The encoder alone, without a head (`--head none`; the default for a checkpoint that has none): load it "
            "with `AutoModel.from_pretrained(folder, "
            "add_pooling_layer=False)`. fairseq's encoder has no pooler; a plain `AutoModel.from_pretrained(folder)` "
            "adds one, initialised at random (transformers reports it missing), so only its `pooler_output` is not "
            "the checkpoint's: `last_hidden_state` is exact either way.",
            "",
        ]
    tok = result.get("tokenizer")
    if tok:
        lines += [
            f"Tokenizer ids equal fairseq's on {tok['texts']} sample texts and {tok.get('dictionary_texts', 0)} texts "
            f"made of dict.txt's symbols: {'yes' if tok['equal'] else 'NO'} "
            f"(`<mask>` = {tok['mask_id']}, {tok['fillers']} dictionary padding fillers).",
            "",
        ]
    outputs = result.get("outputs")
    if outputs:
        lines += [
            f"## Verification against fairseq ({outputs['dtype']}, {outputs['texts']} texts, {outputs['tokens']} "
            "tokens, pads excluded)",
            "",
            "| stage | max abs diff | mean abs diff | tolerance | ok |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['stage']} | {r['max_abs']:.3e} | {r['mean_abs']:.3e} | {r['tol']:g} | {'yes' if r['ok'] else 'NO'} |"
            for r in outputs["stages"]
        ]
        lines.append("")
    for s in result.get("skipped", []):
        lines.append(f"Not checked: {s}.")
    for s in result.get("accepted", []):
        lines.append(f"Known difference, accepted: {s}.")
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
