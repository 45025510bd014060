"""Explicit training loops for classifiers: train, distil, evaluate.

Each loop fits on one screen, returns a history dict, shows a ``tqdm.auto`` progress bar and
draws all randomness (shuffling, jitter, dropout) from torch's global RNG, so that
:func:`kdkit.set_seed` makes a run repeatable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from kdkit.data import jitter_images
from kdkit.losses import hard_cross_entropy, kd_kl_loss

__all__ = ["train_classifier", "distill_classifier", "predict_logits", "evaluate"]


def _check_data(X: torch.Tensor, y: torch.Tensor | None) -> None:
    if X.dim() != 2:
        raise ValueError(f"X must have shape (N, features), got {tuple(X.shape)}.")
    if y is not None and (y.dim() != 1 or y.shape[0] != X.shape[0]):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {tuple(y.shape)}.")


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
        order = torch.randperm(X.shape[0])
        Xe = jitter_images(X, jitter) if jitter else X
        total = 0.0
        for start in range(0, X.shape[0], batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(Xe[idx]), y[idx])
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
        order = torch.randperm(X.shape[0])
        Xe = jitter_images(X, jitter) if jitter else X
        total = 0.0
        for start in range(0, X.shape[0], batch_size):
            idx = order[start : start + batch_size]
            with torch.no_grad():
                teacher_logits = teacher(Xe[idx])  # (b, C)
            student_logits = student(Xe[idx])  # (b, C)
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
