"""Layer-by-layer runs of two models (fairseq's or transformers' own modules), so peak memory does not grow with depth.

Each runner builds its model on the meta device, then materializes one module at a time from the lazily read
(mmapped) tensors — embeddings, layer k, final norm, head — runs it on every micro-batch, and frees it again. A
micro-batch is padded (a row each) or packed (its texts back to back in one row after the embeddings, attention kept
within each text by the library's own mask), so the layers' products can run on real tokens only. The glue
between modules mirrors each library's own forward (fairseq: `TransformerEncoderBase.forward_scriptable`; HF:
`XLMRoberta*Model.forward`); tests check the streamed figures equal a full forward of the same models.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xlmr_tools.compare import oracle as fairseq_oracle
from xlmr_tools.compare.flops import Performance, gemm_peak, text_flops
from xlmr_tools.compare.side import Side
from xlmr_tools.compare.stages import (
    BATCH_TOKENS,
    Group,
    OutputReport,
    StageAccumulator,
    attention_weight,
    default_tol,
    micro_batches,
)
from xlmr_tools.compare.texts import dictionary_texts
from xlmr_tools.compare.tokenizer import TokenizerCheck, check_tokenizer
from xlmr_tools.compare.tokenizer import reference as tokenizer_reference
from xlmr_tools.errors import BadInput, VerificationFailed
from xlmr_tools.io.readahead import ReadAhead
from xlmr_tools.mapping.config import CLASS_SUFFIX
from xlmr_tools.mapping.tokenizer import Alignment
from xlmr_tools.mapping.weights import (
    FAIRSEQ_MODULES,
    HF_HEAD_NAMES,
    hf_classifier_classes,
    hf_modules,
    tied_copies,
)
from xlmr_tools.model import head_kind
from xlmr_tools.sources.fairseq import FairseqCheckpoint
from xlmr_tools.sources.hf import HFFolder
from xlmr_tools.sources.loaded import LoadedModel

VOCAB_BLOCK = 8192  # LM-head rows per block: 8192 x 2560 (XL) = 84 MB of weight, x 2048 tokens = 67 MB of logits


Span = tuple[int, int, int]  # where a text's tokens are in a batch's activations: row, first position, tokens


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] padded with the pad id
    texts: list[int]  # text index of each row
    lengths: list[int]  # non-pad length of each row
    languages: list[str] | None = None  # X-MOD: the language adapter each row runs through
    packed: bool = False  # the layers run the texts back to back in one row (stages.Group)
    slots: list[int] | None = None  # packed: the positions each text takes there, padding included (stages.Group)

    @property
    def rows(self) -> list[Span]:
        """The texts as embedded: a row each, padded."""
        return [(row, 0, n) for row, n in enumerate(self.lengths)]

    @property
    def packed_slots(self) -> list[int]:
        """The positions each text takes in the packed row: its length, or more where it is padded there."""
        return self.slots or self.lengths

    @property
    def spans(self) -> list[Span]:
        """The texts as the layers run them: a row each, or back to back in row 0 when packed."""
        if not self.packed:
            return self.rows
        slots = self.packed_slots
        return [(0, start, n) for start, n in zip(itertools.accumulate([0, *slots]), self.lengths)]


class Runner(ABC):
    """One model, streamed. Subclasses provide the module names and the glue, mirroring their library's forward."""

    model: Any  # fairseq's RobertaModel or a transformers *For* model, built on the meta device
    layers: int
    vocab_rows: int
    hidden: int
    ffn: int
    has_final_norm: bool
    head: str | None  # None: masked-LM; else the classification head's name
    head_stage: str | None  # None: no head (the encoder alone)
    languages: list[str]  # X-MOD: the language adapters, in the model's order; [] for other models

    def __init__(self, tensor: Callable[[str], torch.Tensor], dtype: torch.dtype, device: str) -> None:
        self._tensor, self.dtype, self.device = tensor, dtype, device
        self.view: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # the read-ahead's copy of a tensor's bytes

    def _load(
        self,
        name: str,
        state: dict[str, torch.Tensor] | None = None,
        raw: tuple[str, ...] = (),
        rows: tuple[str, torch.Tensor] | None = None,
    ) -> Any:
        """Module `name` given its tensors, cast to the run's dtype — except `raw` keys, kept as stored (the LM
        head's decoder, cast one vocabulary block at a time) and, for `rows` (key, token ids), only those rows of
        that matrix cast: an embedding lookup reads no other row, and a cast XXL embedding would be 4 GB a model."""
        module = self.model.get_submodule(name)
        if state is None:
            keys = [k for k, _ in _persistent(module)]
            state = {k: self._tensor(f"{name}.{k}") for k in keys}
        state = {k: self.view(v) for k, v in state.items()}
        if rows is not None and state[rows[0]].dtype != self.dtype:
            state[rows[0]] = _rows_cast(state[rows[0]], rows[1], self.dtype)
        state = {k: v.to(self.device) if k in raw else _cast(v, self.dtype).to(self.device) for k, v in state.items()}
        missing, unexpected = nn.Module.load_state_dict(module, state, strict=False, assign=True)
        if missing or unexpected:
            raise VerificationFailed(None, f"{name}: missing {missing[:3]} unexpected {unexpected[:3]}")
        return module

    def _free(self, name: str) -> None:
        self.model.get_submodule(name).to_empty(device="meta")

    @abstractmethod
    def layer_name(self, k: int) -> str:
        """The module path of layer k in this library's model."""

    def load_layer(self, k: int) -> None:
        self._load(self.layer_name(k))

    def free_layer(self, k: int) -> None:
        self._free(self.layer_name(k))

    def layer_tensors(self, k: int) -> list[torch.Tensor]:
        """Layer k's tensors as stored (lazy views: nothing is read), for read-ahead."""
        name = self.layer_name(k)
        return [self._tensor(f"{name}.{key}") for key, _ in _persistent(self.model.get_submodule(name))]

    @abstractmethod
    def load_embeddings(self, ids: torch.Tensor) -> None:
        """Load the embedding modules for a run over these token ids (all of the run's)."""

    @abstractmethod
    def free_embeddings(self) -> None: ...

    @abstractmethod
    def embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Token ids -> (the input of layer 0, whatever the layers need besides it: the padding mask)."""

    @abstractmethod
    def packed_context(self, x: torch.Tensor, segments: torch.Tensor, pad: torch.Tensor) -> Any:
        """What the layers need besides x ([1, T, hidden]) for a packed row: `segments` [1, T] numbers each token's
        text (attention stays within a text), `pad` [1, T] marks padding (never attended to) — as the library itself
        masks attention."""

    def pack(self, x: torch.Tensor, lengths: list[int], slots: list[int]) -> tuple[torch.Tensor, Any]:
        """A padded batch's embeddings (each row's first `lengths[row]` tokens real) as one packed row, row r taking
        its first `slots[r]` positions: its real tokens and, where the slot is longer, its padding."""
        rows = self.batch_first(x)
        flat = torch.cat([rows[row, :slot] for row, slot in enumerate(slots)])[None]
        segments = torch.repeat_interleave(torch.arange(len(slots)), torch.tensor(slots))[None].to(x.device)
        pad = torch.cat([torch.arange(slot) >= n for slot, n in zip(slots, lengths)])[None].to(x.device)
        return self.batch_first(flat), self.packed_context(flat, segments, pad)

    @abstractmethod
    def layer(self, k: int, x: torch.Tensor, ctx: Any, languages: list[str] | None) -> torch.Tensor:
        """Layer k on x; `languages`: X-MOD's adapter for each row (None for other models)."""

    @abstractmethod
    def final_norm(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def batch_first(self, x: torch.Tensor) -> torch.Tensor:
        """Activations as [batch, tokens, hidden] (fairseq's layers run time-major); its own inverse."""

    @abstractmethod
    def load_head(self) -> None: ...

    @abstractmethod
    def run_head(self, features: torch.Tensor) -> torch.Tensor:
        """A classification head on the final features."""

    @abstractmethod
    def lm_features(self, features: torch.Tensor) -> torch.Tensor:
        """The masked-LM head up to its decoder (dense, activation, LayerNorm), as the library's head computes it."""

    @abstractmethod
    def lm_block(self, start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The decoder for vocabulary rows start..end (the logits of those words), as the library computes it."""

    @abstractmethod
    def lm_weight(self) -> torch.Tensor:
        """The loaded decoder matrix as stored (read-ahead takes the next vocabulary block of it)."""


def head_stage(head: str | None) -> str | None:
    """The name of the head's stage (None: the encoder alone, whose last stage is its last layer or final norm)."""
    kind = head_kind(head)
    return "lm logits" if kind == "masked-lm" else f"head {head}" if kind == "classifier" else None


def _persistent(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.state_dict(keep_vars=True).items())


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t


def _rows_cast(t: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`t` in `dtype` where only rows `ids` hold values: an uninitialised tensor (its pages are not committed until
    written) with those rows cast in. Exact for a lookup of `ids`, which reads nothing else."""
    out = torch.empty(t.shape, dtype=dtype)
    rows = ids.unique()
    out[rows] = t[rows].to(dtype)
    return out


class FairseqRunner(Runner):
    def __init__(self, oracle: fairseq_oracle.FairseqOracle, dtype: torch.dtype, device: str, head: str | None) -> None:
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
        weight, bias = _cast(self.view(head.weight[start:end]), self.dtype), head.bias[start:end]
        return lambda x: F.linear(x, weight) + bias  # fairseq's own form: the bias added after the product


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
        weight, bias = _cast(self.view(decoder.weight[start:end]), self.dtype), decoder.bias[start:end]
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


def compare_streamed(
    a: Runner,
    b: Runner,
    ids: list[torch.Tensor],
    pad: int,
    tol: float,
    dtype: torch.dtype,
    on_stage: Callable[[str], None] = lambda s: None,
    languages: list[str] | None = None,
    on_loaded: Callable[[str], None] = lambda s: None,
    ahead: ReadAhead | None = None,
    groups: list[Group] | None = None,
    ahead_layers: bool = True,
) -> OutputReport:
    """Run both models one module at a time over micro-batches and accumulate |Δ| per stage (pads excluded).
    X-MOD: the texts run through `languages`' adapters (default: every language's; see language_plan).
    `on_loaded(stage)`: called once a stage has run, while its tensors' pages are still in memory (verify compares
    that part's weights then, through `ahead.view`). `ahead`: reads the next layer while one computes
    (io.readahead); None: no read-ahead; `ahead_layers=False`: only the LM decoder's vocabulary blocks (convert: a
    layer may not be written yet when the next is submitted, and its pages are cached once it is). `groups`: how the
    texts run (default: stages.micro_batches')."""
    if a.layers != b.layers:
        raise BadInput(None, f"the two models have {a.layers} and {b.layers} layers")
    if a.languages != b.languages:
        raise BadInput(None, f"the two models have language adapters {a.languages} and {b.languages}")
    if a.languages:
        pairs = language_plan(len(ids), languages or a.languages)
        ids, languages = [ids[t] for t, _ in pairs], [lang for _, lang in pairs]
    else:
        languages = None
    lengths = [len(t) for t in ids]
    device = a.device
    batches = []
    if groups is None:
        groups = micro_batches(lengths, attention=attention_weight(a.hidden, a.ffn), pack=languages is None)
    if languages is not None and any(g.packed for g in groups):
        raise ValueError("X-MOD runs padded batches only: its adapters are chosen per row")
    for group in groups:
        idx = group.texts
        padded = torch.nn.utils.rnn.pad_sequence([ids[i] for i in idx], batch_first=True, padding_value=pad)
        langs = [languages[i] for i in idx] if languages is not None else None
        batches.append(Batch(padded.to(device), idx, [lengths[i] for i in idx], langs, group.packed, group.slots))
    acc: dict[str, StageAccumulator] = {}
    vocab = a.vocab_rows if a.head_stage == "lm logits" else None
    flops = 2 * sum(text_flops(n, a.hidden, a.ffn, a.layers, vocab) for n in lengths)
    # the roof, measured for about 1 % of the run's nominal time (at 100 GFLOPS): 0.1 s on a tiny model, 1 s at XL
    window = min(0.2, max(0.02, flops / 1e11 * 0.01 / 5))
    peak = gemm_peak(device, dtype, a.hidden, seconds=window)
    started = time.perf_counter()
    aside = [0.0]  # time in on_loaded (verify's weight comparison): not the forward's

    def loaded(stage: str) -> None:
        t = time.perf_counter()
        on_loaded(stage)
        aside[0] += time.perf_counter() - t

    def compare(stage: str, xa: list[torch.Tensor], xb: list[torch.Tensor], embedded: bool = False) -> None:
        """Per-token outputs, batch first, laid out as the layers run them (as embedded: a row each)."""
        s = acc.setdefault(stage, StageAccumulator(stage, tol))
        for batch, ya, yb in zip(batches, xa, xb):
            for text, (row, at, n) in zip(batch.texts, batch.rows if embedded else batch.spans):
                s.update(ya[row, at : at + n].cpu(), yb[row, at : at + n].cpu(), text)

    ahead = ahead or ReadAhead(enabled=False)
    a.view = b.view = ahead.view
    side = Side(device)
    with torch.no_grad(), contextlib.closing(side):
        if ahead_layers:
            ahead.submit(("layer", 0), functools.partial(_layer_tensors, a, b, 0))
        on_stage("embeddings")
        every = torch.cat([batch.ids.reshape(-1) for batch in batches])
        a.load_embeddings(every)
        b.load_embeddings(every)
        sa = [a.embed(batch.ids) for batch in batches]
        sb = [b.embed(batch.ids) for batch in batches]
        a.free_embeddings()  # not needed again (the LM head takes the decoder matrix as stored)
        b.free_embeddings()
        xa, xb = [s[0] for s in sa], [s[0] for s in sb]
        compare("embeddings", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb], embedded=True)
        loaded("embeddings")
        for i, batch in enumerate(batches):
            if batch.packed:
                slots = batch.packed_slots
                sa[i], sb[i] = a.pack(xa[i], batch.lengths, slots), b.pack(xb[i], batch.lengths, slots)
                xa[i], xb[i] = sa[i][0], sb[i][0]
        for k in range(a.layers):
            on_stage(f"layer {k}")
            if k + 1 < a.layers and ahead_layers:  # read while this layer computes
                ahead.submit(("layer", k + 1), functools.partial(_layer_tensors, a, b, k + 1))
            a.load_layer(k)
            b.load_layer(k)
            xa, xb = side.run(
                functools.partial(_run_layer, a, k, xa, sa, batches),
                functools.partial(_run_layer, b, k, xb, sb, batches),
            )
            a.free_layer(k)
            b.free_layer(k)
            compare(f"layer {k}", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb])
            loaded(f"layer {k}")
            ahead.release(("layer", k))
        if a.has_final_norm != b.has_final_norm:
            raise BadInput(None, "one model has a final LayerNorm (pre-LN) and the other not (post-LN)")
        if a.has_final_norm:
            on_stage("final norm")
            xa = [a.final_norm(x) for x in xa]
            xb = [b.final_norm(x) for x in xb]
            compare("final norm", [a.batch_first(x) for x in xa], [b.batch_first(x) for x in xb])
            loaded("final norm")
        fa = [a.batch_first(x) for x in xa]
        fb = [b.batch_first(x) for x in xb]
        del xa, xb
        if a.head_stage is None or b.head_stage is None:  # the encoder alone: its last stage was the last compared
            if a.head_stage != b.head_stage:
                raise BadInput(None, "one side has a head and the other is the encoder alone")
            loaded("encoder")
        else:
            on_stage(a.head_stage)
            a.load_head()
            b.load_head()
            if a.head is None and b.head is None:
                # Vocabulary blocks outside, tokens inside: each page of the (memory-mapped) decoder matrix is read once
                # per model, not once per token chunk, so a memory cap below its size costs no re-reads.
                s = acc.setdefault(a.head_stage, StageAccumulator(a.head_stage, tol))
                # The head is per token: it runs on the real tokens only, packed (no padded rows in its products)
                ha, hb = a.lm_features(_real_tokens(batches, fa)), b.lm_features(_real_tokens(batches, fb))
                del fa, fb
                spans, at = [], 0  # (text, first row in ha, tokens)
                for batch in batches:
                    for text, n in zip(batch.texts, batch.lengths):
                        spans.append((text, at, n))
                        at += n
                rows = a.vocab_rows
                if rows != b.vocab_rows:
                    raise BadInput(None, f"the two models have {rows} and {b.vocab_rows} vocabulary rows")
                wa, wb = a.lm_weight(), b.lm_weight()
                ahead.submit(("vocab", 0), functools.partial(list, (wa[:VOCAB_BLOCK], wb[:VOCAB_BLOCK])))
                for start in range(0, rows, VOCAB_BLOCK):
                    end = min(rows, start + VOCAB_BLOCK)
                    if end < rows:
                        after = slice(end, end + VOCAB_BLOCK)
                        ahead.submit(("vocab", end), functools.partial(list, (wa[after], wb[after])))
                    la, lb = a.lm_block(start, end), b.lm_block(start, end)
                    for part in range(0, at, BATCH_TOKENS):  # logits of at most BATCH_TOKENS x VOCAB_BLOCK at once
                        stop = min(at, part + BATCH_TOKENS)
                        ya, yb = side.run(functools.partial(la, ha[part:stop]), functools.partial(lb, hb[part:stop]))
                        ya, yb = ya.cpu(), yb.cpu()
                        for text, first, n in spans:
                            lo, hi = max(first, part), min(first + n, stop)
                            if lo < hi:
                                s.update(ya[lo - part : hi - part], yb[lo - part : hi - part], text, lo - first)
                    del la, lb
                    ahead.release(("vocab", start))
            else:
                # a sentence head reads each text's first token (features[:, 0, :] in both libraries): give it those
                s = acc.setdefault(a.head_stage, StageAccumulator(a.head_stage, tol))
                for batch, u, v in zip(batches, fa, fb):
                    firsts = [(row, pos) for row, pos, _ in batch.spans]
                    ya = a.run_head(torch.stack([u[row, pos] for row, pos in firsts])[:, None])
                    yb = b.run_head(torch.stack([v[row, pos] for row, pos in firsts])[:, None])
                    for i, text in enumerate(batch.texts):
                        s.update(ya[i].cpu(), yb[i].cpu(), text)
            loaded(a.head_stage)
    seconds = time.perf_counter() - started - aside[0]
    # the roof again at the end, the higher one kept: a shared machine's speed drifts (peaks of 265 and 347 GFLOPS
    # were measured at the start of two runs within minutes), and a roof measured in a slow moment flatters the ratio
    peak = max(peak, gemm_peak(device, dtype, a.hidden, seconds=window))
    run_tokens = sum(g.positions(lengths) for g in groups)
    return OutputReport(
        [s.row() for s in acc.values()],
        str(dtype).removeprefix("torch."),
        len(ids),
        sum(lengths),
        sorted(set(languages), key=languages.index) if languages else [],
        Performance(sum(lengths), run_tokens, flops, seconds, peak, aside[0]),
    )


