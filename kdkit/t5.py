"""T5 teachers and students (notebook 06): built offline from a size, loaded from a Hub name
or a local directory, saved, a student made from every other teacher block, the vocabulary
checks that word-level KD needs, and a parameter breakdown by part."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from kdkit.hub import hub_help, hub_offline, hub_reachable

if TYPE_CHECKING:  # transformers is imported lazily: it takes seconds to import
    from transformers import PreTrainedTokenizerBase, T5ForConditionalGeneration

__all__ = [
    "build_t5",
    "load_t5",
    "save_t5",
    "t5_student_from_teacher",
    "t5_vocab_size",
    "check_t5_vocab",
    "t5_param_breakdown",
]


@contextlib.contextmanager
def _no_transformers_progress_bars():
    """Silence transformers' per-file progress bars (loading/writing weights) for a moment."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def build_t5(
    vocab_size: int,
    *,
    d_model: int = 128,
    d_ff: int = 512,
    num_layers: int = 2,
    num_decoder_layers: int = 2,
    num_heads: int = 4,
    d_kv: int = 32,
    dropout_rate: float = 0.0,
    feed_forward_proj: str = "relu",
    pad_token_id: int = 0,
    eos_token_id: int = 1,
) -> T5ForConditionalGeneration:
    """A randomly initialised T5 of the given size (``kdkit.config.T5Size`` fields as keywords).

    Like T5, the decoder starts from ``pad_token_id`` and the input and output embeddings are
    tied. Raffel et al. (2020), "Exploring the limits of transfer learning with a unified
    text-to-text transformer".
    """
    from transformers import T5Config, T5ForConditionalGeneration

    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (pad, eos, unk), got {vocab_size}.")
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        num_layers=num_layers,
        num_decoder_layers=num_decoder_layers,
        num_heads=num_heads,
        d_kv=d_kv,
        dropout_rate=dropout_rate,
        feed_forward_proj=feed_forward_proj,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        decoder_start_token_id=pad_token_id,
        tie_word_embeddings=True,
    )
    return T5ForConditionalGeneration(config)


def load_t5(
    name_or_dir: str | Path, *, with_tokenizer: bool = True
) -> tuple[T5ForConditionalGeneration, PreTrainedTokenizerBase | None]:
    """``(model, tokenizer)`` from a Hub name (``"google-t5/t5-small"``) or a local directory
    written by ``save_pretrained``; the real ``T5ForConditionalGeneration.from_pretrained`` path.

    Offline (``HF_HUB_OFFLINE=1``) or with the Hub unreachable, only the local cache is tried,
    so a missing model fails within seconds with an OSError that says what to do.
    """
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    name = str(name_or_dir)
    local = Path(name).is_dir()
    # Not reachable and not offline: the Hub client would retry for ~30 s before failing.
    offline = not local and (hub_offline() or not hub_reachable())
    try:
        with _no_transformers_progress_bars():
            model = T5ForConditionalGeneration.from_pretrained(name, local_files_only=offline)
        tokenizer = None
        if with_tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=offline)
    except OSError as err:
        if local:
            raise OSError(
                f"{name} is a directory but does not hold a T5 model and tokenizer saved with "
                f"save_pretrained (kdkit.t5.save_t5 writes both): {err}"
            ) from err
        raise OSError(hub_help(name, "model", err)) from err
    return model, tokenizer


