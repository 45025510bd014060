"""The machinery behind the notebooks' "Your turn" exercises: a registry of self-checks.

An exercise is a check, a worked solution and a planted wrong answer. The notebook calls
:func:`check` with the reader's answer; the unit tests call it with the solution (it must pass)
and with the wrong answer (it must fail), so no check can pass everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class NotAttempted(Exception):
    """The answer is still the placeholder (``None``, or a function whose body is ``...``)."""


@dataclass(frozen=True)
class Exercise:
    key: str  # "NN.k": notebook NN, exercise k
    title: str  # what the reader does, in a few words
    verify: Callable[..., str]  # (answer, **context) -> what was checked; AssertionError if wrong
    solution: Callable[..., Any]  # (**context) -> the worked answer
    wrong: Callable[..., Any]  # (**context) -> a plausible wrong answer the check must catch
    example_context: Callable[[], dict] = field(default=dict)  # small inputs for the tests


REGISTRY: dict[str, Exercise] = {}


def exercise(key: str, title: str, *, solution: Callable[..., Any], wrong: Callable[..., Any],
             example_context: Callable[[], dict] = dict):
    """Register the decorated ``verify(answer, **context) -> str`` as exercise ``key``."""

    def register(verify: Callable[..., str]) -> Callable[..., str]:
        if key in REGISTRY:
            raise ValueError(f"exercise {key!r} is registered twice.")
        REGISTRY[key] = Exercise(key, title, verify, solution, wrong, example_context)
        return verify

    return register


def attempted(value: Any) -> Any:
    """``value``, or :class:`NotAttempted` when it is the placeholder ``None``/``...``."""
    if value is None or value is Ellipsis:
        raise NotAttempted
    return value


def call(answer: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the reader's function; :class:`NotAttempted` if its body still returns nothing."""
    if not callable(answer):
        raise AssertionError(f"expected a function, got {type(answer).__name__}.")
    return attempted(answer(*args, **kwargs))


def check(key: str, answer: Any, **context: Any) -> None:
    """Check the reader's ``answer`` to exercise ``key``; print the verdict.

    Prints "correct" (and what was checked) or "not attempted yet" (the answer is still the
    placeholder); raises AssertionError that says what is wrong otherwise. ``context`` passes
    the notebook's own data (e.g. its teacher's logits) to the check.
    """
    if key not in REGISTRY:
        raise KeyError(f"no exercise {key!r}; the exercises are {sorted(REGISTRY)}.")
    ex = REGISTRY[key]
    try:
        verdict = ex.verify(attempted(answer), **context)
    except NotAttempted:
        where = f"{ex.solution.__module__}.{ex.solution.__name__}"
        print(f"Exercise {key} ({ex.title}): not attempted yet. Replace the placeholder and run "
              f"the cell again. The worked solution, when you want it: {where}.")
        return
    except AssertionError as err:
        raise AssertionError(f"Exercise {key} ({ex.title}): not yet. {err}") from None
    print(f"Exercise {key} ({ex.title}): correct. {verdict}")
