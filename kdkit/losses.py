"""Distillation losses: small pure functions over logits.

Every function takes logits of shape ``(..., V)`` — ``(B, V)`` for a classifier,
``(B, L, V)`` for a sequence model — and reduces over *positions* (all dimensions
but the last) with an optional boolean ``mask`` that is True where a position counts.

``reduction``:
    ``"mean"`` (default): mean over counted positions; a mean over zero counted
    positions is 0, not NaN, and still backpropagates.
    ``"sum"``: sum over counted positions.
    ``"none"``: per-position values of shape ``logits.shape[:-1]``, zero where masked.

Notation (notebook 03 derives all of it): ``p_tea = softmax(teacher_logits / T)``,
``p_stu = softmax(student_logits / T)``.

Precision (:func:`set_exact_arithmetic`): bf16/fp16 logits take the exact path — upcast to
float32 before ``/ T`` (nothing overflows), divergences written without cancellation (centred
log-ratios and ``expm1``/``log1p``), so they keep their relative precision when the student is
close to the teacher, where the textbook ``Σ p_tea (log p_tea − log p_stu)`` loses it, and are
never negative; float32 is returned. float32/float64 logits keep the textbook formulas unless the
exact path is switched on for every dtype.

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
    "chunked_distillation_loss",
    "t5_logit_scale",
    "sparse_kd_loss",
    "set_value_checks",
    "set_exact_arithmetic",
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


_EXACT: bool | str = "auto"
_HALF = (torch.float16, torch.bfloat16)


def set_exact_arithmetic(mode: bool | str) -> bool | str:
    """Choose the arithmetic of the divergences and cross-entropies: ``"auto"`` (default)
    takes the exact path — upcast, cancellation-free, a hand-written backward — for bf16/fp16
    logits and the textbook formulas for float32/float64 logits (what the course's notebooks
    were computed with); ``True`` takes the exact path always, ``False`` never. Returns the
    previous mode. The two agree to float32 rounding except where the student is within
    ~0.01 of the teacher, where only the exact path keeps its relative precision."""
    global _EXACT
    if mode not in (True, False, "auto"):
        raise ValueError(f"mode must be True, False or 'auto', got {mode!r}.")
    previous, _EXACT = _EXACT, mode
    return previous


def _exact(*tensors: torch.Tensor) -> bool:
    """Whether these logits take the exact path (see :func:`set_exact_arithmetic`)."""
    if _EXACT == "auto":
        return any(t.dtype in _HALF for t in tensors)
    return bool(_EXACT)


def _reads_values(t: torch.Tensor) -> bool:
    """Whether value checks run for ``t`` (see :func:`set_value_checks`)."""
    if _VALUE_CHECKS is False or torch.compiler.is_compiling():
        return False
    return _VALUE_CHECKS is True or t.device.type == "cpu"


def _check_label_values(labels: torch.Tensor, V: int, ignore_index: int) -> None:
    """Labels in ``[0, V)`` or ``ignore_index`` (read before they index anything)."""
    if not _reads_values(labels):
        return
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= V))
    if bool(bad.any()):
        raise ValueError(
            f"labels must lie in [0, {V - 1}] or equal ignore_index={ignore_index}, found "
            f"{int(labels[bad].flatten()[0])}. Padding in seq2seq labels should be set to "
            f"{ignore_index}."
        )


def _check_finite(values: torch.Tensor, logits: dict[str, torch.Tensor]) -> None:
    """Finite logits (and so finite ``values``), read with one synchronisation; the inputs
    are searched one by one only when something is not finite, for the message."""
    if not _reads_values(values):
        return
    checks = [torch.isfinite(z).all() for z in logits.values()]
    if bool(torch.stack(checks).all()):
        return
    for name, z in logits.items():
        if not bool(torch.isfinite(z).all()):
            raise ValueError(
                f"{name} contains NaN or inf values. Logits must be finite: check the model's "
                f"forward pass (a diverged run, an fp16 overflow) or masking with -inf; mask "
                f"positions with `mask=` instead."
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
    """The GKD family on scaled logits ``(..., V)``: ``beta=0`` ``KL(p_tea ‖ p_stu)``, ``beta=1``
    ``KL(p_stu ‖ p_tea)``, otherwise the generalized JSD. Returns the values ``(...)`` and, with
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
    _, p_t, r, _ = _kl_parts(z_t, z_s)  # r = log p_tea − log p_stu
    p_s = torch.softmax(z_s, dim=-1)
    log_b, log_1mb = math.log(beta), math.log1p(-beta)
    a_t = -_log_mix(-r, 1.0 - beta, log_1mb, log_b)  # log p_tea − log M, (..., V)
    a_s = -_log_mix(r, beta, log_b, log_1mb)  # log p_stu − log M
    kl_t, kl_s = (p_t * a_t).sum(dim=-1), (p_s * a_s).sum(dim=-1)  # KL(p_tea ‖ M), KL(p_stu ‖ M)
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
    if beta == 0.0 and not need_t:  # KD's case: the gradient is just p_stu − p_tea
        p_t = torch.softmax(z_t, dim=-1)
        return _centred(torch.softmax(z_s, dim=-1) - p_t, p_t), None
    _, g_s, g_t = _divergence_and_grads(z_s, z_t, beta, grads=True)
    return g_s, g_t


