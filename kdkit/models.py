"""Small teacher and student networks: MLPs for digits, a Transformer encoder for text,
and T5 teachers and students (pretrained, from a local directory, or built offline)."""

from __future__ import annotations

import contextlib
import copy
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from kdkit.data import _hub_help, hub_offline, hub_reachable

if TYPE_CHECKING:  # transformers is imported lazily: it takes seconds to import
    from transformers import PreTrainedTokenizerBase, T5ForConditionalGeneration

__all__ = ["mlp", "count_parameters"]


def mlp(
    in_features: int,
    hidden: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A ReLU multilayer perceptron: ``(B, in_features) -> (B, num_classes)`` logits.

    Hinton et al. (2015) distil a 2×1200 ReLU net with dropout into a 2×800 net on MNIST;
    the digits notebooks use the same shape at a smaller scale.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------- a small Transformer encoder (notebook 05)


@dataclass
class TransformerConfig:
    """Size of a :class:`TransformerClassifier`. Student and teacher share all but num_layers."""

    vocab_size: int  # number of token ids, [PAD], [UNK] and [CLS] included
    num_classes: int  # size of the output layer
    max_len: int = 24  # longest input the learned position table covers
    d_model: int = 64  # width of every hidden state
    num_heads: int = 4  # attention heads per layer; d_model must divide evenly
    num_layers: int = 4  # Transformer blocks
    d_ff: int = 128  # hidden width of each block's feed-forward network
    dropout: float = 0.1  # on embeddings, attention probabilities and residual branches
    pad_id: int = 0  # token id of padding: the default attention mask is input_ids != pad_id

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_classes", "max_len", "d_model", "num_heads", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")


@dataclass
class EncoderOutput:
    """Everything a :class:`TransformerClassifier` computes that distillation can match."""

    logits: torch.Tensor  # (B, C)
    embeddings: torch.Tensor  # (B, L, D): token + position embeddings, the first block's input
    hidden_states: list[torch.Tensor]  # num_layers x (B, L, D): the output of each block
    attentions: list[torch.Tensor]  # num_layers x (B, H, L, L): attention probabilities


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention over ``H`` heads that also returns its probabilities.

    ``(B, L, D), mask (B, L) -> (B, L, D), probs (B, H, L, L)``; ``probs[b, h, i, j]`` is how
    much query token ``i`` attends to key token ``j``; padded keys get exactly 0.
    Vaswani et al. (2017), "Attention is all you need", §3.2.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)  # queries, keys and values in one matmul
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, D = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, D/H)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // H)  # (B, H, L, L)
        # The most negative finite number, not -inf: a row with no real key stays finite.
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=-1)  # (B, H, L, L), rows sum to 1
        context = self.dropout(probs) @ v  # (B, H, L, D/H)
        context = context.transpose(1, 2).reshape(B, L, D)  # heads side by side again
        return self.out(context), probs


