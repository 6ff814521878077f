"""fairseq's model as a Runner: its own modules, and the glue of `TransformerEncoderBase.forward_scriptable`
(padding zeroed after the embedding, time-major layers, the optional final norm) and of its heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from xlmr_tools.compare.oracle import FairseqOracle
from xlmr_tools.compare.runner import Runner, cast, head_stage
from xlmr_tools.mapping.weights import FAIRSEQ_MODULES


class FairseqRunner(Runner):
    def __init__(self, oracle: FairseqOracle, dtype: torch.dtype, device: str, head: str | None) -> None:
        super().__init__(lambda n: oracle.state[n], dtype, device)
        self.model, self.head = oracle.model, head
        enc = self.model.encoder.sentence_encoder
        self.layers = len(enc.layers)
        self.vocab_rows = enc.embed_tokens.num_embeddings
        self.hidden, self.ffn = enc.embed_tokens.embedding_dim, enc.layers[0].fc1.out_features
        self.has_final_norm = enc.layer_norm is not None
        self.head_stage = head_stage(head)
        self.pad = enc.padding_idx
        self.languages = list(getattr(enc.layers[0], "adapter_modules", None) or [])  # fairseq's XMOD layers
        self._emb = list(FAIRSEQ_MODULES["embeddings"])
        if enc.layernorm_embedding is not None:
            self._emb.append(str(FAIRSEQ_MODULES["embedding_norm"]))

    def load_embeddings(self, ids: torch.Tensor) -> None:
        for i, name in enumerate(self._emb):
            self._load(name, rows=("weight", ids) if i == 0 else None)  # embed_tokens first

    def free_embeddings(self) -> None:
        for name in self._emb:
            self._free(name)

    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        enc = self.model.encoder.sentence_encoder
        pad = ids.eq(self.pad)
        has_pads = pad.any()
        x, _ = enc.forward_embedding(ids)
        x = x * (1 - pad.unsqueeze(-1).type_as(x) * has_pads.type_as(x))
        return x.transpose(0, 1), {"encoder_padding_mask": pad if has_pads else None}

    def packed_context(self, x: torch.Tensor, segments: torch.Tensor, pad: torch.Tensor) -> Any:
        # TransformerEncoderLayer's attn_mask [T, T]: True where a token may not attend (its binary form; a bool
        # mask, as the padding mask is: torch warns that mixing a float attn_mask with it is deprecated); padding goes
        # as fairseq's encoder passes it (forward_scriptable: the padding mask where there are pads, else None)
        mask = segments[0, :, None] != segments[0, None, :]
        return {"encoder_padding_mask": pad if pad.any() else None, "attn_mask": mask}

    def layer_name(self, k: int) -> str:
        return str(FAIRSEQ_MODULES["layer"]).format(k=k)

    def layer(self, k: int, x: torch.Tensor, ctx: Any, languages: list[str] | None) -> torch.Tensor:
        layer = self.model.encoder.sentence_encoder.layers[k]
        extra = {"lang_id": languages} if languages is not None else {}  # fairseq's XMOD layers: names per row
        out = layer(x, **ctx, **extra)
        return out[0] if isinstance(out, tuple) else out

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        norm = self._load(str(FAIRSEQ_MODULES["final_norm"]))
        return norm(x)

    def batch_first(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)

    def load_head(self) -> None:
        if self.head is None:
            self._load(str(FAIRSEQ_MODULES["lm_head"]), raw=("weight",))  # the decoder: cast block by block
        else:
            self._load(str(FAIRSEQ_MODULES["head"]).format(head=self.head))

    def run_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.classification_heads[self.head](features)

    def lm_features(self, features: torch.Tensor) -> torch.Tensor:
        head = self.model.encoder.lm_head  # RobertaLMHead.forward, up to its projection
        return head.layer_norm(head.activation_fn(head.dense(features)))

    def lm_weight(self) -> torch.Tensor:
        return self.model.encoder.lm_head.weight

    def lm_block(self, start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
        head = self.model.encoder.lm_head
        weight, bias = cast(self.view(head.weight[start:end]), self.dtype), head.bias[start:end]
        return lambda x: F.linear(x, weight) + bias  # fairseq's own form: the bias added after the product
