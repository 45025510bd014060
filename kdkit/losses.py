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

Precision: every loss computes in float32 (float64 for float64 input) whatever the logits'
dtype — bf16/fp16 logits are upcast before ``/ T``, so nothing overflows — and returns that
dtype. The divergences are computed in a form without cancellation (centred log-ratios and
``expm1``/``log1p``), so they keep their relative precision when the student is close to the
teacher, where the textbook ``Σ p_T (log p_T − log p_S)`` loses it, and are never negative.

Value checks (non-finite logits, labels out of range) need the tensors' values: on an
accelerator that is a host–device synchronisation. :func:`set_value_checks` chooses:
``"auto"`` (default) checks CPU tensors only, ``True`` always, ``False`` never; under
``torch.compile`` they are skipped. Shape, dtype and argument checks always run.

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
        if value.requires_grad:
            raise ValueError(
                "a temperature or weight that requires grad is not supported (a learnable "
                "temperature would need its own gradient): pass a number, or T.detach()."
            )
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


def _check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
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


_VALUE_CHECKS: bool | str = "auto"


def set_value_checks(mode: bool | str) -> bool | str:
    """Choose when the losses check tensor values (NaN/inf logits, labels out of range):
    ``"auto"`` (the default) on CPU tensors only — on a GPU the check would stall the host
    until the device catches up — ``True`` always (to get the clear error back on a GPU),
    ``False`` never. Returns the previous mode."""
    global _VALUE_CHECKS
    if mode not in (True, False, "auto"):
        raise ValueError(f"mode must be True, False or 'auto', got {mode!r}.")
    previous, _VALUE_CHECKS = _VALUE_CHECKS, mode
    return previous


