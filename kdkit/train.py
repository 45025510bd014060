"""Explicit training loops for classifiers: train, distil, evaluate.

Each loop fits on one screen, returns a history dict, shows a ``tqdm.auto`` progress bar and
draws all randomness (shuffling, jitter, dropout) from torch's global RNG, so that
:func:`kdkit.set_seed` makes a run repeatable.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from kdkit.data import EncodedText, jitter_images
from kdkit.features import (
    HiddenStateLoss,
    check_layer_mapping,
    layer_mapping,
    mapped_attention_loss,
)
from kdkit.losses import hard_cross_entropy, kd_kl_loss
from kdkit.models import TransformerClassifier

__all__ = ["train_classifier", "distill_classifier", "predict_logits", "evaluate"]


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
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train with cross-entropy on hard labels (Adam). Shapes: X ``(N, F)``, y ``(N,)``.

    ``jitter``: shift flattened 8×8 images by up to this many pixels each epoch.
    Returns ``{"loss": [mean training loss per epoch]}``.
    """
    _check_data(X, y)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"loss": []}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        model.train()
        total = 0.0
        for idx, xb in _epoch_batches(X, batch_size, jitter):
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / X.shape[0])
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
    progress: bool = True,
    desc: str = "distill",
) -> dict[str, list[float]]:
    """Train ``student`` on ``(1 − alpha)·CE(labels) + alpha·T²·KL(teacher ‖ student)``.

    Shapes: X ``(N, F)``, y ``(N,)`` or None. Labels equal to -100 (or ``y=None``, which
    requires ``alpha=1``) mark transfer examples without a label: only the teacher's soft
    targets train on them. The teacher runs in ``eval()`` under ``torch.no_grad()`` on the
    same (jittered) inputs as the student. Returns ``{"loss": [...]}`` per epoch.
    """
    _check_data(X, y)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (soft-loss weight) must be in [0, 1], got {alpha}.")
    if y is None:
        if alpha != 1.0:
            raise ValueError(f"y=None (no labels) needs alpha=1 (pure distillation), got {alpha}.")
        y = torch.full((X.shape[0],), -100, dtype=torch.long)
    teacher.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"loss": []}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        student.train()
        total = 0.0
        for idx, xb in _epoch_batches(X, batch_size, jitter):
            with torch.no_grad():
                teacher_logits = teacher(xb)  # (b, C)
            student_logits = student(xb)  # (b, C)
            # Not losses.distillation_loss: that masks unlabelled (-100) positions out of the
            # KD term too (right for padding tokens), but here they are the transfer set.
            hard = hard_cross_entropy(student_logits, y[idx])  # mean over labelled rows
            soft = kd_kl_loss(student_logits, teacher_logits, T=T)  # mean over all rows
            loss = (1.0 - alpha) * hard + alpha * soft
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / X.shape[0])
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