def _run_layer(r: Runner, k: int, xs: list[torch.Tensor], ctx: list[Any], batches: list[Batch]) -> list[torch.Tensor]:
    """Layer k of runner r on every micro-batch (ctx: what embed/pack returned for each)."""
    return [r.layer(k, x, s[1], batch.languages) for x, s, batch in zip(xs, ctx, batches)]


def _real_tokens(batches: list[Batch], features: list[torch.Tensor]) -> torch.Tensor:
    """[tokens, hidden]: every text's tokens (batch first, as the layers ran them), in batch order."""
    return torch.cat([x[row, at : at + n] for batch, x in zip(batches, features) for row, at, n in batch.spans])


def _layer_tensors(a: Runner, b: Runner, k: int) -> list[torch.Tensor]:
    return a.layer_tensors(k) + b.layer_tensors(k)


def check_device(device: str, dtype: torch.dtype) -> None:
    if device not in ("cpu", "cuda"):
        raise BadInput(None, f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput(None, "--device cuda: no CUDA device is available here")
    if device == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise BadInput(None, "--dtype bfloat16: this CUDA device cannot run bfloat16")


def compare_outputs_streamed(
    ckpt: FairseqCheckpoint,
    folder: HFFolder,
    head: str | None,
    loaded: LoadedModel | None,
    dtype: torch.dtype,
    texts: list[str],
    tol: float | None,
    device: str = "cpu",
    on_stage: Callable[[str], None] = lambda s: None,
    language: str | None = None,
    on_loaded: Callable[[str], None] = lambda s: None,
    ahead: ReadAhead | None = None,
    ahead_layers: bool = True,
    alignment: Alignment | None = None,
    reference_tokenizer: bool = True,
) -> tuple[TokenizerCheck | None, OutputReport]:
    """fairseq vs an HF folder, one module at a time (memory does not grow with the model); the folder's side as
    AutoModel* loads it (`loaded`, see HFRunner). The tokenizer is compared when the folder has one (None
    otherwise). X-MOD: every text through `language`'s adapters, or, by default, every language's adapters run
    (compare_streamed). `alignment`: the checkpoint's dict.txt against its subword model (aligned here when not
    given); `reference_tokenizer`: also compare the folder's tokenizer, whole, with the one the dictionary implies
    (convert's own is that one)."""
    oracle = fairseq_oracle.FairseqOracle(ckpt, dtype, materialize=False)
    tok_check = None
    if folder.tokenizer_assets():
        on_stage("tokenizer")
        if alignment is None:
            alignment = ckpt.alignment()
        with contextlib.ExitStack() as stack:
            expected = (
                stack.enter_context(tokenizer_reference(alignment, ckpt.description.max_positions))
                if reference_tokenizer
                else None
            )
            tok_check = check_tokenizer(oracle, folder.path, texts, dictionary_texts(alignment), expected)
    ids = [oracle.encode(t) for t in texts]
    tolerance = tol if tol is not None else default_tol(dtype, device)
    report = compare_streamed(
        FairseqRunner(oracle, dtype, device, head),
        HFRunner(folder, dtype, device, head, loaded),
        ids,
        oracle.dictionary.pad(),
        tolerance,
        dtype,
        on_stage=on_stage,
        languages=[language] if language is not None else None,
        on_loaded=on_loaded,
        ahead=ahead,
        ahead_layers=ahead_layers,
    )
    return tok_check, report


def language_plan(texts: int, languages: list[str]) -> list[tuple[int, str]]:
    """(text, language) pairs so that every text and every language's adapters run at least once: max(texts,
    languages) pairs, the k-th being text k mod texts through language k mod languages."""
    return [(k % texts, languages[k % len(languages)]) for k in range(max(texts, len(languages)))]