def _textbook_jsd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float, beta: float
) -> torch.Tensor:
    """The GKD family as the formulas read, in the logits' dtype, through autograd: ``Σ p
    (log p − log q)`` on log-softmaxes (``beta = 0`` forward KL, ``1`` reverse KL)."""
    log_p_s = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
    log_p_t = F.log_softmax(teacher_logits / T, dim=-1)  # (..., V)

    def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:  # KL(p ‖ q), (...)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)

    if beta == 0.0:
        return kl(log_p_t, log_p_s)
    if beta == 1.0:
        return kl(log_p_s, log_p_t)
    log_m = torch.logsumexp(
        torch.stack([log_p_t + math.log(beta), log_p_s + math.log(1.0 - beta)]), dim=0
    )  # (..., V)
    return beta * kl(log_p_t, log_m) + (1.0 - beta) * kl(log_p_s, log_m)


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
    if _exact(logits):
        probs = _log_softmax(_scaled(logits, T, _compute_dtype(logits))).exp()  # (..., V)
    else:
        probs = torch.softmax(logits / T, dim=-1)
    _check_finite(probs, {"logits": logits})
    return probs


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · KL(p_tea ‖ p_stu)`` per position, reduced over counted positions.

    Shapes: logits ``(..., V)``, mask ``(...)``; returns a scalar, or ``(...)`` for
    ``reduction="none"`` (float32, or float64 for float64 input). For ``(B, V)`` and ``"mean"``
    this equals ``T**2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True,
    reduction="batchmean")``. The ``T²`` keeps gradient magnitudes independent of T (Hinton
    et al. 2015, §2). Its gradient w.r.t. one position's student logits is ``T · (p_stu − p_tea)``
    (divided by the number of counted positions for ``"mean"``).
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    if _exact(student_logits, teacher_logits):
        kl = _divergence(student_logits, teacher_logits, T, beta=0.0)  # (...)
    else:
        kl = _textbook_jsd(student_logits, teacher_logits, T, beta=0.0)
    _check_finite(kl, {"student_logits": student_logits, "teacher_logits": teacher_logits})
    return reduce_positions(T**2 * kl, mask, reduction)


