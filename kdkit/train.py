"""Explicit training loops for classifiers: train, distil, evaluate (Parts I–II).

Each loop fits on one screen, returns a history dict, shows a ``tqdm.auto`` progress bar and
draws all randomness (shuffling, jitter, dropout) from torch's global RNG, so that
:func:`kdkit.set_seed` makes a run repeatable.

Two kinds of "no label", named apart: :data:`NO_LABEL` marks a *transfer example* — an input
the student has no label for but still learns from through the teacher's soft targets (the
KD term counts it, the CE term does not) — while ``ignore_index`` in :mod:`kdkit.losses` marks
*padding*, which counts in neither term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from kdkit.config import SCHEDULES
from kdkit.data.digits import jitter_images
from kdkit.data.tickets import EncodedText
from kdkit.features import (
    HiddenStateLoss,
    check_layer_mapping,
    layer_mapping,
    mapped_attention_loss,
)
from kdkit.losses import (
    alpha_mix,
    check_temperature,
    check_unit_interval,
    hard_cross_entropy,
    kd_kl_loss,
)
from kdkit.models import TransformerClassifier
from kdkit.schedules import warmup_decay_scheduler

__all__ = [
    "NO_LABEL",
    "train_classifier",
    "distill_classifier",
    "predict_logits",
    "evaluate",
    "train_text_classifier",
    "distill_text_classifier",
    "predict_text_logits",
    "evaluate_text",
    "PrecomputedTeacher",
]

NO_LABEL = -100  # a transfer example: soft targets only (KD term yes, CE term no)


def _check_data(X: torch.Tensor, y: torch.Tensor | None) -> None:
    if X.dim() != 2:
        raise ValueError(f"X must have shape (N, features), got {tuple(X.shape)}.")
    if y is not None and (y.dim() != 1 or y.shape[0] != X.shape[0]):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {tuple(y.shape)}.")


def _epoch_batches(X: torch.Tensor, batch_size: int, jitter: int):
    """One epoch of mini-batches ``(row indices, inputs)``: a fresh shuffle, and jitter when
    ``jitter > 0``, both drawn from torch's global RNG when the epoch starts."""
    order = torch.randperm(X.shape[0])
    Xe = jitter_images(X, jitter) if jitter else X
    for start in range(0, X.shape[0], batch_size):
        idx = order[start : start + batch_size]
        yield idx, Xe[idx]


ValSet = tuple[torch.Tensor, torch.Tensor]  # (X_val (M, F), y_val (M,))


def _check_curve_options(val: ValSet | None, eval_every: int, lr_schedule: str) -> None:
    if val is not None:
        if not (isinstance(val, tuple) and len(val) == 2):
            raise ValueError("val must be a pair (X_val, y_val).")
        _check_data(*val)
    if eval_every < 1:
        raise ValueError(f"eval_every must be a number of epochs >= 1, got {eval_every}.")
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}.")


def _optimizer(
    params, N: int, *, lr: float, weight_decay: float, lr_schedule: str, num_epochs: int,
    batch_size: int,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR | None]:
    """AdamW, and the learning-rate schedule over all ``num_epochs · ⌈N / batch_size⌉`` steps
    (``None`` for ``"constant"``: the rate is never touched)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if lr_schedule == "constant":
        return opt, None
    total = num_epochs * math.ceil(N / batch_size)
    return opt, warmup_decay_scheduler(opt, warmup_steps=0, total_steps=total,
                                       schedule=lr_schedule)


def _error_and_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Error rate (0–1) and mean cross-entropy of ``model`` on ``(X, y)``; NaN for no rows."""
    if X.shape[0] == 0:
        return math.nan, math.nan
    logits = predict_logits(model, X)  # (N, C), eval mode, no gradient
    return (logits.argmax(-1) != y).float().mean().item(), F.cross_entropy(logits, y).item()


def _record_curves(
    history: dict[str, list[float]], model: nn.Module, step: int, train_set: ValSet,
    val: ValSet,
) -> None:
    """One learning-curve point at optimiser step ``step``: error and cross-entropy on the
    labelled training rows (clean inputs, not jittered) and on ``val``, in eval mode. Reads no
    random numbers and leaves the model's weights and the optimiser alone: training goes on
    exactly as without it."""
    history["step"].append(step)
    for split, (X, y) in (("train", train_set), ("val", val)):
        error, loss = _error_and_loss(model, X, y)
        history[f"{split}_error"].append(error)
        history[f"{split}_loss"].append(loss)


def _new_history(val: ValSet | None) -> dict[str, list[float]]:
    keys = ["loss"]
    if val is not None:
        keys += ["step", "train_error", "train_loss", "val_error", "val_loss"]
    return {key: [] for key in keys}


