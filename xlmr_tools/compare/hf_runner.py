"""A Hugging Face folder's model as a Runner: transformers' own modules, built as AutoModel* builds them (the load
view), and the glue of `XLMRoberta*Model.forward` (and its siblings') and of its heads."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from xlmr_tools.compare.runner import Runner, cast, head_stage
from xlmr_tools.errors import BadInput
from xlmr_tools.mapping.config import CLASS_SUFFIX
from xlmr_tools.mapping.weights import HF_HEAD_NAMES, hf_classifier_classes, hf_modules, tied_copies
from xlmr_tools.model import head_kind
from xlmr_tools.sources.hf import HFFolder
from xlmr_tools.sources.loaded import LoadedModel


class HFRunner(Runner):
    def __init__(
        self, folder: HFFolder, dtype: torch.dtype, device: str, head: str | None, loaded: LoadedModel | None = None
    ) -> None:
        """`loaded`: what AutoModel* loads from the folder (sources.loaded). Where it builds the class the weights
        are, the runner takes its config and its tensors — tying included — exactly as transformers does;
        otherwise (config.json selects another class: verify reports that) the runner reads the weights as the
        class they are, to show where they stand."""
        import copy

        import transformers

        names = set(folder.names())
        desc = folder.description
        # The class the weights are (not what config.json claims: verify reports that): XLM-R's classes compute
        # RoBERTa's and CamemBERT's too, under the same module names.
        prefix = desc.class_prefix
        kind = head_kind(head)
        # the encoder alone runs in the masked-LM class's structure (the base model under its prefix, no head run)
        cls: Any = getattr(transformers, prefix + CLASS_SUFFIX["classifier" if kind == "classifier" else "masked-lm"])
        loads = prefix + CLASS_SUFFIX[kind]  # the class AutoModel* must build for the load view to be used
        self.loaded = loaded if loaded is not None and loaded.model_class == loads else None
        if self.loaded is not None:
            view = self.loaded
            bare = kind == "encoder"  # the bare model's tensors carry no base-model prefix

            def tensor(n: str) -> torch.Tensor:
                return folder.stored_tensor(view.stored_name(n.removeprefix(desc.base + ".") if bare else n))

            super().__init__(tensor, dtype, device)
            config = copy.deepcopy(view.config)
        else:
            super().__init__(folder.tensor, dtype, device)  # the folder names tensors as the *For* model does
            cfg = {k: v for k, v in folder.config.items()
                   if k not in ("model_type", "architectures", "transformers_version")}  # fmt: skip
            config = getattr(transformers, prefix + "Config")(**cfg)
        config._attn_implementation = "sdpa"
        self.head = head
        self.languages = list(desc.adapters.languages) if desc.adapters is not None else []
        if kind == "masked-lm":
            if HF_HEAD_NAMES["lm_head"] not in names:
                raise BadInput(folder.path, "folder has no masked-LM head (lm_head.*); pass --head for a classifier")
        elif kind == "classifier":
            classes = hf_classifier_classes({n: folder.shape(n) for n in names})
            if classes is None:
                raise BadInput(folder.path, "folder has no classification head (classifier.*)")
            config.num_labels = classes
        _check_sizes(folder, config)
        with torch.device("meta"):
            self.model = cls(config).eval()
        self.names = names
        self.tied = desc.tied_lm_head
        self.layers = config.num_hidden_layers
        self.vocab_rows = desc.vocab_rows
        self.hidden, self.ffn = config.hidden_size, config.intermediate_size
        self.has_final_norm = desc.norms.final_norm is not None
        self.modules = hf_modules(desc.base, desc.norms)  # the family's module paths
        self.tied_copies = tied_copies(desc.base)
        self.head_stage = head_stage(head)
        self.pad = int(config.pad_token_id if config.pad_token_id is not None else 1)

    def load_embeddings(self, ids: torch.Tensor) -> None:
        self._load(str(self.modules["embeddings"]), rows=("word_embeddings.weight", ids))

    def free_embeddings(self) -> None:
        self._free(str(self.modules["embeddings"]))

    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        from transformers.masking_utils import create_bidirectional_mask

        emb = self.model.get_submodule(str(self.modules["embeddings"]))
        n = emb.position_embeddings.num_embeddings
        emb.register_buffer("position_ids", torch.arange(n, device=self.device).expand((1, -1)), persistent=False)
        emb.register_buffer(
            "token_type_ids", torch.zeros((1, n), dtype=torch.long, device=self.device), persistent=False
        )
        mask = ids.ne(self.pad).long()
        x = emb(input_ids=ids)
        # What XLMRoberta*Model.forward does for an encoder (is_decoder=False). Called directly: the private
        # _create_attention_masks renamed its past_key_values argument to cache between transformers 5.17 and 5.24.
        attn = create_bidirectional_mask(config=self.model.config, inputs_embeds=x, attention_mask=mask)
        return x, attn

    def packed_context(self, x: torch.Tensor, segments: torch.Tensor, pad: torch.Tensor) -> Any:
        from transformers.masking_utils import create_bidirectional_mask, packed_sequence_mask_function

        # transformers' own mask for packed sequences and its padding mask (the attention_mask users pass), in the
        # form the model's attention implementation takes
        return create_bidirectional_mask(
            config=self.model.config,
            inputs_embeds=x,
            attention_mask=(~pad).long(),
            and_mask_function=packed_sequence_mask_function(segments),
        )

    def layer_name(self, k: int) -> str:
        return str(self.modules["layer"]).format(k=k)

    def layer(self, k: int, x: torch.Tensor, ctx: Any, languages: list[str] | None) -> torch.Tensor:
        layer = self.model.get_submodule(self.layer_name(k))
        if self.languages:  # XmodLayer(hidden, lang_ids, attention_mask): adapter indices per row
            ids = torch.tensor([self.languages.index(lang) for lang in languages or []], device=x.device)
            out = layer(x, ids, ctx)
        else:
            out = layer(x, ctx)
        return out[0] if isinstance(out, tuple) else out

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self._load(str(self.modules["final_norm"]))(x)

    def batch_first(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def load_head(self) -> None:
        if self.head is not None:
            self._load(str(self.modules["head"]))
            return
        module = str(self.modules["lm_head"])
        state = {
            k: self._tensor(f"{module}.{k}")
            for k in ("dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias")
        }
        # transformers ties the decoder to the word embeddings and its bias to lm_head.bias unless the folder is
        # untied and holds its own (mapping.weights.tied_copies); the load view says which, as transformers ties
        untied = HF_HEAD_NAMES["lm_decoder"] in self.names and not self.tied
        for name, (_, tied_to) in self.tied_copies.items():
            own = self.loaded is not None or untied
            state[name.removeprefix(module + ".")] = self._tensor(name if own else tied_to)
        self._load(module, state, raw=("decoder.weight",))  # cast block by block (lm_block)

    def run_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.classifier(features)

    def lm_features(self, features: torch.Tensor) -> torch.Tensor:
        head = self.model.lm_head  # XLMRobertaLMHead.forward (and its siblings'), up to the decoder
        gelu = sys.modules[type(head).__module__].gelu  # the gelu the head's own module calls
        return head.layer_norm(gelu(head.dense(features)))

    def lm_weight(self) -> torch.Tensor:
        return self.model.lm_head.decoder.weight

    def lm_block(self, start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
        decoder = self.model.lm_head.decoder
        weight, bias = cast(self.view(decoder.weight[start:end]), self.dtype), decoder.bias[start:end]
        return lambda x: F.linear(x, weight, bias)  # nn.Linear's own form: the bias fused into the product


def _check_sizes(folder: HFFolder, config: Any) -> None:
    """The model transformers builds from config.json (its values, or the config class's defaults where it has none)
    has the weights' sizes; else it is not the weights' model (transformers would leave tensors missing or refuse
    mis-shaped ones), and building it is refused first: a config saying 10,000,000 layers must not be built."""
    desc = folder.description
    for key, weights in (
        ("num_hidden_layers", desc.layers),
        ("hidden_size", desc.hidden),
        ("intermediate_size", desc.ffn),
        ("vocab_size", desc.vocab_rows),
        ("max_position_embeddings", desc.position_rows),
    ):
        built = getattr(config, key)
        if built != weights:
            raise BadInput(
                folder.path / "config.json",
                f"{key}={built} but the weights say {weights}: transformers would build another model than the "
                "folder's weights (tensors missing or mis-shaped); not built",
            )
