"""Small statistics for comparing training runs over seeds: means with t-based intervals.

With a handful of seeds the normal approximation (mean ± 1.96 · SE) is too narrow; the
Student-t interval uses the t quantile with ``n − 1`` degrees of freedom (4.30 for 3 seeds).
For two methods run on the same seeds, the interval of the *paired* differences removes the
seed-to-seed variation they share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