def _curve_due(epoch: int, num_epochs: int, eval_every: int) -> bool:
    """Record after every ``eval_every``-th epoch (1-based) and after the last one."""
    return epoch % eval_every == 0 or epoch == num_epochs


def train_classifier(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    jitter: int = 0,
    lr_schedule: str = "constant",
    val: ValSet | None = None,
    eval_every: int = 1,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train with cross-entropy on hard labels (AdamW). Shapes: X ``(N, F)``, y ``(N,)``.

    ``jitter``: shift flattened 8×8 images by up to this many pixels each epoch.
    ``lr_schedule``: ``"constant"``, or ``"linear"``/``"cosine"`` decay to 0 over the run
    (:func:`kdkit.schedules.warmup_decay_factor`, no warm-up).
    Returns ``{"loss": [mean training loss per epoch]}``. With ``val=(X_val, y_val)`` also
    learning curves (see :func:`distill_classifier`); recording them changes no weight.
    """
    _check_data(X, y)
    _check_curve_options(val, eval_every, lr_schedule)
    opt, sched = _optimizer(model.parameters(), X.shape[0], lr=lr, weight_decay=weight_decay,
                            lr_schedule=lr_schedule, num_epochs=num_epochs, batch_size=batch_size)
    history, step = _new_history(val), 0
    fit_set = (X[y != NO_LABEL], y[y != NO_LABEL])
    if val is not None:
        _record_curves(history, model, step, fit_set, val)
    for epoch in trange(1, num_epochs + 1, desc=desc, disable=not progress):
        model.train()
        total = 0.0
        for idx, xb in _epoch_batches(X, batch_size, jitter):
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            total += loss.item() * len(idx)
        history["loss"].append(total / X.shape[0])
        if val is not None and _curve_due(epoch, num_epochs, eval_every):
            _record_curves(history, model, step, fit_set, val)
    model.eval()
    return history


def distill_classifier(
    student: nn.Module,
    teacher: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    T: float = 4.0,
    alpha: float = 0.5,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    jitter: int = 0,
    lr_schedule: str = "constant",
    val: ValSet | None = None,
    eval_every: int = 1,
    progress: bool = True,
    desc: str = "distill",
) -> dict[str, list[float]]:
    """Train ``student`` on ``(1 − alpha)·CE(labels) + alpha·T²·KL(p_tea ‖ p_stu)``.

    Shapes: X ``(N, F)``, y ``(N,)`` or None. Labels equal to :data:`NO_LABEL` (or ``y=None``,
    which requires ``alpha=1``) mark transfer examples: only the teacher's soft targets train
    on them. Each term is a mean over its own rows: CE over the labelled rows of a batch, KL
    over all of them. The teacher runs in ``eval()`` under ``torch.no_grad()`` on the same
    (jittered) inputs as the student. ``lr_schedule`` as in :func:`train_classifier`.
    Returns ``{"loss": [...]}`` per epoch. With ``val=(X_val, y_val)``, learning curves too:
    at optimiser step 0 and after every ``eval_every``-th epoch (and the last), ``"step"``,
    ``"train_error"``/``"train_loss"`` (error rate 0–1 and cross-entropy on the *labelled*
    rows of ``X``, clean inputs, eval mode; NaN if none is labelled) and
    ``"val_error"``/``"val_loss"``. Recording them draws no random number and changes no
    weight: the student ends bitwise as it would without ``val``.
    """
    _check_data(X, y)
    T = check_temperature(T)
    alpha = check_unit_interval("alpha", alpha)
    _check_curve_options(val, eval_every, lr_schedule)
    if y is None:
        if alpha != 1.0:
            raise ValueError(f"y=None (no labels) needs alpha=1 (pure distillation), got {alpha}.")
        y = torch.full((X.shape[0],), NO_LABEL, dtype=torch.long)
    teacher.eval()
    opt, sched = _optimizer(student.parameters(), X.shape[0], lr=lr, weight_decay=weight_decay,
                            lr_schedule=lr_schedule, num_epochs=num_epochs, batch_size=batch_size)
    history, step = _new_history(val), 0
    fit_set = (X[y != NO_LABEL], y[y != NO_LABEL])  # what "train error" is measured on
    if val is not None:
        _record_curves(history, student, step, fit_set, val)
    for epoch in trange(1, num_epochs + 1, desc=desc, disable=not progress):
        student.train()
        total = 0.0
        for idx, xb in _epoch_batches(X, batch_size, jitter):
            with torch.no_grad():
                teacher_logits = teacher(xb)  # (b, C)
            student_logits = student(xb)  # (b, C)
            # Not losses.distillation_loss: its ignore_index is padding, masked out of the KD
            # term too, but NO_LABEL rows are the transfer set and keep their KD term.
            hard = hard_cross_entropy(student_logits, y[idx], ignore_index=NO_LABEL)  # labelled
            soft = kd_kl_loss(student_logits, teacher_logits, T=T)  # mean over all rows
            loss = alpha_mix(hard, soft, alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            total += loss.item() * len(idx)
        history["loss"].append(total / X.shape[0])
        if val is not None and _curve_due(epoch, num_epochs, eval_every):
            _record_curves(history, student, step, fit_set, val)
    student.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` in eval mode: ``(N, F) -> (N, C)``."""
    model.eval()
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)])


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy and mean cross-entropy on ``(X, y)``."""
    _check_data(X, y)
    logits = predict_logits(model, X)
    return {
        "accuracy": (logits.argmax(-1) == y).float().mean().item(),
        "loss": F.cross_entropy(logits, y).item(),
    }


# --------------------------------------------------------- Transformers on text (notebook 05)


def _text_batches(data: EncodedText, batch_size: int, shuffle: bool):
    """Mini-batches ``(input_ids, attention_mask, labels)``, cut to the batch's longest text."""
    order = torch.randperm(len(data)) if shuffle else torch.arange(len(data))
    for start in range(0, len(data), batch_size):
        idx = order[start : start + batch_size]
        mask = data.attention_mask[idx]  # (b, L)
        L = max(int(mask.sum(1).max()), 1)  # padding is on the right: drop all-padding columns
        yield data.input_ids[idx, :L], mask[:, :L], data.labels[idx]


