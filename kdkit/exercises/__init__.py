"""Self-checks and worked solutions for the notebooks' "Your turn" exercises.

``kdkit.exercises.check("03.1", answer)`` checks a reader's answer and says what is wrong. The
worked solutions sit beside their checks, one module per notebook (``nb01``, ``nb02``, ...), out
of the reader's way: a lab can hand the notebooks out and keep this package for the answers.
The unit tests run every solution through its check and plant a wrong answer in each.
"""

import importlib
import pkgutil

from kdkit.exercises.core import REGISTRY, NotAttempted, call, check

for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("nb"):
        importlib.import_module(f"{__name__}.{_module.name}")  # registers its exercises

__all__ = ["REGISTRY", "NotAttempted", "call", "check"]
