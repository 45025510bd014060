"""Plot functions for the notebooks and figures/: each returns a matplotlib Figure.

Nothing here writes files or calls ``plt.show()``; the caller decides (notebooks show,
``tools/make_figures.py`` saves into figures/).
"""

from __future__ import annotations

import numpy as np
import torch


def _np(x) -> np.ndarray:
    """A tensor or array-like as a float NumPy array (detached, on CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)