@torch.no_grad()
def predict_text_logits(model: nn.Module, data: EncodedText, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode: ``(N, C)`` for the ``N`` texts of ``data``."""
    model.eval()
    return torch.cat([model(ids, mask) for ids, mask, _ in _text_batches(data, batch_size, False)])


def evaluate_text(model: nn.Module, data: EncodedText) -> dict[str, float]:
    """Accuracy and mean cross-entropy of a text classifier on ``data``."""
    logits = predict_text_logits(model, data)
    return {
        "accuracy": (logits.argmax(-1) == data.labels).float().mean().item(),
        "loss": F.cross_entropy(logits, data.labels).item(),
    }


def _check_max_grad_norm(max_grad_norm: float | None) -> float | None:
    if max_grad_norm is not None and not (isinstance(max_grad_norm, (int, float))
                                          and 0 < max_grad_norm < math.inf):
        raise ValueError(
            f"max_grad_norm must be a positive, finite number (or None: no clipping), got "
            f"{max_grad_norm!r}."
        )
    return max_grad_norm


def _optimiser_step(
    opt: torch.optim.Optimizer, params: list[nn.Parameter], loss: torch.Tensor,
    max_grad_norm: float | None,
) -> float:
    """Backward pass, gradient clipping when ``max_grad_norm`` is set, optimiser step.

    Clipping rescales all gradients together, ``g ← g · min(1, c / ‖g‖)`` with ``‖g‖`` the
    L2 norm over every parameter (``torch.nn.utils.clip_grad_norm_``; Pascanu et al. 2013).
    Returns ``‖g‖`` before clipping. Reading the norm changes nothing: without clipping the
    step is bitwise the one without this function's bookkeeping.
    """
    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if max_grad_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, max_grad_norm, norm)
    opt.step()
    return norm.item()


def _record_validation(history: dict[str, list[float]], model: nn.Module,
                       val: EncodedText | None) -> None:
    """Append ``val_accuracy`` and ``val_loss`` (no RNG drawn, so training is unchanged)."""
    if val is not None:
        result = evaluate_text(model, val)
        history["val_accuracy"].append(result["accuracy"])
        history["val_loss"].append(result["loss"])


_TEXT_KEYS = ("loss", "grad_norm", "val_accuracy", "val_loss")  # train_text_classifier's history


def train_text_classifier(
    model: nn.Module,
    train: EncodedText,
    *,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    max_grad_norm: float | None = None,
    val: EncodedText | None = None,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a text classifier with cross-entropy (AdamW, learning rate decaying linearly to 0).

    ``max_grad_norm``: clip the gradients' total L2 norm to this value before each step (None:
    no clipping). Returns per epoch ``"loss"`` (mean training loss) and ``"grad_norm"`` (the
    largest gradient norm before clipping among the epoch's steps), plus ``"val_accuracy"`` and
    ``"val_loss"`` after each epoch when ``val`` is given (evaluation draws no random numbers:
    a run with ``val`` trains exactly as one without).
    """
    max_grad_norm = _check_max_grad_norm(max_grad_norm)
    params = list(model.parameters())
    opt, sched = _optimizer(params, len(train), lr=lr, weight_decay=weight_decay,
                            lr_schedule="linear", num_epochs=num_epochs, batch_size=batch_size)
    history: dict[str, list[float]] = {key: [] for key in _TEXT_KEYS}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        model.train()
        total, largest = 0.0, 0.0
        for ids, mask, labels in _text_batches(train, batch_size, shuffle=True):
            loss = F.cross_entropy(model(ids, mask), labels)
            largest = max(largest, _optimiser_step(opt, params, loss, max_grad_norm))
            sched.step()
            total += loss.item() * len(labels)
        history["loss"].append(total / len(train))
        history["grad_norm"].append(largest)
        _record_validation(history, model, val)
    model.eval()
    return history


@dataclass
class _TextKDTerms:
    """The loss terms of :func:`distill_text_classifier` and their weights."""

    T: float
    alpha: float
    hidden_weight: float
    attention_weight: float
    hidden_loss: HiddenStateLoss | None
    attention_mapping: Sequence[tuple[int, int]] | None
    attention_kind: str

    def check(self, num_student_layers: int, num_teacher_layers: int) -> None:
        """Clear errors for bad weights or mappings; fills in the default attention mapping."""
        if self.hidden_weight < 0 or self.attention_weight < 0:
            raise ValueError(
                f"loss weights must be >= 0, got hidden_weight={self.hidden_weight}, "
                f"attention_weight={self.attention_weight}."
            )
        if self.hidden_weight > 0 and self.hidden_loss is None:
            raise ValueError(
                "hidden_weight > 0 needs hidden_loss=HiddenStateLoss(mapping, student_dim, "
                "teacher_dim): it holds the layer mapping and the learned projections."
            )
        sizes = (num_student_layers, num_teacher_layers)
        if self.hidden_loss is not None:
            check_layer_mapping(self.hidden_loss.mapping, *sizes)
        mapping = self.attention_mapping
        if mapping is None:
            mapping = layer_mapping(*sizes)
        self.attention_mapping = check_layer_mapping(mapping, *sizes)

    def parts(self, student: TransformerClassifier, teacher: TransformerClassifier,
              ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> dict:
        """Each term, unweighted: ``ce``, ``kd``, ``hidden``, ``attention`` (scalars)."""
        out = student.encode(ids, mask)  # logits (b, C), hidden/attention per block
        zero = out.logits.new_zeros(())
        # CE over the labelled rows; NO_LABEL rows are a transfer set: the teacher's terms only
        parts = {"ce": hard_cross_entropy(out.logits, labels, ignore_index=NO_LABEL), "kd": zero}
        parts["hidden"] = parts["attention"] = zero
        use_hidden, use_attention = self.hidden_weight > 0, self.attention_weight > 0
        if not (self.alpha > 0 or use_hidden or use_attention):
            return parts  # plain cross-entropy: the teacher is not run
        with torch.no_grad():
            ref = teacher.encode(ids, mask)
        if self.alpha > 0:
            parts["kd"] = kd_kl_loss(out.logits, ref.logits, T=self.T)
        if use_hidden:
            parts["hidden"] = self.hidden_loss(out.hidden_states, ref.hidden_states, mask)
        if use_attention:
            parts["attention"] = mapped_attention_loss(
                out.attentions, ref.attentions, self.attention_mapping, mask, self.attention_kind
            )
        return parts

    def total(self, parts: dict) -> torch.Tensor:
        """``alpha_mix(CE, KD) + hidden_weight·hidden + attention_weight·attention``."""
        return (
            alpha_mix(parts["ce"], parts["kd"], self.alpha)
            + self.hidden_weight * parts["hidden"]
            + self.attention_weight * parts["attention"]
        )


def distill_text_classifier(
    student: TransformerClassifier,
    teacher: TransformerClassifier,
    train: EncodedText,
    *,
    T: float = 2.0,
    alpha: float = 0.5,
    hidden_weight: float = 0.0,
    attention_weight: float = 0.0,
    hidden_loss: HiddenStateLoss | None = None,
    attention_mapping: Sequence[tuple[int, int]] | None = None,
    attention_kind: str = "kl",
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    max_grad_norm: float | None = None,
    val: EncodedText | None = None,
    progress: bool = True,
    desc: str = "distill",
) -> dict[str, list[float]]:
    """Train ``student`` on a weighted sum of response, hidden-state and attention losses:

    ``(1 − alpha)·CE + alpha·T²·KL(p_tea ‖ p_stu) + hidden_weight·hidden_loss
    + attention_weight·mapped_attention_loss``.

    ``alpha=0`` with both weights 0 is plain cross-entropy training (the teacher is not run).
    Labels equal to :data:`NO_LABEL` mark transfer examples: CE is a mean over a batch's
    labelled rows, the teacher's terms over all rows (as :func:`distill_classifier`).
    ``hidden_loss`` (a :class:`kdkit.features.HiddenStateLoss`, needed when
    ``hidden_weight > 0``) holds the layer mapping and the projections, trained with the
    student. ``attention_mapping`` defaults to :func:`kdkit.features.layer_mapping`.
    ``max_grad_norm`` clips as in :func:`train_text_classifier` (student and projections
    together). Returns per-epoch means of ``"loss"``, ``"ce"``, ``"kd"``, ``"hidden"``,
    ``"attention"`` (each unweighted), the epoch's largest ``"grad_norm"`` before clipping,
    plus ``"val_accuracy"`` and ``"val_loss"`` when ``val`` is given.
    """
    terms = _TextKDTerms(
        check_temperature(T), check_unit_interval("alpha", alpha), hidden_weight,
        attention_weight, hidden_loss, attention_mapping, attention_kind,
    )
    terms.check(len(student.blocks), len(teacher.blocks))
    max_grad_norm = _check_max_grad_norm(max_grad_norm)
    params = list(student.parameters())
    if hidden_weight > 0:
        params += list(hidden_loss.parameters())
    opt, sched = _optimizer(params, len(train), lr=lr, weight_decay=weight_decay,
                            lr_schedule="linear", num_epochs=num_epochs, batch_size=batch_size)
    teacher.eval()
    keys = ("loss", "ce", "kd", "hidden", "attention")
    history: dict[str, list[float]] = {key: [] for key in (*keys, *_TEXT_KEYS[1:])}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        student.train()
        sums, largest = dict.fromkeys(keys, 0.0), 0.0
        for ids, mask, labels in _text_batches(train, batch_size, shuffle=True):
            parts = terms.parts(student, teacher, ids, mask, labels)
            loss = terms.total(parts)
            largest = max(largest, _optimiser_step(opt, params, loss, max_grad_norm))
            sched.step()
            for key, value in (("loss", loss), *parts.items()):
                sums[key] += value.item() * len(labels)
        for key in keys:
            history[key].append(sums[key] / len(train))
        history["grad_norm"].append(largest)
        _record_validation(history, student, val)
    student.eval()
    return history


# --------------------------------------------------------- offline distillation (notebook 04)


class PrecomputedTeacher(nn.Module):
    """A frozen teacher's logits on a fixed set of inputs, computed once (offline distillation).

    :func:`distill_classifier` runs its teacher on every batch of every epoch. When the teacher
    is frozen and the inputs are not jittered, each row's answer never changes, so this module
    computes ``teacher(X)`` once (in eval mode) and ``forward`` looks each input row up among
    the rows of ``X`` (exact match) and returns its stored logits. Shapes: ``(B, F) -> (B, C)``.
    An input that is not a row of ``X`` (a jittered image, a test image) raises ``ValueError``.
    """

    def __init__(self, teacher: nn.Module, X: torch.Tensor) -> None:
        super().__init__()
        _check_data(X, None)
        # Fixed integer weights from a private generator: the global RNG stays untouched.
        generator = torch.Generator().manual_seed(0)
        weights = torch.randint(1, 2**20, (X.shape[1],), generator=generator)  # (F,)
        self.register_buffer("_weights", weights)
        self.register_buffer("inputs", X.detach().clone())
        self.register_buffer("logits", predict_logits(teacher, X))  # (N, C)
        keys, order = self._keys(self.inputs).sort()
        self.register_buffer("_sorted_keys", keys)
        self.register_buffer("_order", order)

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        # An exact hash of each row: integer arithmetic on the float32 bit patterns, so the same
        # row gives the same key whatever the batch (float sums could round differently).
        bits = x.detach().float().contiguous().view(torch.int32).long()  # (B, F)
        return (bits * self._weights).sum(-1)  # (B,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.searchsorted(self._sorted_keys, self._keys(x))
        rows = self._order[pos.clamp(max=self._order.numel() - 1)]  # (B,)
        if x.shape[1:] != self.inputs.shape[1:] or not torch.equal(self.inputs[rows], x):
            raise ValueError(
                "PrecomputedTeacher got inputs it has no logits for (jittered or new images?): "
                "use the teacher itself for those."
            )
        return self.logits[rows]