class TransformerBlock(nn.Module):
    """A pre-LayerNorm block: ``x + attn(LN(x))``, then ``x + FF(LN(x))``; ``(B, L, D)`` in/out.

    Pre-LN (Xiong et al. 2020) trains stably without a learning-rate warm-up.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, dropout)
        self.ln_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, probs = self.attn(self.ln_attn(x), mask)  # (B, L, D), (B, H, L, L)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ff(self.ln_ff(x)))
        return x, probs


class TransformerClassifier(nn.Module):
    """A small Transformer encoder for sentence classification, written out in full.

    Token + learned position embeddings, ``num_layers`` pre-LN blocks, then a final LayerNorm
    and a linear head on the first token's state: ``[CLS]``, which
    :class:`kdkit.data.WordTokenizer` puts first (BERT's pooling: attention must gather the
    sentence into that one position). ``model(input_ids)`` gives logits ``(B, C)``;
    :meth:`encode` also returns every block's hidden states ``(B, L, D)`` and attention
    probabilities ``(B, H, L, L)`` for feature distillation (notebook 05).

    Weights keep PyTorch's default initialisation: GPT-2's smaller one (std 0.02) left this
    model's attention almost uniform after a short run, with nothing for attention KD to copy.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.max_len, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.num_heads, c.d_ff, c.dropout) for _ in range(c.num_layers)
        )
        self.ln_final = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> EncoderOutput:
        """Logits and internals. ``input_ids`` ``(B, L)``; ``attention_mask`` ``(B, L)`` bool,
        True on real tokens (default: ``input_ids != pad_id``); padding must be on the right."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, L), got {tuple(input_ids.shape)}.")
        B, L = input_ids.shape
        if L > self.config.max_len:
            raise ValueError(
                f"sequence length {L} exceeds max_len={self.config.max_len}: truncate the input "
                f"(the tokenizer's max_len) or build the model with a larger max_len."
            )
        if attention_mask is None:
            attention_mask = input_ids != self.config.pad_id
        if tuple(attention_mask.shape) != (B, L) or attention_mask.dtype != torch.bool:
            raise ValueError(
                f"attention_mask must be a bool tensor of shape {(B, L)}, got "
                f"{tuple(attention_mask.shape)} {attention_mask.dtype}."
            )
        positions = torch.arange(L, device=input_ids.device)  # (L,)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)  # (B, L, D)
        embeddings = x = self.dropout(x)
        hidden_states, attentions = [], []
        for block in self.blocks:
            x, probs = block(x, attention_mask)  # (B, L, D), (B, H, L, L)
            hidden_states.append(x)
            attentions.append(probs)
        pooled = self.ln_final(x[:, 0])  # (B, D): the first ([CLS]) token's final state
        return EncoderOutput(self.head(pooled), embeddings, hidden_states, attentions)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, C)`` for ``input_ids`` ``(B, L)``."""
        return self.encode(input_ids, attention_mask).logits


def init_student_from_teacher(
    student: TransformerClassifier,
    teacher: TransformerClassifier,
    teacher_layers: Sequence[int] | None = None,
) -> list[int]:
    """Copy the teacher's weights into a shallower student of the same width, in place.

    Embeddings, final LayerNorm and head are copied; student block ``i`` gets teacher block
    ``teacher_layers[i]``. Default: every other block, starting with the first, 0-based
    ``[0, 2, 4, ...]`` (a 2-block student of a 4-block teacher gets blocks 0 and 2).
    DistilBERT: "we initialize the student from the teacher by taking one layer out of two"
    (Sanh et al. 2019, §3). Returns the teacher blocks used.
    """
    s, t = student.config, teacher.config
    for name in ("vocab_size", "num_classes", "max_len", "d_model", "num_heads", "d_ff"):
        if getattr(s, name) != getattr(t, name):
            raise ValueError(
                f"student and teacher must match in {name} to copy weights, got "
                f"{getattr(s, name)} and {getattr(t, name)}; only num_layers may differ."
            )
    if teacher_layers is None:
        teacher_layers = [2 * i for i in range(s.num_layers)]
    teacher_layers = [int(j) for j in teacher_layers]
    if len(teacher_layers) != s.num_layers:
        raise ValueError(
            f"teacher_layers has {len(teacher_layers)} entries but the student has "
            f"{s.num_layers} blocks: give one teacher block per student block."
        )
    for j in teacher_layers:
        if not 0 <= j < t.num_layers:
            raise ValueError(
                f"teacher layer {j} is out of range: the teacher has {t.num_layers} blocks "
                f"(0 to {t.num_layers - 1})."
            )
    with torch.no_grad():
        for name in ("token_embedding", "position_embedding", "ln_final", "head"):
            getattr(student, name).load_state_dict(getattr(teacher, name).state_dict())
        for i, j in enumerate(teacher_layers):
            student.blocks[i].load_state_dict(teacher.blocks[j].state_dict())
    return teacher_layers