def _check_values(
    logits: dict[str, torch.Tensor],
    labels: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> None:
    """Finite logits and labels in range, read with one synchronisation (see module doc)."""
    first = next(iter(logits.values()))
    if _VALUE_CHECKS is False or torch.compiler.is_compiling():
        return
    if _VALUE_CHECKS == "auto" and first.device.type != "cpu":
        return
    V = first.shape[-1]
    oks = [torch.isfinite(z).all() for z in logits.values()]
    if labels is not None:
        oks.append(((labels == ignore_index) | ((labels >= 0) & (labels < V))).all())
    if bool(torch.stack(oks).all()):
        return
    for name, z in logits.items():
        if not bool(torch.isfinite(z).all()):
            raise ValueError(
                f"{name} contains NaN or inf values. Logits must be finite: check the model's "
                f"forward pass (a diverged run, an fp16 overflow) or masking with -inf; mask "
                f"positions with `mask=` instead."
            )
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= V))
    raise ValueError(
        f"labels must lie in [0, {V - 1}] or equal ignore_index={ignore_index}, found "
        f"{int(labels[bad].flatten()[0])}. Padding in seq2seq labels should be set to "
        f"{ignore_index}."
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


# --------------------------------------------------------------------------- exact arithmetic


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (bf16/fp16 logits are upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _scaled(logits: torch.Tensor, T: float, dtype: torch.dtype) -> torch.Tensor:
    """``logits / T`` in ``dtype``, upcast first: no overflow for any finite input."""
    return logits.to(dtype) / T


def _log_softmax(z: torch.Tensor) -> torch.Tensor:
    """``log softmax(z)`` over the last dimension, to a few float32 ulps.

    ``(z − max) − log1p(Σ_{i ≠ argmax} exp(z_i − max))``: the largest term (exactly 1) is left
    out of the sum, so a confident distribution keeps the precision of its small log-mass
    (torch's fused float32 ``log_softmax`` on CPU is off by ~1e-5 at 32k classes).
    """
    top = z.argmax(dim=-1, keepdim=True)  # (..., 1)
    shifted = z - z.gather(-1, top)  # (..., V), <= 0
    rest = torch.exp(shifted).scatter(-1, top, 0.0).sum(dim=-1, keepdim=True)  # (..., 1)
    return shifted - torch.log1p(rest)


def _mean_expm1(p: torch.Tensor, log_p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``E_p[exp(−d) − 1 + d]`` per position (``≥ 0``), without cancellation for small ``d``.

    Shapes ``(..., V) -> (...)``. Where ``|d| ≤ 1``: ``p · (expm1(−d) + d)``; elsewhere
    ``exp(log p − d) − p + p·d``, which cannot overflow where ``p`` is tiny.
    """
    small = d.abs() <= 1.0
    d_small = d.clamp(-1.0, 1.0)  # keeps the unused branch finite (and its gradient 0)
    near = p * (torch.expm1(-d_small) + d_small)
    far = torch.exp(log_p - d) - p + p * d
    return torch.where(small, near, far).sum(dim=-1).clamp_min(0.0)


def _kl_parts(z_p: torch.Tensor, z_q: torch.Tensor):
    """For ``p = softmax(z_p)``, ``q = softmax(z_q)`` over the last dimension: ``log p``, ``p``,
    the log-ratio ``r = log p − log q`` ``(..., V)`` and ``KL(p ‖ q)`` ``(...)``.

    With ``d = z_p − z_q`` centred so that ``E_p[d] = 0``: ``KL = log E_p[exp(−d)]`` and
    ``r = d + KL``; written with ``log1p``/``expm1`` this keeps its relative precision when
    ``p ≈ q`` (the textbook ``Σ p (log p − log q)`` subtracts two nearly equal numbers).
    """
    log_p = F.log_softmax(z_p, dim=-1)  # its normaliser's error scales KL by 1 + O(1e-5)
    p = log_p.exp()
    d = z_p - z_q
    d = d - (p * d).sum(dim=-1, keepdim=True)  # (..., V), E_p[d] = 0
    kl = torch.log1p(_mean_expm1(p, log_p, d))  # (...), inf once KL > ~88 ...
    kl_large = torch.logsumexp(log_p - d, dim=-1)  # ... where this form is exact
    kl = torch.where(kl_large > 1.0, kl_large, kl)
    return log_p, p, d + kl.unsqueeze(-1), kl


def _log_mix(x: torch.Tensor, w: float, log_w: float, log_1mw: float) -> torch.Tensor:
    """``log(1 − w + w·exp(x))`` elementwise, precise for small ``x`` and safe for large
    (``log_w = log w`` and ``log_1mw = log(1 − w)`` given exactly, also for ``w`` near 0 or 1)."""
    near = torch.log1p(w * torch.expm1(x.clamp(-1.0, 1.0)))
    far = torch.logaddexp(torch.full_like(x, log_1mw), x + log_w)
    return torch.where(x.abs() <= 1.0, near, far)


def _centred(g: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``g − p · Σ g``: a divergence's gradient w.r.t. logits sums to 0 over the classes.

    Computed, it does not quite: a softmax's normaliser is off by a few float32 ulps (common to
    the row, so the error is ``∝ p``), and near a one-hot ``p`` the top entry is a difference
    of two numbers close to 1. Both errors sit along ``p`` and this projection removes them.
    """
    return g - p * g.sum(dim=-1, keepdim=True)


def _divergence_and_grads(z_s: torch.Tensor, z_t: torch.Tensor, beta: float, grads: bool):
    """The GKD family on scaled logits ``(..., V)``: ``beta=0`` ``KL(p_T ‖ p_S)``, ``beta=1``
    ``KL(p_S ‖ p_T)``, otherwise the generalized JSD. Returns the values ``(...)`` and, with
    ``grads``, their gradients w.r.t. ``z_s`` and ``z_t`` ``(..., V)``: ``∂KL(p‖q)/∂z_q =
    q − p`` and ``∂KL(p‖q)/∂z_p = p ⊙ (log p − log q − KL)``, written without cancellation."""
    if beta == 0.0 or beta == 1.0:
        z_p, z_q = (z_t, z_s) if beta == 0.0 else (z_s, z_t)
        _, p, r, kl = _kl_parts(z_p, z_q)  # r = log p − log q
        if not grads:
            return kl, None, None
        g_q = _centred(torch.softmax(z_q, dim=-1) - p, p)
        g_p = _centred(p * (r - kl.unsqueeze(-1)), p)
        return (kl, g_q, g_p) if beta == 0.0 else (kl, g_p, g_q)
    _, p_t, r, _ = _kl_parts(z_t, z_s)  # r = log p_T − log p_S
    p_s = torch.softmax(z_s, dim=-1)
    log_b, log_1mb = math.log(beta), math.log1p(-beta)
    a_t = -_log_mix(-r, 1.0 - beta, log_1mb, log_b)  # log p_T − log M, (..., V)
    a_s = -_log_mix(r, beta, log_b, log_1mb)  # log p_S − log M
    kl_t, kl_s = (p_t * a_t).sum(dim=-1), (p_s * a_s).sum(dim=-1)  # KL(p_T ‖ M), KL(p_S ‖ M)
    jsd = (beta * kl_t + (1.0 - beta) * kl_s).clamp_min(0.0)
    if not grads:
        return jsd, None, None
    g_s = _centred((1.0 - beta) * p_s * (a_s - kl_s.unsqueeze(-1)), p_s)
    g_t = _centred(beta * p_t * (a_t - kl_t.unsqueeze(-1)), p_t)
    return jsd, g_s, g_t


_CHUNK_ELEMENTS = 1 << 22  # (rows × V) per piece: 16 MiB in float32


def _row_chunks(n_rows: int, V: int) -> list[tuple[int, int]]:
    """Row ranges covering ``n_rows`` rows of ``V`` classes, about ``_CHUNK_ELEMENTS`` each:
    the ``(rows, V)`` temporaries of the exact arithmetic never exceed one piece."""
    step = max(1, _CHUNK_ELEMENTS // max(V, 1))
    return [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]


class _Divergence(torch.autograd.Function):
    """Per-position divergence between student and teacher logits at temperature ``T``
    (``beta`` as in :func:`_divergence_and_grads`), computed in ``dtype`` piece by piece over
    the positions. Only the inputs are kept for the backward pass, which recomputes the
    distributions; beyond its inputs and the gradient it returns, a call holds one piece's
    temporaries at a time."""

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, T: float, beta: float, dtype):
        ctx.save_for_backward(student_logits, teacher_logits)
        ctx.T, ctx.beta, ctx.dtype = T, beta, dtype
        V = student_logits.shape[-1]
        s, t = student_logits.reshape(-1, V), teacher_logits.reshape(-1, V)  # (N, V)
        values = [
            _divergence_and_grads(_scaled(s[a:b], T, dtype), _scaled(t[a:b], T, dtype), beta,
                                  grads=False)[0]
            for a, b in _row_chunks(s.shape[0], V)
        ]
        return torch.cat(values).reshape(student_logits.shape[:-1])  # (...)

    @staticmethod
    def backward(ctx, grad_out):
        student_logits, teacher_logits = ctx.saved_tensors
        need_s, need_t = ctx.needs_input_grad[:2]
        V = student_logits.shape[-1]
        s, t = student_logits.reshape(-1, V), teacher_logits.reshape(-1, V)  # (N, V)
        scale = (grad_out.reshape(-1) / ctx.T).unsqueeze(-1)  # (N, 1); dz/dlogits = 1/T
        grad_s = torch.empty_like(s) if need_s else None
        grad_t = torch.empty_like(t) if need_t else None
        for a, b in _row_chunks(s.shape[0], V):
            g_s, g_t = _divergence_grads(s[a:b], t[a:b], ctx.T, ctx.beta, ctx.dtype, need_t)
            # where: a position that does not count (masked, grad 0) may hold inf/NaN partials
            if need_s:
                grad_s[a:b] = torch.where(scale[a:b] != 0, g_s * scale[a:b], 0.0)
            if need_t:
                grad_t[a:b] = torch.where(scale[a:b] != 0, g_t * scale[a:b], 0.0)
        shape = student_logits.shape
        return (
            grad_s.reshape(shape) if need_s else None,
            grad_t.reshape(shape) if need_t else None,
            None, None, None,
        )


def _divergence_grads(s, t, T: float, beta: float, dtype, need_t: bool):
    """Gradients w.r.t. the scaled logits of one piece of rows ``(n, V)`` (``None`` for the
    teacher unless ``need_t``)."""
    z_s, z_t = _scaled(s, T, dtype), _scaled(t, T, dtype)
    if beta == 0.0 and not need_t:  # KD's case: the gradient is just p_S − p_T
        p_t = torch.softmax(z_t, dim=-1)
        return _centred(torch.softmax(z_s, dim=-1) - p_t, p_t), None
    _, g_s, g_t = _divergence_and_grads(z_s, z_t, beta, grads=True)
    return g_s, g_t


def _divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float, beta: float
) -> torch.Tensor:
    """:class:`_Divergence` per position ``(...)``, in float32 (float64 for float64 input)."""
    dtype = _compute_dtype(student_logits, teacher_logits)
    return _Divergence.apply(student_logits, teacher_logits, T, beta, dtype)


# --------------------------------------------------------------------------- losses


def soft_targets(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Temperature-softened probabilities ``softmax(logits / T)`` over the last dimension.

    Shapes: ``(..., V) -> (..., V)``, float32 (float64 for float64 input). Hinton, Vinyals &
    Dean (2015), eq. 1.
    """
    _check_logits("logits", logits)
    T = check_temperature(T)
    _check_values({"logits": logits})
    return _log_softmax(_scaled(logits, T, _compute_dtype(logits))).exp()


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · KL(p_T ‖ p_S)`` per position, reduced over counted positions.

    Shapes: logits ``(..., V)``, mask ``(...)``; returns a scalar, or ``(...)`` for
    ``reduction="none"`` (float32, or float64 for float64 input). For ``(B, V)`` and ``"mean"``
    this equals ``T**2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True,
    reduction="batchmean")``. The ``T²`` keeps gradient magnitudes independent of T (Hinton
    et al. 2015, §2). Its gradient w.r.t. one position's student logits is ``T · (p_S − p_T)``
    (divided by the number of counted positions for ``"mean"``).
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    _check_values({"student_logits": student_logits, "teacher_logits": teacher_logits})
    kl = _divergence(student_logits, teacher_logits, T, beta=0.0)  # (...)
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
    Shapes and dtype as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    _check_values({"student_logits": student_logits, "teacher_logits": teacher_logits})
    dtype = _compute_dtype(student_logits, teacher_logits)
    log_p_t = _log_softmax(_scaled(teacher_logits, T, dtype))  # (..., V)
    entropy = -(log_p_t.exp() * log_p_t).sum(dim=-1)  # H(p_T), (...)
    ce = _divergence(student_logits, teacher_logits, T, beta=0.0) + entropy  # (...)
    return reduce_positions(T**2 * ce, mask, reduction)


def _hard_ce_values(
    student_logits: torch.Tensor, labels: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position ``−log p_S[label]`` ``(...)`` (0 where ignored) and the counted mask."""
    mask = labels != ignore_index  # (...)
    # any valid index where ignored; gather needs int64 (labels may be int16/int32)
    safe = torch.where(mask, labels, torch.zeros_like(labels)).long()
    log_p = _log_softmax(student_logits.to(_compute_dtype(student_logits)))  # (..., V)
    nll = -log_p.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (...)
    return nll, mask


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
    _check_labels(labels, student_logits)
    check_reduction(reduction)
    _check_values({"student_logits": student_logits}, labels, ignore_index)
    nll, mask = _hard_ce_values(student_logits, labels, ignore_index)
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
    _check_labels(labels, student_logits)
    _check_values(
        {"student_logits": student_logits, "teacher_logits": teacher_logits}, labels, ignore_index
    )
    nll, mask = _hard_ce_values(student_logits, labels, ignore_index)  # (...)
    kl = T**2 * _divergence(student_logits, teacher_logits, T, beta=0.0)  # (...)
    return reduce_positions(alpha_mix(nll, kl, alpha), mask, reduction)


def logit_mse_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Logit matching: per position, the mean over the V classes of ``(z_S − z_T)²``.

    Shapes and dtype as in :func:`kd_kl_loss`. Caruana's logit regression (Ba & Caruana 2014);
    the high-temperature limit of ``kd_kl_loss`` when logits have zero mean (Hinton et al.
    §2.1).
    """
    _check_pair(student_logits, teacher_logits)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    _check_values({"student_logits": student_logits, "teacher_logits": teacher_logits})
    dtype = _compute_dtype(student_logits, teacher_logits)
    diff = student_logits.to(dtype) - teacher_logits.to(dtype)  # (..., V)
    return reduce_positions(diff.pow(2).mean(dim=-1), mask, reduction)


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
    (``log 2`` at ``beta=0.5``). Shapes and dtype as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    beta = check_unit_interval("beta", beta)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    _check_values({"student_logits": student_logits, "teacher_logits": teacher_logits})
    jsd = _divergence(student_logits, teacher_logits, T, beta)  # (...)
    return reduce_positions(jsd, mask, reduction)
