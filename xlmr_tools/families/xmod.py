"""X-MOD (fairseq's xmod_base*, xmod_large_prenorm): a RoBERTa-style encoder with an embedding LayerNorm, either norm
placement, and per-language adapters after each layer's feed-forward block -> transformers' Xmod*. transformers names
its norms as the post-LN classes do in either placement; XmodConfig carries the adapter settings."""

from __future__ import annotations

from typing import Any

from xlmr_tools.families.base import Evidence, Family, register
from xlmr_tools.model import Adapters, Layout, ModelDescription

POST = Layout(embedding_norm=True, pre_norm=False, attention_norm="attention.output.LayerNorm",
              ffn_norm="output.LayerNorm")  # fmt: skip
PRE = Layout(embedding_norm=True, pre_norm=True, attention_norm="attention.output.LayerNorm",
             ffn_norm="output.LayerNorm", final_norm="encoder.LayerNorm")  # fmt: skip
DEFAULT_LANGUAGE = "en_XX"  # what fairseq's XMOD layers use when no lang_id is passed


class Xmod(Family):
    def claims(self, e: Evidence) -> bool:
        return e.adapters and e.embedding_norm

    def layout_for(self, e: Evidence) -> Layout:
        return PRE if e.final_norm else POST

    def config_settings(self, desc: ModelDescription, language: str | None) -> dict[str, Any]:
        """XmodConfig's adapter settings (fairseq's names on the right); default_language: the one asked for, else
        fairseq's own default where the model has it, else its first."""
        a = desc.adapters
        if a is None:
            raise ValueError("an X-MOD description without adapters")
        default = language or (DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in a.languages else a.languages[0])
        return {
            "pre_norm": desc.norms.pre_norm,  # encoder_normalize_before
            "adapter_reduction_factor": a.reduction_factor,  # bottleneck
            "adapter_layer_norm": a.layer_norm,  # adapter_layer_norm
            "adapter_reuse_layer_norm": a.reuse_layer_norm,  # adapter_reuse_layer_norm
            "ln_before_adapter": a.ln_before_adapter,  # ln_before_adapter
            "languages": list(a.languages),  # languages
            "default_language": default,
        }

    def hf_adapters(self, config: dict[str, Any]) -> Adapters:
        """XmodConfig's adapter settings, as config.json names them."""
        return Adapters(
            languages=[str(x) for x in config.get("languages", [DEFAULT_LANGUAGE])],
            reduction_factor=int(config.get("adapter_reduction_factor", 2)),
            layer_norm=bool(config.get("adapter_layer_norm", False)),
            reuse_layer_norm=bool(config.get("adapter_reuse_layer_norm", True)),
            ln_before_adapter=bool(config.get("ln_before_adapter", True)),
        )

    def fairseq_model_class(self) -> Any:
        from fairseq.models.xmod import XMODModel

        return XMODModel


XMOD = register(Xmod(name="xmod", model_type="xmod", prefix="Xmod", layout=POST, priority=10, adapters=True))