def save_t5(
    model: T5ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase | None,
    directory: str | Path,
) -> Path:
    """Write model (and tokenizer) with ``save_pretrained``; :func:`load_t5` reads it back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _no_transformers_progress_bars():
        model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def t5_student_from_teacher(
    teacher: T5ForConditionalGeneration,
    num_layers: int | None = None,
    num_decoder_layers: int | None = None,
    *,
    encoder_layers: Sequence[int] | None = None,
    decoder_layers: Sequence[int] | None = None,
) -> T5ForConditionalGeneration:
    """A shallower T5 initialised from ``teacher``: embeddings, final norms, output layer and
    the chosen blocks are copied; widths stay the teacher's.

    Default: every other block, 0-based ``[0, 2, 4, ...]``, as many as ``num_layers``
    (encoder) and ``num_decoder_layers`` (default: half the teacher's, rounded up). Block 0
    holds T5's relative position bias; the student's block 0 always gets the teacher's.
    DistilBERT's "one layer out of two" (Sanh et al. 2019, §3); for seq2seq, Shleifer & Rush
    (2020), "Pre-trained summarization distillation".
    """
    from transformers import T5ForConditionalGeneration

    t_cfg = teacher.config
    chosen = []
    for part, n, given, total in (
        ("encoder", num_layers, encoder_layers, t_cfg.num_layers),
        ("decoder", num_decoder_layers, decoder_layers, t_cfg.num_decoder_layers),
    ):
        if given is None:
            n = math.ceil(total / 2) if n is None else n
            if not 1 <= n <= total:
                raise ValueError(
                    f"the student's {part} needs 1 to {total} blocks (the teacher's), got {n}."
                )
            # every other block while there is room, then the remaining top blocks
            given = [2 * i for i in range(n)] if 2 * (n - 1) < total else list(range(n))
        given = [int(j) for j in given]
        if not given or any(not 0 <= j < total for j in given):
            raise ValueError(
                f"{part} layers {given} must be non-empty indices in 0..{total - 1} "
                f"(the teacher's {part} has {total} blocks)."
            )
        chosen.append(given)
    s_cfg = copy.deepcopy(t_cfg)
    s_cfg.num_layers, s_cfg.num_decoder_layers = len(chosen[0]), len(chosen[1])
    student = T5ForConditionalGeneration(s_cfg)
    with torch.no_grad():
        student.shared.load_state_dict(teacher.shared.state_dict())
        if not t_cfg.tie_word_embeddings:
            student.lm_head.load_state_dict(teacher.lm_head.state_dict())
        for stack, layers in (("encoder", chosen[0]), ("decoder", chosen[1])):
            s_stack, t_stack = getattr(student, stack), getattr(teacher, stack)
            s_stack.final_layer_norm.load_state_dict(t_stack.final_layer_norm.state_dict())
            bias = {
                k: v
                for k, v in t_stack.block[0].state_dict().items()
                if "relative_attention_bias" in k
            }
            for i, j in enumerate(layers):
                state = {
                    k: v
                    for k, v in t_stack.block[j].state_dict().items()
                    if "relative_attention_bias" not in k
                }
                if i == 0:
                    state.update(bias)
                s_stack.block[i].load_state_dict(state)
    return student


def t5_vocab_size(model: nn.Module) -> int:
    """Number of logits per position (the output embedding's rows), e.g. 32128 for T5."""
    return int(model.get_output_embeddings().weight.shape[0])


def check_t5_vocab(
    teacher: T5ForConditionalGeneration,
    student: T5ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> int:
    """Check that teacher, student and tokenizer can be distilled together; return ``V``.

    Word-level KD compares the two models' distributions over the same token ids, so both
    must produce ``V`` logits per position, and every tokenizer id must be below ``V``. A
    padded embedding is fine: T5's tokenizer has 32100 entries, its logits 32128.
    """
    v_t, v_s = t5_vocab_size(teacher), t5_vocab_size(student)
    if v_t != v_s:
        raise ValueError(
            f"teacher and student vocabularies differ: the teacher has {v_t} logits per "
            f"position, the student {v_s}. Word-level KD needs the same token ids on both "
            f"sides: use models that share a tokenizer (t5-small and t5-base both have 32128), "
            f"build the student from the teacher (t5_student_from_teacher) or with "
            f"build_t5(vocab_size={v_t}, ...), or resize it: "
            f"student.resize_token_embeddings({v_t})."
        )
    if tokenizer is not None:
        n = len(tokenizer)
        if n > v_t:
            raise ValueError(
                f"the tokenizer has {n} entries but the models only {v_t} logits per position: "
                f"token ids {v_t}..{n - 1} have no embedding. Use the tokenizer the models were "
                f"trained with, or resize both: model.resize_token_embeddings({n}). (More "
                f"logits than tokenizer entries is fine: T5 pads 32100 entries to 32128.)"
            )
        for name in ("pad_token_id", "eos_token_id"):
            tokenizer_id, model_id = getattr(tokenizer, name), getattr(teacher.config, name)
            if model_id is not None and tokenizer_id != model_id:
                raise ValueError(
                    f"the tokenizer's {name} is {tokenizer_id} but the teacher's config says "
                    f"{model_id}: they were not saved together. Load the tokenizer from the "
                    f"teacher's directory (load_t5 returns both)."
                )
    return v_t




def t5_param_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters of a T5 by part: ``embeddings`` (the shared input/output table, plus an
    untied output layer), ``encoder`` and ``decoder`` (blocks and final norms), ``total``.

    Generation runs the encoder once per input and the decoder once per output token, so
    decoder parameters cost more time per example than encoder parameters.
    """
    embeddings = model.shared.weight.numel()
    if not model.config.tie_word_embeddings:
        embeddings += model.lm_head.weight.numel()
    parts = {"embeddings": embeddings}
    for name in ("encoder", "decoder"):
        stack = getattr(model, name)
        parts[name] = sum(
            p.numel() for n, p in stack.named_parameters() if not n.startswith("embed_tokens")
        )
    parts["total"] = sum(p.numel() for p in model.parameters())
    if parts["total"] != parts["embeddings"] + parts["encoder"] + parts["decoder"]:
        raise ValueError("unexpected T5 layout: the parts do not add up to the total.")
    return parts
