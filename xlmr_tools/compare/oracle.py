"""fairseq itself, as the reference: its RobertaModel, masked_lm task, Dictionary and BPE encoder.

The model is built by fairseq's own registry on the meta device (no random init of billions of weights) and
given the checkpoint's tensors with fairseq's own `upgrade_state_dict` + `load_state_dict(assign=True)`: for a zip
checkpoint in its own dtype those are the mmapped tensors themselves, so nothing is copied.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xlmr_tools import families
from xlmr_tools.errors import BadInput
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.mapping import tokenizer, weights
from xlmr_tools.model import GPT2

if TYPE_CHECKING:
    from xlmr_tools.sources.fairseq import FairseqCheckpoint


# How a user gets the reference (README "Installing the fairseq reference"; the Makefile runs the same two steps):
# ve-fairseq declares torchaudio and cython, which would pull another torch, so it goes in without its dependencies
# and the `fairseq` extra brings the ones it needs at run time.
INSTALL = 'install it with: pip install --no-deps ve-fairseq==0.12.3 && pip install "xlmr-tools[fairseq]"'


def available() -> bool:
    try:
        with _quiet(), deferred_interrupts():  # a signal inside an extension's import can abort the process
            import fairseq.models.roberta  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "no oracle here"
        return False
    return True


@contextlib.contextmanager
def _quiet():
    """fairseq logs and warns a lot on import; keep our stderr to one-line diagnostics."""
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(previous)


class FairseqOracle:
    def __init__(self, ckpt: FairseqCheckpoint, dtype: torch.dtype, materialize: bool = True) -> None:
        """materialize=False keeps the model on meta (for streaming.FairseqRunner, which loads one module at a
        time from `self.state`)."""
        with _quiet():
            from fairseq.data import Dictionary
            from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

            dict_path, files = ckpt.tokenizer_files()
            if ckpt.dict_symbols is None:  # unread or unreadable when opened: refused by name where fairseq would
                tokenizer.read_dict(dict_path)
            self.dictionary = Dictionary.load(str(dict_path))
            self.task = MaskedLMTask(MaskedLMConfig(data=str(ckpt.folder)), dictionary=self.dictionary)
            family = families.of(ckpt.description)
            own = family.fairseq_bpe(files, ckpt.bpe)
            self.bpe = own if own is not None else _bpe(ckpt.description.vocabulary, files)
            args = argparse.Namespace(**ckpt.args)
            args.load_checkpoint_heads = True
            from fairseq.checkpoint_utils import prune_state_dict

            # imported (registered) before the init patch: a module first imported under it would keep the patched
            # function after the patch is undone
            family.fairseq_model_class()
            with torch.device("meta"), _meta_safe_init():
                model = family.fairseq_model(args, self.task)  # fairseq's own class for the family, by its registry
                state = dict(ckpt.raw)  # the file's tensors under the file's names: fairseq applies its own rules
                # fairseq's upgrade_state_dict_named reads each head's out_proj.weight, which a
                # spectral-norm head stores as weight_orig: it raises KeyError on its own checkpoints. Keep the heads
                # out of the upgrade and register them as fairseq's model would.
                spectral = {
                    k: state.pop(k)
                    for k in weights.head_tensors(list(state))
                    if getattr(args, "spectral_norm_classification_head", False)
                }
                model.upgrade_state_dict(state)  # renames (decoder. -> encoder., emb_layer_norm), in_proj split, heads
                state = prune_state_dict(state, args)  # encoder_layers_to_keep, as fairseq's load_state_dict does
                for name in sorted({weights.head_of(k) or "" for k in spectral}):
                    model.register_classification_head(
                        name,
                        num_classes=spectral[weights.head_tensor(name, "out_proj.weight_orig")].shape[0],
                        inner_dim=spectral[weights.head_tensor(name, "dense.weight")].shape[0],
                    )
                state.update(spectral)
            self.state = state
            if materialize:
                # fairseq's own load_state_dict only adds layer pruning (encoder_layers_to_keep) and has no `assign`
                torch.nn.Module.load_state_dict(
                    model, {k: _cast(v, dtype) for k, v in state.items()}, strict=True, assign=True
                )
                lm_head = getattr(model.encoder, "lm_head", None)  # an encoder trained without one has none
                if lm_head is not None and not getattr(args, "untie_weights_roberta", False):
                    lm_head.weight = model.encoder.sentence_encoder.embed_tokens.weight
                model = model.to(dtype)
                left = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.is_meta]
                if left:
                    raise RuntimeError(f"fairseq model has tensors left on meta after loading: {left[:3]}")
        self.model = model.eval()
        self.max_positions = int(getattr(args, "max_positions", 512))

    def encode(self, text: str, truncate: bool = True) -> torch.Tensor:
        """fairseq's RobertaHubInterface.encode, truncated to the model's maximum (keeping the final </s>) unless
        `truncate` is False (the tokenizer proof compares whole texts)."""
        line = "<s> " + self.bpe.encode(text) + " </s>"
        ids = self.dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).long()
        if truncate and len(ids) > self.max_positions:  # keep the text's own </s> (CamemBERT moves it off eos())
            ids = torch.cat([ids[: self.max_positions - 1], ids[-1:]])
        return ids

    @property
    def mask_id(self) -> int:
        return self.dictionary.index("<mask>")


def _bpe(vocabulary: str, files: dict[str, Path]) -> Any:
    """fairseq's own encoder for the vocabulary, from local files only (fairseq would download GPT-2's), where the
    family has none of its own (families.Family.fairseq_bpe)."""
    if vocabulary == GPT2:
        from fairseq.data.encoders.gpt2_bpe import GPT2BPE, GPT2BPEConfig

        tokenizer.read_gpt2_encoder(files["encoder.json"])  # refused by name where fairseq would fail
        tokenizer.read_gpt2_merges(files["vocab.bpe"])

        return GPT2BPE(
            GPT2BPEConfig(gpt2_encoder_json=str(files["encoder.json"]), gpt2_vocab_bpe=str(files["vocab.bpe"]))
        )
    from fairseq.data.encoders.sentencepiece_bpe import SentencepieceBPE, SentencepieceConfig

    model = files["sentencepiece.bpe.model"]
    try:
        return SentencepieceBPE(SentencepieceConfig(sentencepiece_model=str(model)))
    except (RuntimeError, OSError) as e:  # sentencepiece's "could not parse ModelProto"
        raise BadInput(model, f"not a sentencepiece model ({str(e).splitlines()[0][:120]})") from e


@contextlib.contextmanager
def _meta_safe_init():
    """fairseq's init_bert_params copies through `.cpu()`, which meta tensors cannot do. The values are replaced by
    the checkpoint's anyway, so skip initialising meta tensors (and only those) while the model is built. Each model
    module imported the function under its own name: every fairseq module holding it is patched."""
    from fairseq.modules.transformer_sentence_encoder import init_bert_params as original

    def init_unless_meta(module: torch.nn.Module) -> None:
        if not any(p.is_meta for p in module.parameters()):
            original(module)

    holders = [m for name, m in list(sys.modules.items())
               if name.startswith("fairseq") and getattr(m, "init_bert_params", None) is original]  # fmt: skip
    for m in holders:
        m.init_bert_params = init_unless_meta  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m in holders:
            m.init_bert_params = original  # type: ignore[attr-defined]


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