__all__ += [  # notebook 05
    "TransformerConfig",
    "EncoderOutput",
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TransformerClassifier",
    "init_student_from_teacher",
]


# ----------------------------------------------------------- T5 teacher and student (notebook 06)

T5_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in T5's own vocabulary


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


def _word_pre_tokenizer():
    from tokenizers import pre_tokenizers

    # Metaspace marks word starts with "▁" so that decoding restores the spaces exactly
    # ("1999-03-03" and "March 3, 1999" round-trip); Digits splits numbers into single digits,
    # so ten digit tokens cover every number.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(prepend_scheme="always"),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )


def build_word_tokenizer(texts: Iterable[str], min_freq: int = 1) -> PreTrainedTokenizerBase:
    """A word-level T5 tokenizer built offline from ``texts`` (no download, no training run).

    Words, punctuation and single digits become tokens; ids 0, 1, 2 are ``<pad>``, ``</s>``,
    ``<unk>`` (T5's), then every token seen ``min_freq`` times, most frequent first (ties
    alphabetically: the same texts give the same ids). Encoding appends ``</s>``; decoding
    restores the original spacing. A vocabulary of tens of tokens instead of T5's 32k is what
    makes a T5 trainable on a CPU in minutes. Save it with ``save_pretrained`` next to the model.
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}.")
    pre = _word_pre_tokenizer()
    counts = Counter(token for text in texts for token, _ in pre.pre_tokenize_str(text))
    words = sorted(
        (w for w, n in counts.items() if n >= min_freq and w not in T5_SPECIAL_TOKENS),
        key=lambda w: (-counts[w], w),
    )
    vocab = {token: i for i, token in enumerate([*T5_SPECIAL_TOKENS, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.Metaspace(prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


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
                f"save_pretrained (kdkit.models.save_t5 writes both): {err}"
            ) from err
        raise OSError(_hub_help(name, "model", err)) from err
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

    Token-level KD compares the two models' distributions over the same token ids, so both
    must produce ``V`` logits per position, and every tokenizer id must be below ``V``. A
    padded embedding is fine: T5's tokenizer has 32100 entries, its logits 32128.
    """
    v_t, v_s = t5_vocab_size(teacher), t5_vocab_size(student)
    if v_t != v_s:
        raise ValueError(
            f"teacher and student vocabularies differ: the teacher has {v_t} logits per "
            f"position, the student {v_s}. Token-level KD needs the same token ids on both "
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


__all__ += ["T5_SPECIAL_TOKENS", "build_word_tokenizer", "build_t5", "load_t5", "save_t5"]


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


__all__ += ["t5_student_from_teacher", "t5_vocab_size", "check_t5_vocab", "t5_param_breakdown"]


# --------------------------------------------------------- digits teacher (notebook 04)


def small_cnn(
    num_classes: int = 10, side: int = 8, channels: int = 32, dropout: float = 0.3
) -> nn.Sequential:
    """A small convolutional teacher for flattened ``side×side`` images: ``(B, side²) -> (B, C)``.

    Two 3×3 convolutions (``channels``, ``2·channels``), a 2×2 max-pool and a hidden layer of
    128 with dropout. On 8×8 digits it beats any MLP student clearly, which gives distillation
    something to transfer (an MLP teacher of 2×1200 barely beats a 2×32 student there).
    """
    if side % 2:
        raise ValueError(f"side must be even (2×2 pooling), got {side}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),  # (B, 1, side, side)
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 2·channels, side/2, side/2)
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels * (side // 2) ** 2, 128),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(128, num_classes),
    )


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    """True when two models have the same state_dict keys and bitwise-equal tensors.

    The check behind a same-initialisation baseline: build one student, ``copy.deepcopy`` it,
    and train one copy with cross-entropy and the other with distillation.
    """
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


__all__ += ["small_cnn", "same_parameters"]  # notebook 04
