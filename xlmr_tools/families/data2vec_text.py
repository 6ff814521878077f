"""data2vec-text (fairseq's examples/data2vec `data2vec_text`): a RoBERTa-style post-LN encoder with an embedding
LayerNorm (fairseq's TransformerEncoder, as RoBERTa's) trained to regress an EMA teacher's averaged layers ->
transformers' Data2VecText*. The student is the model: it has no masked-LM head, so it converts to the bare
Data2VecTextModel by default (or with a classification head, where a fine-tune registered one).

What sets it apart, each handled here:
- told by its architecture (`data2vec_text`), whatever its dictionary (data2vec's README uses RoBERTa's GPT-2 BPE);
- its arguments are nested hydra dataclasses (cfg.model.transformer.encoder.layers, ...): `model_args` flattens them
  to the names fairseq's RoBERTa uses, which the rest reads;
- the checkpoint also holds the EMA teacher (`encoder._ema`, a nested dict of the student's tensors) and the
  regression head that predicts the teacher in pretraining: neither runs at inference (`ignored`);
- fairseq's own model class cannot be imported on Python 3.11 as shipped, and its loader reads an attribute the
  encoder never sets (`fairseq_model`).
"""

from __future__ import annotations

from typing import Any

from xlmr_tools.families.base import POST_LN, Family, register

ARCH = "data2vec_text"  # the registered fairseq model (cfg.model._name)

# fairseq RoBERTa's flat argument -> where data2vec_text's config keeps it (under cfg.model), and fairseq's default
# where the config lacks it (TransformerConfig / EncDecBaseConfig in fairseq/models/transformer/transformer_config.py).
NESTED: dict[str, tuple[tuple[str, ...], Any]] = {
    "encoder_layers": (("transformer", "encoder", "layers"), 6),
    "encoder_embed_dim": (("transformer", "encoder", "embed_dim"), 512),
    "encoder_ffn_embed_dim": (("transformer", "encoder", "ffn_embed_dim"), 2048),
    "encoder_attention_heads": (("transformer", "encoder", "attention_heads"), 8),
    "encoder_normalize_before": (("transformer", "encoder", "normalize_before"), False),
    "encoder_learned_pos": (("transformer", "encoder", "learned_pos"), False),
    "encoder_layerdrop": (("transformer", "encoder", "layerdrop"), 0.0),
    "activation_fn": (("transformer", "activation_fn"), "relu"),
    "dropout": (("transformer", "dropout"), 0.1),
    "attention_dropout": (("transformer", "attention_dropout"), 0.0),
    "activation_dropout": (("transformer", "activation_dropout"), 0.0),
    "layernorm_embedding": (("transformer", "layernorm_embedding"), False),
    "no_scale_embedding": (("transformer", "no_scale_embedding"), False),
    "no_token_positional_embeddings": (("transformer", "no_token_positional_embeddings"), False),
    "adaptive_input": (("transformer", "adaptive_input"), False),
    "quant_noise_pq": (("transformer", "quant_noise", "pq"), 0.0),
    # the rows of the position table (max_source_positions + padding_idx + 1): what RoBERTa's max_positions sizes.
    # data2vec's own max_positions is the task's sample length, which only its encoder's max_positions() reports.
    "max_positions": (("transformer", "max_source_positions"), 1024),
}
# Not flattened: encoder.layers_to_keep, which data2vec's encoder never applies (fairseq's pruning at load reads
# RoBERTa's flat encoder_layers_to_keep), so its layers load as stored.

# register_classification_head builds every head with a tanh pooler and no dropout, whatever the config says.
HEAD_SETTINGS = {"pooler_activation_fn": "tanh", "pooler_dropout": 0.0}

TEACHER = "encoder._ema"
REGRESSION_HEAD = "encoder.regression_head."


def _lookup(args: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = args
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


class Data2VecText(Family):
    def model_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """The nested arguments under RoBERTa's flat names, beside the nested ones (fairseq's own model is built
        from those: `fairseq_model`)."""
        flat: dict[str, Any] = dict(HEAD_SETTINGS)
        for name, (path, default) in NESTED.items():
            found, value = _lookup(args, path)
            flat[name] = value if found and value is not None else default
        return {**args, **flat}

    def ignored(self, name: str) -> str | None:
        if name == TEACHER:
            return "data2vec's EMA teacher (the student's averaged weights, its training target), unused at inference"
        if name.startswith(REGRESSION_HEAD):
            return "data2vec's regression head (predicts the teacher's layers in pretraining), unused at inference"
        return None

    def fairseq_model_class(self) -> Any:
        """fairseq's Data2VecTextModel. Its module cannot be imported on Python 3.11 as shipped: its config declares
        `transformer: TransformerConfig = TransformerConfig()`, a mutable dataclass default that 3.11 refuses.
        Letting the class hash for the duration of the import restores what Python <= 3.10 did (one shared default
        instance). The model module is imported alone: `--user-dir examples/data2vec` would also import data2vec's
        image tasks (torchvision)."""
        import fairseq.models

        if ARCH not in fairseq.models.MODEL_REGISTRY:
            from fairseq.models.transformer import TransformerConfig

            had = TransformerConfig.__dict__.get("__hash__")
            TransformerConfig.__hash__ = object.__hash__
            try:
                import fairseq.examples.data2vec.models.data2vec_text  # registers the model
            finally:
                TransformerConfig.__hash__ = had
        return fairseq.models.MODEL_REGISTRY[ARCH]

    def fairseq_model(self, args: Any, task: Any) -> Any:
        """Built as fairseq's checkpoint loader builds it (models.build_model from the checkpoint's config, merged
        into the dataclass's defaults, keys it does not know dropped). fairseq's upgrade_state_dict_named reads
        `encoder.target_model`, which Data2VecTextEncoder never sets: fairseq's own reload of its checkpoints fails
        with AttributeError unless it exists; None is what it tests for."""
        from fairseq.models import build_model
        from omegaconf import OmegaConf

        self.fairseq_model_class()
        model = build_model(OmegaConf.create(vars(args)), task, from_checkpoint=True)
        model.encoder.target_model = None
        return model


DATA2VEC_TEXT = register(
    Data2VecText(
        name="data2vec-text",
        model_type="data2vec-text",
        prefix="Data2VecText",
        base="data2vec_text",
        priority=20,  # told by its architecture: before the families that take any post-LN encoder
        layout=POST_LN,
        arch=ARCH,
        releases={(12, 768): "data2vec-text base"},
    )
)