def _linear_decay(
    opt: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate falling linearly from ``lr`` to 0 over ``total_steps`` optimiser steps."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total_steps))


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


def train_text_classifier(
    model: nn.Module,
    train: EncodedText,
    *,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    val: EncodedText | None = None,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a text classifier with cross-entropy (AdamW). Returns ``{"loss": [...]}`` per
    epoch, plus ``"val_accuracy"`` when ``val`` is given."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = _linear_decay(opt, num_epochs * math.ceil(len(train) / batch_size))
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": []}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        model.train()
        total = 0.0
        for ids, mask, labels in _text_batches(train, batch_size, shuffle=True):
            loss = F.cross_entropy(model(ids, mask), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(labels)
        history["loss"].append(total / len(train))
        if val is not None:
            history["val_accuracy"].append(evaluate_text(model, val)["accuracy"])
    model.eval()
    return history


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
    val: EncodedText | None = None,
    progress: bool = True,
    desc: str = "distill",
) -> dict[str, list[float]]:
    """Train ``student`` on a weighted sum of response, hidden-state and attention losses:

    ``(1 − alpha)·CE + alpha·T²·KL(p_T ‖ p_S) + hidden_weight·hidden_loss
    + attention_weight·mapped_attention_loss``.

    ``alpha=0`` with both weights 0 is plain cross-entropy training (the teacher is not run).
    ``hidden_loss`` (a :class:`kdkit.features.HiddenStateLoss`, needed when
    ``hidden_weight > 0``) holds the layer mapping and the projections, trained with the
    student. ``attention_mapping`` defaults to :func:`kdkit.features.layer_mapping`. Returns
    per-epoch means of ``"loss"``, ``"ce"``, ``"kd"``, ``"hidden"``, ``"attention"`` (each
    unweighted), plus ``"val_accuracy"`` when ``val`` is given.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (soft-loss weight) must be in [0, 1], got {alpha}.")
    if hidden_weight < 0 or attention_weight < 0:
        raise ValueError(
            f"loss weights must be >= 0, got hidden_weight={hidden_weight}, "
            f"attention_weight={attention_weight}."
        )
    if hidden_weight > 0 and hidden_loss is None:
        raise ValueError(
            "hidden_weight > 0 needs hidden_loss=HiddenStateLoss(mapping, student_dim, "
            "teacher_dim): it holds the layer mapping and the learned projections."
        )
    num_s, num_t = len(student.blocks), len(teacher.blocks)
    if hidden_loss is not None:
        check_layer_mapping(hidden_loss.mapping, num_s, num_t)
    if attention_mapping is None:
        attention_mapping = layer_mapping(num_s, num_t)
    attention_mapping = check_layer_mapping(attention_mapping, num_s, num_t)
    use_hidden, use_attention = hidden_weight > 0, attention_weight > 0
    use_teacher = alpha > 0 or use_hidden or use_attention
    params = list(student.parameters())
    if use_hidden:
        params += list(hidden_loss.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = _linear_decay(opt, num_epochs * math.ceil(len(train) / batch_size))
    teacher.eval()
    keys = ("loss", "ce", "kd", "hidden", "attention")
    history: dict[str, list[float]] = {key: [] for key in (*keys, "val_accuracy")}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        student.train()
        sums = dict.fromkeys(keys, 0.0)
        for ids, mask, labels in _text_batches(train, batch_size, shuffle=True):
            out = student.encode(ids, mask)  # logits (b, C), hidden/attention per block
            zero = out.logits.new_zeros(())
            parts = {"ce": F.cross_entropy(out.logits, labels), "kd": zero}
            parts["hidden"] = parts["attention"] = zero
            if use_teacher:
                with torch.no_grad():
                    ref = teacher.encode(ids, mask)
                if alpha > 0:
                    parts["kd"] = kd_kl_loss(out.logits, ref.logits, T=T)
                if use_hidden:
                    parts["hidden"] = hidden_loss(out.hidden_states, ref.hidden_states, mask)
                if use_attention:
                    parts["attention"] = mapped_attention_loss(
                        out.attentions, ref.attentions, attention_mapping, mask, attention_kind
                    )
            loss = (
                (1.0 - alpha) * parts["ce"]
                + alpha * parts["kd"]
                + hidden_weight * parts["hidden"]
                + attention_weight * parts["attention"]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for key, value in (("loss", loss), *parts.items()):
                sums[key] += value.item() * len(labels)
        for key in keys:
            history[key].append(sums[key] / len(train))
        if val is not None:
            history["val_accuracy"].append(evaluate_text(student, val)["accuracy"])
    student.eval()
    return history


__all__ += [  # notebook 05
    "train_text_classifier",
    "distill_text_classifier",
    "predict_text_logits",
    "evaluate_text",
]


# --------------------------------------------------------- schedules and checkpoints (Part III)


def warmup_decay_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up from 0 over
    ``warmup_steps``, then ``"linear"`` or ``"cosine"`` decay to 0 at ``total_steps``, or
    ``"constant"``. Warm-up then linear decay is BERT's and T5 fine-tuning's usual schedule."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, progress)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be 'linear', 'cosine' or 'constant', got {schedule!r}.")


def warmup_decay_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, schedule: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`warmup_decay_factor`; call ``step()`` after each optimiser
    step. Its ``state_dict`` holds the step count, so a checkpoint restores it exactly."""
    warmup_decay_factor(0, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)

    def factor(step: int) -> float:
        return warmup_decay_factor(
            step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rng_state() -> dict:
    """Every random number generator a training run draws from: Python's, NumPy's, torch's
    CPU generator and each CUDA device's. Restore with :func:`set_rng_state`."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save(state, path)``, atomically: write a temporary file in the same directory,
    then ``os.replace`` it onto ``path``. A crash mid-write leaves the previous checkpoint (or
    none) and no partial file: ``os.replace`` is atomic on POSIX and Windows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files: full unpickling,
    since RNG states are NumPy objects; never load checkpoints from untrusted sources)."""
    return torch.load(Path(path), map_location=map_location, weights_only=False)


__all__ += ["warmup_decay_factor", "warmup_decay_scheduler", "rng_state", "set_rng_state"]
__all__ += ["save_checkpoint", "load_checkpoint"]


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


__all__ += ["PrecomputedTeacher"]  # notebook 04
