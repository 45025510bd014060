"""kdkit: knowledge distillation, taught by running it.

Modules (one per concept): ``losses``, ``distributions``, ``features`` (hidden-state and
attention distillation), ``data``, ``models``, ``train``, ``seq2seq`` (T5 distillation),
``config`` (presets), ``metrics``, ``stats``, ``plotting``, ``widgets``, ``cli``.
Nothing is seeded or configured on import: call :func:`kdkit.set_seed` yourself.
"""

from kdkit import distributions, losses
from kdkit.seed import set_seed

__version__ = "0.1.0"

__all__ = ["distributions", "losses", "set_seed", "__version__"]
