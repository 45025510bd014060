"""Distilling intermediate representations: hidden states and attention maps.

Response-based KD (:mod:`kdkit.losses`) matches what a teacher *outputs*; the losses here match
what it *computes on the way*: the hidden state of each token after a block (FitNets), and the
attention probabilities of each head (TinyBERT, MiniLM). Both need to know which student layer
imitates which teacher layer: :func:`layer_mapping`.

Shapes, for a Transformer (``kdkit.models.TransformerClassifier.encode`` returns them):
hidden states ``(B, L, D)``, attention probabilities ``(B, H, L, L)`` (query ``i``, key ``j``),
``mask`` ``(B, L)`` bool, True on real tokens. Padding counts nowhere: not as a position, not
as a query, not as a key. Layers are numbered 0-based by block (the embeddings are not a layer).

Notebook 05 derives and uses all of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kdkit.losses import check_reduction, reduce_positions

__all__ = [
    "layer_mapping",
    "check_layer_mapping",
    "hidden_state_mse",
    "identity_projection",
    "HiddenStateLoss",
    "attention_map_loss",
    "mapped_attention_loss",
]

_ATTENTION_KINDS = ("kl", "mse")


# --------------------------------------------------------------------------- layer mapping


def layer_mapping(num_student_layers: int, num_teacher_layers: int) -> list[tuple[int, int]]:
    """Uniform layer mapping, 0-based: student block ``i`` ↔ teacher block ``(i + 1)·k − 1``.

    ``k = num_teacher_layers / num_student_layers`` must be a whole number. Each student block
    stands for ``k`` consecutive teacher blocks and imitates the top one; the last student block
    always imitates the last teacher block. For 2 of 4: ``[(0, 1), (1, 3)]``, i.e. student layer
    ``i`` ↔ teacher layer ``2i + 1``. This is TinyBERT's ``g(m) = m · N / M`` in 1-based
    numbering (Jiao et al. 2020, §3.1).
    """
    for name, n in (
        ("num_student_layers", num_student_layers),
        ("num_teacher_layers", num_teacher_layers),
    ):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}.")
    if num_teacher_layers % num_student_layers:
        raise ValueError(
            f"a uniform mapping needs the teacher's layers ({num_teacher_layers}) to be a multiple "
            f"of the student's ({num_student_layers}); pass an explicit list of "
            f"(student_layer, teacher_layer) pairs instead."
        )
    k = num_teacher_layers // num_student_layers
    return [(i, (i + 1) * k - 1) for i in range(num_student_layers)]


def check_layer_mapping(
    mapping: Sequence[tuple[int, int]], num_student_layers: int, num_teacher_layers: int
) -> list[tuple[int, int]]:
    """``mapping`` as a list of int pairs ``(student_layer, teacher_layer)``, or a ValueError
    that names the pair and the valid range (0-based)."""
    pairs = [tuple(pair) for pair in mapping]
    if not pairs:
        raise ValueError("the layer mapping is empty: give at least one (student, teacher) pair.")
    checked = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(
                f"each layer mapping entry must be a (student, teacher) pair, got {pair}."
            )
        s, t = (int(x) for x in pair)
        if not 0 <= s < num_student_layers:
            raise ValueError(
                f"layer mapping {pair}: student layer {s} is out of range, the student has "
                f"{num_student_layers} layers (0 to {num_student_layers - 1})."
            )
        if not 0 <= t < num_teacher_layers:
            raise ValueError(
                f"layer mapping {pair}: teacher layer {t} is out of range, the teacher has "
                f"{num_teacher_layers} layers (0 to {num_teacher_layers - 1})."
            )
        checked.append((s, t))
    return checked


def _check_positions_mask(mask: torch.Tensor | None, B: int, L: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool tensor (True on real tokens), e.g. attention_mask.")
    if tuple(mask.shape) != (B, L):
        raise ValueError(f"mask must have shape (B, L) = {(B, L)}, got {tuple(mask.shape)}.")


# --------------------------------------------------------------------------- hidden states


def hidden_state_mse(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Per token, the mean over ``D`` features of ``(h_stu − h_tea)²``; reduced over real tokens.

    Shapes: hidden states ``(B, L, D)``, mask ``(B, L)``; returns a scalar, or ``(B, L)`` for
    ``reduction="none"`` (zero on padding). Widths must match: project a narrower student
    first (:class:`HiddenStateLoss` learns the projection). FitNets' hint loss
    (Romero et al. 2015, eq. 3) without the regressor.
    """
    check_reduction(reduction)
    if student_hidden.dim() != 3 or teacher_hidden.dim() != 3:
        raise ValueError(
            f"hidden states must have shape (B, L, D), got {tuple(student_hidden.shape)} and "
            f"{tuple(teacher_hidden.shape)}."
        )
    if student_hidden.shape[-1] != teacher_hidden.shape[-1]:
        raise ValueError(
            f"hidden widths differ: student D={student_hidden.shape[-1]}, teacher "
            f"D={teacher_hidden.shape[-1]}. Project the student's states to the teacher's width "
            f"first: HiddenStateLoss(mapping, student_dim={student_hidden.shape[-1]}, "
            f"teacher_dim={teacher_hidden.shape[-1]}) learns that projection."
        )
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"student and teacher hidden states must cover the same batch and tokens, got "
            f"{tuple(student_hidden.shape)} and {tuple(teacher_hidden.shape)}."
        )
    B, L, _ = student_hidden.shape
    _check_positions_mask(mask, B, L)
    mse = (student_hidden - teacher_hidden).pow(2).mean(dim=-1)  # (B, L)
    return reduce_positions(mse, mask, reduction)


