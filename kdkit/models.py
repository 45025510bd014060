"""Small teacher and student networks for Parts I–II: MLPs and a small CNN for digits, a
Transformer encoder for text, a student initialised from its teacher's layers, and parameter
counting. T5 models live in :mod:`kdkit.t5`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from kdkit.losses import check_unit_interval

__all__ = [
    "mlp",
    "count_parameters",
    "TransformerConfig",
    "EncoderOutput",
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TransformerClassifier",
    "init_student_from_teacher",
    "small_cnn",
    "same_parameters",
]


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
    check_unit_interval("dropout", dropout, include_one=False)
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters, tied ones (T5's shared input/output embedding) counted once;
    with ``trainable_only``, only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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
        check_unit_interval("dropout", self.dropout, include_one=False)


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
    :class:`kdkit.data.tickets.WordTokenizer` puts first (BERT's pooling: attention must gather the
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
    check_unit_interval("dropout", dropout, include_one=False)
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
