"""Reproducibility: one explicit call near the top of every notebook and script."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally fix torch's CPU thread count.

    On CPU, the same seed and the same thread count give bitwise-identical results; a
    different thread count can change the last digits of a loss, so notebooks fix both.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}.")
        torch.set_num_threads(threads)