def identity_projection(in_dim: int, out_dim: int) -> nn.Linear:
    """``nn.Linear(in_dim, out_dim)`` that starts as the identity (``eye_`` weight, zero bias):
    the learned map from a student's hidden width to a teacher's (FitNets' regressor). No
    random numbers are drawn, so seeded runs with and without it stay aligned."""
    # skip_init: nn.Linear's own (random) initialisation would draw from torch's global RNG
    linear = torch.nn.utils.skip_init(nn.Linear, in_dim, out_dim)
    with torch.no_grad():
        nn.init.eye_(linear.weight)
        nn.init.zeros_(linear.bias)
    return linear


class HiddenStateLoss(nn.Module):
    """FitNets-style hidden-state distillation through learned linear projections.

    For each ``(i, j)`` in ``mapping``: ``hidden_state_mse(W_i · h_stu[i] + b_i, h_tea[j])`` over
    real tokens, averaged over the pairs. ``W_i`` ``(teacher_dim, student_dim)`` is trained
    with the student (pass this module's parameters to the optimiser) and starts as the
    identity (``nn.init.eye_``: no random numbers drawn, so seeded runs stay aligned).
    With ``project=False`` there is no projection and the widths must match.
    Romero et al. (2015), "FitNets: hints for thin deep nets" (the "regressor" of §2.2).
    """

    def __init__(
        self,
        mapping: Sequence[tuple[int, int]],
        student_dim: int,
        teacher_dim: int,
        *,
        project: bool = True,
    ) -> None:
        super().__init__()
        self.mapping = [(int(s), int(t)) for s, t in mapping]
        if not self.mapping:
            raise ValueError(
                "the layer mapping is empty: give at least one (student, teacher) pair."
            )
        if not project and student_dim != teacher_dim:
            raise ValueError(
                f"project=False needs equal widths, got student_dim={student_dim} and "
                f"teacher_dim={teacher_dim}; keep project=True to learn a projection."
            )
        self.projections = nn.ModuleList()
        if project:
            for _ in self.mapping:
                self.projections.append(identity_projection(student_dim, teacher_dim))

    def forward(
        self,
        student_hidden_states: Sequence[torch.Tensor],
        teacher_hidden_states: Sequence[torch.Tensor],
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean over mapped pairs of the projected hidden-state MSE (a scalar).

        ``student_hidden_states``: one ``(B, L, D_stu)`` per student block; ``teacher_...``:
        one ``(B, L, D_tea)`` per teacher block; ``mask`` ``(B, L)``.
        """
        pairs = check_layer_mapping(
            self.mapping, len(student_hidden_states), len(teacher_hidden_states)
        )
        total = 0.0
        for k, (i, j) in enumerate(pairs):
            h_stu = student_hidden_states[i]  # (B, L, D_stu)
            if len(self.projections):
                h_stu = self.projections[k](h_stu)  # (B, L, D_tea)
            total = total + hidden_state_mse(h_stu, teacher_hidden_states[j], mask)
        return total / len(pairs)


# --------------------------------------------------------------------------- attention maps


def attention_map_loss(
    student_attn: torch.Tensor,
    teacher_attn: torch.Tensor,
    mask: torch.Tensor | None = None,
    kind: str = "kl",
    reduction: str = "mean",
) -> torch.Tensor:
    """Distance between student and teacher attention probabilities, per head and query token.

    Shapes: attention ``(B, H, L, L)`` (rows are queries, each a distribution over keys),
    mask ``(B, L)``; returns a scalar, or ``(B, H, L)`` for ``reduction="none"``. Only real
    tokens count, as queries and as keys; ``"mean"`` averages over heads and real queries.

    ``kind="kl"``: ``KL(a_tea ‖ a_stu)`` of each query's row, as MiniLM (Wang et al. 2020).
    ``kind="mse"``: mean over real keys of ``(a_stu − a_tea)²``. TinyBERT (Jiao et al. 2020,
    eq. 7) fits the *unnormalised* scores with MSE; on probabilities, as here, the values are
    small (rows sum to 1), so its weight must be large. Heads are matched one to one, so
    student and teacher need the same number of heads.
    """
    check_reduction(reduction)
    if kind not in _ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {_ATTENTION_KINDS}, got {kind!r}.")
    if student_attn.dim() != 4 or teacher_attn.dim() != 4:
        raise ValueError(
            f"attention maps must have shape (B, H, L, L), got {tuple(student_attn.shape)} and "
            f"{tuple(teacher_attn.shape)}."
        )
    if student_attn.shape != teacher_attn.shape:
        hint = (
            " Heads are matched one to one: build the student with the teacher's num_heads."
            if student_attn.shape[1] != teacher_attn.shape[1]
            else ""
        )
        raise ValueError(
            f"student and teacher attention maps must have the same shape, got "
            f"{tuple(student_attn.shape)} and {tuple(teacher_attn.shape)}.{hint}"
        )
    B, H, L, _ = student_attn.shape
    _check_positions_mask(mask, B, L)
    keys = (
        torch.ones(B, 1, 1, L, dtype=torch.bool, device=student_attn.device)
        if mask is None
        else mask[:, None, None, :]
    )  # (B, 1, 1, L)
    zeros = torch.zeros_like(student_attn)
    if kind == "kl":
        # clamp: a student probability that underflowed to 0 would make log(0) = -inf
        log_ratio = teacher_attn.clamp_min(1e-12).log() - student_attn.clamp_min(1e-12).log()
        per_key = torch.where(keys, teacher_attn * log_ratio, zeros)  # (B, H, L, L)
        per_query = per_key.sum(-1)  # (B, H, L)
    else:
        per_key = torch.where(keys, (student_attn - teacher_attn).pow(2), zeros)
        per_query = per_key.sum(-1) / keys.sum(-1).clamp(min=1)  # (B, H, L)
    queries = None if mask is None else mask[:, None, :].expand(B, H, L)  # (B, H, L)
    return reduce_positions(per_query, queries, reduction)


def mapped_attention_loss(
    student_attentions: Sequence[torch.Tensor],
    teacher_attentions: Sequence[torch.Tensor],
    mapping: Sequence[tuple[int, int]],
    mask: torch.Tensor | None = None,
    kind: str = "kl",
) -> torch.Tensor:
    """:func:`attention_map_loss` averaged over the ``(student_layer, teacher_layer)`` pairs.

    ``student_attentions``: one ``(B, H, L, L)`` per student block, likewise the teacher's.
    TinyBERT's attention-based distillation (Jiao et al. 2020, §3.1) over a layer mapping.
    """
    pairs = check_layer_mapping(mapping, len(student_attentions), len(teacher_attentions))
    total = 0.0
    for i, j in pairs:
        total = total + attention_map_loss(student_attentions[i], teacher_attentions[j], mask, kind)
    return total / len(pairs)
