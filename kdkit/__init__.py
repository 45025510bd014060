"""kdkit: knowledge distillation, taught by running it.

Modules, one per concept (ARCHITECTURE.md maps each to the notebook that explains it):
``losses``, ``distributions``, ``features``; ``data`` (``digits``, ``tickets``, ``text_tasks``,
``batching``, ``loading``); ``hub``; ``models``, ``t5``; ``train``, ``schedules``,
``checkpoints``; ``seq2seq``, ``pipeline``, ``jobs``; ``metrics``, ``stats``; ``config``,
``cli``; ``plotting``, ``widgets``. ``import kdkit`` loads only ``losses`` and
``distributions`` (torch and numpy).
Nothing is seeded or configured on import: call :func:`kdkit.set_seed` yourself.
"""

from kdkit import distributions, losses
from kdkit.seed import set_seed

__version__ = "0.1.0"

__all__ = ["distributions", "losses", "set_seed", "__version__"]
