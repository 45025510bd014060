"""Handwritten digits (scikit-learn's 1,797 8×8 images, shipped inside the package): the data
of Parts I–II (notebooks 01, 02, 04), with the helpers Hinton's experiments need — jitter, a
validation split, a class left out, a labelled fraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = [
    "DigitsSplit",
    "load_digits_split",
    "jitter_images",
    "validation_split",
    "drop_class",
    "labelled_subset",
]


@dataclass
class DigitsSplit:
    """Digits as float tensors in [0, 1]: images flattened to 64 pixels, labels 0–9."""

    X_train: torch.Tensor  # (N_train, 64) float32
    y_train: torch.Tensor  # (N_train,) long
    X_test: torch.Tensor  # (N_test, 64) float32
    y_test: torch.Tensor  # (N_test,) long

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]


def load_digits_split(test_size: float = 0.4, seed: int = 0) -> DigitsSplit:
    """scikit-learn's digits, split stratified by class (same split for the same seed)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}.")
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    tensors = (torch.from_numpy(a) for a in (X_tr, y_tr, X_te, y_te))
    return DigitsSplit(*tensors)


def jitter_images(X: torch.Tensor, max_shift: int = 1, side: int = 8) -> torch.Tensor:
    """Shift each flattened ``side×side`` image by up to ``max_shift`` pixels (zero fill).

    Shapes: ``(N, side*side) -> (N, side*side)``. Uses torch's global RNG, so it is
    reproducible under :func:`kdkit.set_seed`. Hinton et al. (2015) jitter MNIST by ±2 pixels.
    """
    if max_shift <= 0:
        return X
    n = X.shape[0]
    images = X.reshape(n, side, side)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # (N, side+2m, side+2m)
    dy = torch.randint(0, 2 * max_shift + 1, (n,))
    dx = torch.randint(0, 2 * max_shift + 1, (n,))
    rows = (dy[:, None] + torch.arange(side)[None, :])[:, :, None]  # (N, side, 1)
    cols = (dx[:, None] + torch.arange(side)[None, :])[:, None, :]  # (N, 1, side)
    out = padded[torch.arange(n)[:, None, None], rows, cols]  # (N, side, side)
    return out.reshape(n, side * side)


def validation_split(
    X: torch.Tensor, y: torch.Tensor, fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Carve a stratified validation split out of training data: ``(X_fit, y_fit, X_val, y_val)``.

    Choose hyper-parameters (temperature, α, a class bias) on the validation part and report
    on the test set once. Shapes: X ``(N, F)``, y ``(N,)``. Same split for the same seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    fit, val = train_test_split(
        np.arange(X.shape[0]), test_size=fraction, random_state=seed, stratify=y.numpy()
    )
    fit, val = torch.from_numpy(fit), torch.from_numpy(val)
    return X[fit], y[fit], X[val], y[val]


def drop_class(X: torch.Tensor, y: torch.Tensor, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every example except those of class ``cls``: ``(X[y != cls], y[y != cls])``.

    Hinton et al. (2015, §3) distil an MNIST student on a transfer set without a single 3.
    """
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    keep = y != cls
    if keep.all():
        raise ValueError(f"no example has label {cls}: nothing to drop.")
    return X[keep], y[keep]


def labelled_subset(y: torch.Tensor, fraction: float) -> torch.Tensor:
    """A random, class-stratified boolean mask ``(N,)`` that keeps ``fraction`` of the labels.

    Each class keeps ``round(fraction · n_class)`` labels, at least one. Draws from torch's
    global RNG, so :func:`kdkit.set_seed` makes it repeatable. Use ``torch.where(mask, y,
    -100)`` for a transfer set whose other rows the student sees without labels.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    mask = torch.zeros(y.shape[0], dtype=torch.bool)
    for cls in torch.unique(y).tolist():
        rows = torch.nonzero(y == cls).flatten()
        k = max(1, round(fraction * rows.numel()))
        mask[rows[torch.randperm(rows.numel())[:k]]] = True
    return mask
