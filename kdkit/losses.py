"""Distillation losses: small pure functions over logits.

Every function takes logits of shape ``(..., V)`` — ``(B, V)`` for a classifier,
``(B, L, V)`` for a sequence model — and reduces over *positions* (all dimensions
but the last) with an optional boolean ``mask`` that is True where a position counts.

``reduction``:
    ``"mean"`` (default): mean over counted positions; a mean over zero counted
    positions is 0, not NaN, and still backpropagates.
    ``"sum"``: sum over counted positions.
    ``"none"``: per-position values of shape ``logits.shape[:-1]``, zero where masked.

Notation (notebook 03 derives all of it): ``p_T = softmax(teacher_logits / T)``,
``p_S = softmax(student_logits / T)``.

This module imports nothing else from kdkit, so it can be copied on its own.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = [
    "check_temperature",
    "check_unit_interval",
    "check_reduction",
    "mask_from_labels",
    "reduce_positions",
    "alpha_mix",
    "soft_targets",
    "kd_kl_loss",
    "soft_cross_entropy",
    "hard_cross_entropy",
    "distillation_loss",
    "logit_mse_loss",
    "generalized_jsd_loss",
]

_REDUCTIONS = ("mean", "sum", "none")

# T5 checkpoints pad the embedding (and so the logits) to a multiple of 128 while the
# tokenizer has fewer entries; the commonest cause of a student/teacher vocabulary mismatch.
_VOCAB_HINT = (
    "The usual cause: two models whose output layers differ, e.g. T5's tokenizer has 32100 "
    "entries but its logits 32128 (the embedding is padded to a multiple of 128). Use a "
    "teacher and student with the same vocabulary, or slice both to the tokenizer's size "
    "(logits[..., :len(tokenizer)])."
)


# --------------------------------------------------------------------------- validation


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise ValueError(
            f"{name} must be floating point logits, got dtype {logits.dtype}. "
            f"Integer tensors are usually labels or token ids; pass the model's logits "
            f"(or convert with {name}.float())."
        )
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(
            f"{name} must have shape (..., V) with V >= 1 classes, got {tuple(logits.shape)}."
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"{name} contains NaN or inf values. Logits must be finite: check the model's "
            f"forward pass (a diverged run, an fp16 overflow) or masking with -inf; mask "
            f"positions with `mask=` instead."
        )


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    s, t = tuple(student_logits.shape), tuple(teacher_logits.shape)
    if s == t:
        return
    if s[:-1] == t[:-1]:
        raise ValueError(
            f"Vocabulary mismatch: student_logits have {s[-1]} classes in the last dimension "
            f"but teacher_logits have {t[-1]} (shapes {s} and {t}). {_VOCAB_HINT}"
        )
    raise ValueError(
        f"student_logits and teacher_logits must have the same shape, got {s} and {t}. "
        f"Both models must see the same batch (same batch size and sequence length)."
    )


def check_temperature(T: float, name: str = "T") -> float:
    """``T`` as a float, or a ``ValueError`` unless it is a finite number > 0.

    Accepts Python and NumPy scalars and one-element tensors (read with ``float``).
    """
    value = _as_number(T)
    if value is None:
        raise ValueError(f"{name} (temperature) must be a positive number, got {T!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name} (temperature) must be a finite number > 0, got {name}={T!r}. T=1 is the "
            f"plain softmax; T>1 softens the distribution."
        )
    return value


def check_unit_interval(name: str, value: float, *, include_one: bool = True) -> float:
    """``value`` as a float, or a ``ValueError`` unless it lies in [0, 1] (or [0, 1) when
    ``include_one=False``, e.g. a dropout rate). Used for ``alpha``, ``beta`` and rates."""
    number = _as_number(value)
    ok = number is not None and math.isfinite(number) and 0.0 <= number
    ok = ok and (number <= 1.0 if include_one else number < 1.0)
    if not ok:
        interval = "[0, 1]" if include_one else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {name}={value!r}.")
    return number


def _as_number(value) -> float | None:
    """A real scalar as a float (bools and non-numbers give None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 and not value.is_complex() else None
    return float(value) if isinstance(value, numbers.Real) else None


def check_reduction(reduction: str) -> None:
    """A ``ValueError`` unless ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")


def _check_positions(what: str, tensor: torch.Tensor, logits: torch.Tensor) -> None:
    """``tensor`` (a mask or labels) must have one entry per position: ``logits.shape[:-1]``."""
    if tuple(tensor.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"{what} shape {tuple(tensor.shape)} but must have the logits' shape without "
            f"the class dimension, {tuple(logits.shape[:-1])} (logits {tuple(logits.shape)})."
        )


def _check_mask(mask: torch.Tensor | None, logits: torch.Tensor) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a bool torch.Tensor, got {type(mask).__name__}.")
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor (True where a position counts), got dtype "
            f"{mask.dtype}. Build it with mask_from_labels(labels) or pass mask.bool()."
        )
    _check_positions("mask has", mask, logits)


def _check_labels(labels: torch.Tensor, logits: torch.Tensor, ignore_index: int) -> None:
    if not isinstance(labels, torch.Tensor):
        raise ValueError(
            f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}."
        )
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(
            f"labels must hold integer class indices (dtype long), got dtype {labels.dtype}. "
            f"For soft (probability) targets use kd_kl_loss or soft_cross_entropy."
        )
    _check_positions("labels have", labels, logits)
    V = logits.shape[-1]
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= V))
    if bool(bad.any()):
        value = int(labels[bad].flatten()[0])
        raise ValueError(
            f"labels must lie in [0, {V - 1}] or equal ignore_index={ignore_index}, found "
            f"{value}. Padding in seq2seq labels should be set to {ignore_index}."
        )


# --------------------------------------------------------------------------- reductions


def mask_from_labels(labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Boolean mask that is True where ``labels != ignore_index``.

    Shapes: labels ``(B, L)`` -> mask ``(B, L)``. Hugging Face seq2seq collators set padded
    label positions to -100, so this is the mask of real target tokens.
    """
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor, got {type(labels).__name__}.")
    return labels != ignore_index


def reduce_positions(
    values: torch.Tensor, mask: torch.Tensor | None, reduction: str
) -> torch.Tensor:
    """Reduce per-position values ``(...)`` over counted positions (True in ``mask``).

    ``"mean"``: over counted positions, 0 (with a graph) when none counts; ``"sum"``;
    ``"none"``: ``values`` with masked positions set to 0. The contract of every loss here.
    """
    if mask is not None:
        # torch.where, not a product: masked positions contribute neither value nor gradient.
        values = torch.where(mask, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    count = mask.sum() if mask is not None else torch.tensor(values.numel(), device=values.device)
    # clamp: a mean over zero counted positions is 0 (total is 0) and keeps its graph.
    return total / count.clamp(min=1).to(total.dtype)


# --------------------------------------------------------------------------- losses


def soft_targets(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Temperature-softened probabilities ``softmax(logits / T)`` over the last dimension.

    Shapes: ``(..., V) -> (..., V)``. Hinton, Vinyals & Dean (2015), eq. 1.
    """
    _check_logits("logits", logits)
    T = check_temperature(T)
    return torch.softmax(logits / T, dim=-1)


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · KL(p_T ‖ p_S)`` per position, reduced over counted positions.

    Shapes: logits ``(..., V)``, mask ``(...)``; returns a scalar, or ``(...)`` for
    ``reduction="none"``. For ``(B, V)`` and ``"mean"`` this equals
    ``T**2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction="batchmean")``.
    The ``T²`` keeps gradient magnitudes independent of T (Hinton et al. 2015, §2).
    Its gradient w.r.t. one position's student logits is ``T · (p_S − p_T)`` (divided by the
    number of counted positions for ``"mean"``).
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    log_p_s = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
    log_p_t = F.log_softmax(teacher_logits / T, dim=-1)  # (..., V)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)  # (...)
    return reduce_positions(T**2 * kl, mask, reduction)


def soft_cross_entropy(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · H(p_T, p_S) = T² · (−Σ p_T log p_S)`` per position.

    Equals ``kd_kl_loss + T² · H(p_T)``: the same gradient w.r.t. the student as the KL,
    but its value does not reach 0 when the student matches the teacher (it bottoms out
    at the teacher's entropy). Many tutorials call this "the KL loss"; it is not.
    Shapes as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    log_p_s = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
    p_t = torch.softmax(teacher_logits / T, dim=-1)  # (..., V)
    ce = -(p_t * log_p_s).sum(dim=-1)  # (...)
    return reduce_positions(T**2 * ce, mask, reduction)


def hard_cross_entropy(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy with integer labels; positions with ``labels == ignore_index`` don't count.

    Shapes: logits ``(..., V)``, labels ``(...)``. Same value as ``F.cross_entropy`` with
    ``ignore_index``, except that a mean over zero counted positions is 0 instead of NaN.
    """
    _check_logits("student_logits", student_logits)
    _check_labels(labels, student_logits, ignore_index)
    check_reduction(reduction)
    mask = labels != ignore_index  # (...)
    # any valid index where ignored; gather needs int64 (labels may be int16/int32)
    safe = torch.where(mask, labels, torch.zeros_like(labels)).long()
    log_p = F.log_softmax(student_logits, dim=-1)  # (..., V)
    nll = -log_p.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (...)
    return reduce_positions(nll, mask, reduction)


def alpha_mix(hard: torch.Tensor, soft: torch.Tensor, alpha: float) -> torch.Tensor:
    """Hinton's weighting of the two terms: ``(1 − alpha) · hard + alpha · soft``.

    ``alpha`` weighs the *soft* (distillation) term: ``alpha=0`` is plain supervised training,
    ``alpha=1`` pure distillation. (Keras' KD example and torchdistill weigh the hard term
    with their α.) Every kdkit loop mixes its CE and KD terms through this function.
    """
    alpha = check_unit_interval("alpha", alpha)
    return (1.0 - alpha) * hard + alpha * soft


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float = 1.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Hinton's mix ``(1 − alpha) · hard_cross_entropy + alpha · kd_kl_loss`` per position.

    Shapes: logits ``(..., V)``, labels ``(...)``. Positions with ``labels == ignore_index``
    (padding) count in *neither* term. ``reduction`` as in :func:`kd_kl_loss`: ``"mean"`` over
    counted positions, ``"sum"`` (what a loop that normalises by the token count of a whole
    accumulated step needs), ``"none"``. An unlabelled example that should still learn from
    the teacher (a transfer set) is not padding: mix ``hard_cross_entropy`` and ``kd_kl_loss``
    with :func:`alpha_mix` yourself, as :func:`kdkit.train.distill_classifier` does.
    Hinton, Vinyals & Dean (2015), §2; Kim & Rush (2016), word-level KD for sequences.
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    alpha = check_unit_interval("alpha", alpha)
    check_reduction(reduction)
    _check_labels(labels, student_logits, ignore_index)
    mask = mask_from_labels(labels, ignore_index)
    hard = hard_cross_entropy(
        student_logits, labels, ignore_index=ignore_index, reduction=reduction
    )
    soft = kd_kl_loss(student_logits, teacher_logits, T=T, mask=mask, reduction=reduction)
    return alpha_mix(hard, soft, alpha)


def logit_mse_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Logit matching: per position, the mean over the V classes of ``(z_S − z_T)²``.

    Shapes as in :func:`kd_kl_loss`. Caruana's logit regression (Ba & Caruana 2014); the
    high-temperature limit of ``kd_kl_loss`` when logits have zero mean (Hinton et al. §2.1).
    """
    _check_pair(student_logits, teacher_logits)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    mse = (student_logits - teacher_logits).pow(2).mean(dim=-1)  # (...)
    return reduce_positions(mse, mask, reduction)


def generalized_jsd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 0.5,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Generalized Jensen–Shannon divergence of GKD (Agarwal et al. 2024), per position.

    ``beta=0``: forward KL ``KL(p_T ‖ p_S)``; ``beta=1``: reverse KL ``KL(p_S ‖ p_T)``;
    otherwise ``beta·KL(p_T ‖ M) + (1−beta)·KL(p_S ‖ M)`` with ``M = beta·p_T + (1−beta)·p_S``.
    No ``T²`` factor. The endpoints are defined as the KLs because the mixture form tends to
    ``beta · KL(p_T ‖ p_S)`` (→ 0) as ``beta → 0``. Bounded by the binary entropy of beta
    (``log 2`` at ``beta=0.5``). Shapes as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    beta = check_unit_interval("beta", beta)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    log_p_s = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
    log_p_t = F.log_softmax(teacher_logits / T, dim=-1)  # (..., V)

    def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:  # KL(p ‖ q), (...)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)

    if beta == 0.0:
        jsd = kl(log_p_t, log_p_s)
    elif beta == 1.0:
        jsd = kl(log_p_s, log_p_t)
    else:
        log_m = torch.logsumexp(
            torch.stack([log_p_t + math.log(beta), log_p_s + math.log(1.0 - beta)]), dim=0
        )  # (..., V)
        jsd = beta * kl(log_p_t, log_m) + (1.0 - beta) * kl(log_p_s, log_m)
    return reduce_positions(jsd, mask, reduction)
