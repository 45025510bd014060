"""Offline data for the course: nothing here downloads anything.

Digits: scikit-learn's 1,797 handwritten 8×8 digits ship inside the package (Part I, Part II).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["DigitsSplit", "load_digits_split", "jitter_images"]


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