def soft_cross_entropy(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · H(p_tea, p_stu) = T² · (−Σ p_tea log p_stu)`` per position.

    Equals ``kd_kl_loss + T² · H(p_tea)``: the same gradient w.r.t. the student as the KL,
    but its value does not reach 0 when the student matches the teacher (it bottoms out
    at the teacher's entropy). Many tutorials call this "the KL loss"; it is not.
    Shapes and dtype as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    if _exact(student_logits, teacher_logits):
        dtype = _compute_dtype(student_logits, teacher_logits)
        log_p_t = _log_softmax(_scaled(teacher_logits, T, dtype))  # (..., V)
        entropy = -(log_p_t.exp() * log_p_t).sum(dim=-1)  # H(p_tea), (...)
        ce = _divergence(student_logits, teacher_logits, T, beta=0.0) + entropy  # (...)
    else:
        log_p_s = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
        p_t = torch.softmax(teacher_logits / T, dim=-1)  # (..., V)
        ce = -(p_t * log_p_s).sum(dim=-1)  # (...)
    _check_finite(ce, {"student_logits": student_logits, "teacher_logits": teacher_logits})
    return reduce_positions(T**2 * ce, mask, reduction)


def _hard_ce_values(
    student_logits: torch.Tensor, labels: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position ``−log p_stu[label]`` ``(...)`` (0 where ignored) and the counted mask."""
    mask = labels != ignore_index  # (...)
    # any valid index where ignored; gather needs int64 (labels may be int16/int32)
    safe = torch.where(mask, labels, torch.zeros_like(labels)).long()
    if _exact(student_logits):
        log_p = _log_softmax(student_logits.to(_compute_dtype(student_logits)))  # (..., V)
    else:
        log_p = F.log_softmax(student_logits, dim=-1)
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
    _check_label_values(labels, student_logits.shape[-1], ignore_index)
    nll, mask = _hard_ce_values(student_logits, labels, ignore_index)
    _check_finite(nll, {"student_logits": student_logits})
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
    _check_label_values(labels, student_logits.shape[-1], ignore_index)
    nll, mask = _hard_ce_values(student_logits, labels, ignore_index)  # (...)
    exact = _exact(student_logits, teacher_logits)
    if exact:
        kl = _divergence(student_logits, teacher_logits, T, beta=0.0)  # (...)
    else:
        kl = _textbook_jsd(student_logits, teacher_logits, T, beta=0.0)
    _check_finite(nll + kl, {"student_logits": student_logits, "teacher_logits": teacher_logits})
    if not exact:  # the textbook path mixes the two reduced terms, as it always has
        hard = reduce_positions(nll, mask, reduction)
        return alpha_mix(hard, reduce_positions(T**2 * kl, mask, reduction), alpha)
    kl = T**2 * kl
    return reduce_positions(alpha_mix(nll, kl, alpha), mask, reduction)


def logit_mse_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Logit matching: per position, the mean over the V classes of ``(z_stu − z_tea)²``.

    Shapes and dtype as in :func:`kd_kl_loss`. Caruana's logit regression (Ba & Caruana 2014);
    the high-temperature limit of ``kd_kl_loss`` when logits have zero mean (Hinton et al.
    §2.1).
    """
    _check_pair(student_logits, teacher_logits)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    if _exact(student_logits, teacher_logits):
        dtype = _compute_dtype(student_logits, teacher_logits)
        diff = student_logits.to(dtype) - teacher_logits.to(dtype)  # (..., V)
    else:
        diff = student_logits - teacher_logits
    mse = diff.pow(2).mean(dim=-1)  # (...)
    _check_finite(mse, {"student_logits": student_logits, "teacher_logits": teacher_logits})
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

    ``beta=0``: forward KL ``KL(p_tea ‖ p_stu)``; ``beta=1``: reverse KL ``KL(p_stu ‖ p_tea)``;
    otherwise ``beta·KL(p_tea ‖ M) + (1−beta)·KL(p_stu ‖ M)`` with
    ``M = beta·p_tea + (1−beta)·p_stu``.
    No ``T²`` factor. The endpoints are defined as the KLs because the mixture form tends to
    ``beta · KL(p_tea ‖ p_stu)`` (→ 0) as ``beta → 0``. Bounded by the binary entropy of beta
    (``log 2`` at ``beta=0.5``). Shapes and dtype as in :func:`kd_kl_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    beta = check_unit_interval("beta", beta)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    if _exact(student_logits, teacher_logits):
        jsd = _divergence(student_logits, teacher_logits, T, beta)  # (...)
    else:
        jsd = _textbook_jsd(student_logits, teacher_logits, T, beta)
    _check_finite(jsd, {"student_logits": student_logits, "teacher_logits": teacher_logits})
    return reduce_positions(jsd, mask, reduction)


# ------------------------------------------------------------- chunked, from hidden states


_DIVERGENCES = ("kl", "soft_ce", "jsd")


def _chunk_terms(z, t, labels, T, alpha, divergence, beta, ignore_index):
    """One chunk of rows: per-row ``(ce, div)`` values and the α-mix's gradient w.r.t. the
    student logits ``z`` ``(C, V)`` (unscaled by any reduction), all in ``z``'s dtype."""
    nll, counted = _hard_ce_values(z, labels, ignore_index)  # (C,)
    p = torch.softmax(z, dim=-1)
    index = labels.clamp_min(0).long().unsqueeze(-1)  # (C, 1); ignored rows are zeroed below
    g_ce = _centred(p.scatter_add(-1, index, -torch.ones_like(p[:, :1])), p)  # p − onehot
    beta_ = 0.0 if divergence != "jsd" else beta
    z_s, z_t = z / T, t.to(z.dtype) / T
    div = _divergence_and_grads(z_s, z_t, beta_, grads=False)[0]
    # the gradient from the two softmaxes alone (no teacher gradient): cheaper than grads=True
    g_div = _divergence_grads(z, t.to(z.dtype), T, beta_, z.dtype, need_t=False)[0]
    if divergence == "jsd":
        g_div = g_div / T  # d/dz of JSD(z/T): no T² factor
    else:  # T² · KL, and soft CE = T² · (KL + H(p_tea)): the same gradient
        if divergence == "soft_ce":
            log_p_t = _log_softmax(z_t)
            div = div - (log_p_t.exp() * log_p_t).sum(dim=-1)
        div, g_div = T**2 * div, T * g_div
    g = (1.0 - alpha) * g_ce + alpha * g_div
    g = torch.where(counted[:, None], g, 0.0)
    return torch.where(counted, nll, 0.0), torch.where(counted, div, 0.0), g, counted


class _ChunkedDistillation(torch.autograd.Function):
    """The α-mix from hidden states, chunk by chunk; gradients made in the forward pass."""

    @staticmethod
    def forward(ctx, h, weight, teacher, labels, knobs):
        T, alpha, divergence, beta, ignore_index, scale, chunk, mean = knobs
        dtype = _compute_dtype(h, weight)
        w = weight.to(dtype)  # (V, D)
        grad_h = torch.zeros(h.shape, dtype=dtype, device=h.device)  # (N, D)
        grad_w = torch.zeros(w.shape, dtype=dtype, device=h.device)  # (V, D)
        sums = torch.zeros(2, dtype=dtype, device=h.device)  # ce, div
        count = (labels != ignore_index).sum()
        for a in range(0, h.shape[0], chunk):
            hc = h[a : a + chunk].to(dtype)  # (C, D)
            z = (hc @ w.T) * scale  # (C, V): the only logits that exist, one chunk's
            ce, div, g, _ = _chunk_terms(
                z, teacher(a, a + chunk), labels[a : a + chunk], T, alpha, divergence, beta,
                ignore_index,
            )
            sums += torch.stack([ce.sum(), div.sum()])
            grad_h[a : a + chunk] = (g @ w) * scale
            grad_w += (g.T @ hc) * scale
        norm = count.clamp_min(1).to(dtype) if mean else torch.ones((), dtype=dtype)
        ctx.save_for_backward(grad_h / norm, grad_w / norm)
        ctx.dtypes = (h.dtype, weight.dtype)
        parts = sums / norm
        return alpha_mix(parts[0], parts[1], alpha), parts.detach()

    @staticmethod
    def backward(ctx, grad_out, _grad_parts):
        grad_h, grad_w = ctx.saved_tensors
        return (
            (grad_h * grad_out).to(ctx.dtypes[0]),
            (grad_w * grad_out).to(ctx.dtypes[1]),
            None, None, None,
        )


def chunked_distillation_loss(
    student_hidden: torch.Tensor,
    output_weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    teacher_logits: torch.Tensor | None = None,
    teacher_hidden: torch.Tensor | None = None,
    teacher_weight: torch.Tensor | None = None,
    T: float = 1.0,
    alpha: float = 0.5,
    divergence: str = "kl",
    beta: float = 0.5,
    ignore_index: int = -100,
    logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
    reduction: str = "mean",
    chunk_size: int | None = None,
    return_parts: bool = False,
):
    """The α-mix ``(1 − alpha)·CE + alpha·D`` computed from the student's last hidden states,
    a chunk of positions at a time, never holding the full student logits or their gradient.

    Shapes: ``student_hidden`` ``(..., D)``, ``output_weight`` ``(V, D)`` (the student's
    ``lm_head``; student logits are ``logit_scale · h @ W.T``), ``labels`` ``(...)`` with
    ``ignore_index`` on padding (counted in neither term); the teacher as ``teacher_logits``
    ``(..., V)`` or as ``teacher_hidden`` ``(..., D_T)`` with ``teacher_weight`` ``(V, D_T)``
    (its logits made chunk by chunk too). ``D``: ``"kl"`` (``T²·KL(p_tea ‖ p_stu)``, as in
    :func:`distillation_loss`), ``"soft_ce"`` (``T²·H(p_tea, p_stu)``) or ``"jsd"``
    (``generalized_jsd_loss(beta)``, no ``T²``). ``reduction``: ``"mean"`` over counted
    positions or ``"sum"``. The teacher gets no gradient. With ``return_parts``, also the
    unweighted ``(ce, D)`` reduced the same way (detached). Liger-Kernel's chunked losses.
    """
    V, D = _check_chunked(
        student_hidden, output_weight, labels, teacher_logits, teacher_hidden, teacher_weight
    )
    T = check_temperature(T)
    alpha = check_unit_interval("alpha", alpha)
    beta = check_unit_interval("beta", beta)
    if divergence not in _DIVERGENCES:
        raise ValueError(f"divergence must be one of {_DIVERGENCES}, got {divergence!r}.")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum' here, got {reduction!r}.")
    h, y = student_hidden.reshape(-1, D), labels.reshape(-1)  # (N, D), (N,)
    _check_label_values(y, V, ignore_index)
    if teacher_logits is not None:
        t_all = teacher_logits.detach().reshape(-1, V)

        def teacher(a: int, b: int) -> torch.Tensor:
            return t_all[a:b]
    else:
        t_h = teacher_hidden.detach().reshape(-1, teacher_hidden.shape[-1])
        t_w = teacher_weight.detach()

        def teacher(a: int, b: int) -> torch.Tensor:
            return (t_h[a:b].to(_compute_dtype(t_h)) @ t_w.to(_compute_dtype(t_h)).T) * (
                teacher_logit_scale
            )

    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // V)
    knobs = (T, alpha, divergence, beta, ignore_index, logit_scale, chunk, reduction == "mean")
    loss, parts = _ChunkedDistillation.apply(h, output_weight, teacher, y, knobs)
    _check_finite(loss.reshape(1), {"student_hidden": h, "output_weight": output_weight})
    return (loss, (parts[0], parts[1])) if return_parts else loss


def _check_chunked(h, w, labels, t_logits, t_hidden, t_weight) -> tuple[int, int]:
    """Shapes of :func:`chunked_distillation_loss`'s inputs; returns ``(V, D)``."""
    for name, x in (("student_hidden", h), ("output_weight", w)):
        _check_logits(name, x)
    if w.dim() != 2 or w.shape[1] != h.shape[-1]:
        raise ValueError(
            f"output_weight must be (V, D) with D = student_hidden's last dimension "
            f"{h.shape[-1]}, got {tuple(w.shape)} (pass the lm_head's weight, not its transpose)."
        )
    V = w.shape[0]
    _check_labels(labels, h)
    if (t_logits is None) == (t_hidden is None or t_weight is None):
        raise ValueError(
            "give the teacher either as teacher_logits (..., V) or as teacher_hidden (..., D_T) "
            "with teacher_weight (V, D_T), not both and not neither."
        )
    if t_logits is not None:
        if tuple(t_logits.shape) != (*h.shape[:-1], V):
            raise ValueError(
                f"teacher_logits {tuple(t_logits.shape)} must be (*positions, V) = "
                f"{(*h.shape[:-1], V)}. {_VOCAB_HINT}"
            )
    elif t_weight.shape[0] != V or t_hidden.shape[:-1] != h.shape[:-1]:
        raise ValueError(
            f"teacher_weight {tuple(t_weight.shape)} must have the student's V = {V} rows and "
            f"teacher_hidden {tuple(t_hidden.shape)} the student's positions "
            f"{tuple(h.shape[:-1])}. {_VOCAB_HINT}"
        )
    return V, h.shape[-1]


def t5_logit_scale(model) -> float:
    """The factor T5 applies to the decoder's last hidden state before ``lm_head``:
    ``d_model ** -0.5`` with tied embeddings (the original T5), else 1 (T5 v1.1)."""
    config = model.config
    return config.d_model**-0.5 if getattr(config, "tie_word_embeddings", True) else 1.0


# --------------------------------------------------------------- sparse, from a top-k teacher cache


_TAILS = ("renormalise", "uniform")


def sparse_kd_loss(
    student_logits: torch.Tensor,
    topk_logits: torch.Tensor,
    topk_indices: torch.Tensor,
    teacher_lse: torch.Tensor | None = None,
    T: float = 1.0,
    tail: str = "renormalise",
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``T² · KL(p̃_tea ‖ p_stu)`` against a teacher stored as its ``k`` largest logits per position.

    Shapes: ``student_logits`` ``(..., V)``; ``topk_logits`` ``(..., k)`` (any float dtype,
    e.g. fp16 in a cache) and ``topk_indices`` ``(..., k)`` (integers); ``teacher_lse``
    ``(...)``: the teacher's full ``logsumexp(z / T)`` at this ``T``, needed by
    ``tail="uniform"``. The teacher's distribution ``p̃_tea`` keeps the top ``k`` entries and
    ``tail="renormalise"``: rescales them to sum to 1 (the tail is dropped), or
    ``"uniform"``: keeps their true probabilities and spreads the remaining mass evenly over
    the other ``V − k`` classes (DistillKit offers both). With ``k = V`` both equal
    :func:`kd_kl_loss`. The student side is exact (full softmax over ``V``).
    """
    _check_logits("student_logits", student_logits)
    T = check_temperature(T)
    _check_mask(mask, student_logits)
    check_reduction(reduction)
    if tail not in _TAILS:
        raise ValueError(f"tail must be one of {_TAILS}, got {tail!r}.")
    if tail == "uniform" and teacher_lse is None:
        raise ValueError("tail='uniform' needs teacher_lse (the full logsumexp at this T).")
    V, k = student_logits.shape[-1], topk_logits.shape[-1]
    positions = student_logits.shape[:-1]
    if topk_logits.shape != topk_indices.shape or topk_logits.shape[:-1] != positions or k > V:
        raise ValueError(
            f"topk_logits {tuple(topk_logits.shape)} and topk_indices "
            f"{tuple(topk_indices.shape)} must both be (*positions, k) with k <= V = {V} and "
            f"the student's positions {tuple(student_logits.shape[:-1])}."
        )
    dtype = _compute_dtype(student_logits)
    log_q = _log_softmax(_scaled(student_logits, T, dtype))  # (..., V)
    log_q_k = log_q.gather(-1, topk_indices.long())  # (..., k)
    z_k = _scaled(topk_logits, T, dtype)  # (..., k)
    if tail == "renormalise":
        log_p_k = z_k - torch.logsumexp(z_k, dim=-1, keepdim=True)
        kl = (log_p_k.exp() * (log_p_k - log_q_k)).sum(dim=-1)
    else:
        log_p_k = z_k - teacher_lse.to(dtype).unsqueeze(-1)
        kl = (log_p_k.exp() * (log_p_k - log_q_k)).sum(dim=-1) + _uniform_tail_kl(
            log_p_k, log_q, log_q_k, V
        )
    _check_finite(kl, {"student_logits": student_logits, "topk_logits": topk_logits})
    return reduce_positions(T**2 * kl, mask, reduction)


def _uniform_tail_kl(log_p_k, log_q, log_q_k, V: int) -> torch.Tensor:
    """``Σ_{j ∉ top-k} r/(V−k) · (log(r/(V−k)) − log q_j)`` with ``r`` the teacher's mass
    outside its top ``k``; 0 when ``k = V``."""
    k = log_p_k.shape[-1]
    if k == V:
        return torch.zeros(log_p_k.shape[:-1], dtype=log_p_k.dtype, device=log_p_k.device)
    rest = (-torch.expm1(torch.logsumexp(log_p_k, dim=-1))).clamp_min(0.0)  # r, (...)
    log_each = torch.log(rest) - math.log(V - k)
    sum_log_q_rest = log_q.sum(dim=-1) - log_q_k.sum(dim=-1)  # Σ over the tail of log q
    return torch.where(
        rest > 0, rest * log_each - (rest / (V - k)) * sum_log_q_rest, torch.zeros_like(rest)
    )
