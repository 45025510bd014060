"""Small statistics for comparing training runs over seeds: means with t-based intervals.

With a handful of seeds the normal approximation (mean ± 1.96 · SE) is too narrow; the
Student-t interval uses the t quantile with ``n − 1`` degrees of freedom (4.30 for 3 seeds).
For two methods run on the same seeds, the interval of the *paired* differences removes the
seed-to-seed variation they share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["t_interval"]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of the Student-t confidence interval for the mean of ``values``.

    The interval is ``mean ± t_{(1+confidence)/2, n−1} · s / √n`` with ``s`` the sample
    standard deviation. Needs at least two values. For paired comparisons pass the
    per-seed differences.
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {x.size}.")
    if not np.isfinite(x).all():
        raise ValueError("values contain NaN or infinite entries.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    quantile = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df=x.size - 1))
    half_width = quantile * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean()), half_width


# --------------------------------------------------------- paired comparisons (notebook 04)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of per-seed differences ``a − b`` with its t-based confidence interval."""

    mean: float
    low: float
    high: float
    confidence: float
    differences: tuple[float, ...]  # one per seed, in seed order

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0: a measurable difference."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        pct = f"{100 * self.confidence:g}%"
        return f"{self.mean:+.2f} ({pct} CI [{self.low:+.2f}, {self.high:+.2f}], n={self.n})"


def paired_difference_ci(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> PairedDifference:
    """Mean of the paired differences ``a[i] − b[i]`` with a Student-t confidence interval.

    ``a`` and ``b`` are one number per seed for two methods run on the same seeds (same
    initialisation, same data order): ``mean ± t_{(1+confidence)/2, n−1} · s_d / √n`` with
    ``s_d`` the standard deviation of the differences. Needs at least two seeds.
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair up one value per seed, got {x.size} and {y.size}.")
    d = x - y
    mean, half_width = t_interval(d, confidence)
    return PairedDifference(
        mean, mean - half_width, mean + half_width, confidence, tuple(float(v) for v in d)
    )


def verdict(
    diff: PairedDifference, a: str, b: str, *, quantity: str = "test error", unit: str = "points"
) -> str:
    """A plain-words reading of ``diff`` (= a − b) for a quantity where lower is better."""
    pct = f"{100 * diff.confidence:g}%"
    interval = f"the {pct} CI [{diff.low:+.2f}, {diff.high:+.2f}]"
    if diff.high < 0:
        return f"{a} lowers {quantity} by {-diff.mean:.2f} {unit} vs {b}; {interval} excludes 0."
    if diff.low > 0:
        return f"{a} raises {quantity} by {diff.mean:.2f} {unit} vs {b}; {interval} excludes 0."
    return (
        f"no measurable difference between {a} and {b}: mean {diff.mean:+.2f} {unit}, "
        f"{interval} includes 0."
    )


__all__ += ["PairedDifference", "paired_difference_ci", "verdict"]
