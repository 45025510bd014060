"""The notebooks' exercises: every worked solution passes its check, every planted wrong answer
fails it with a message, the placeholder is reported as not attempted, and each notebook asks
every exercise its module registers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from kdkit import exercises
from kdkit.exercises.core import REGISTRY

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KEYS = sorted(REGISTRY)


@pytest.mark.parametrize("key", KEYS)
def test_the_worked_solution_passes(key, capsys):
    ex = REGISTRY[key]
    context = ex.example_context()
    exercises.check(key, ex.solution(**context), **context)
    assert "correct." in capsys.readouterr().out


@pytest.mark.parametrize("key", KEYS)
def test_a_wrong_answer_fails_and_says_why(key):
    ex = REGISTRY[key]
    context = ex.example_context()
    with pytest.raises(AssertionError, match=rf"Exercise {re.escape(key)} .*: not yet\. \w+"):
        exercises.check(key, ex.wrong(**context), **context)


@pytest.mark.parametrize("key", KEYS)
def test_the_placeholder_is_not_attempted(key, capsys):
    ex = REGISTRY[key]
    context = ex.example_context()
    exercises.check(key, None, **context)
    out = capsys.readouterr().out
    assert "not attempted yet" in out and ex.solution.__name__ in out
    if callable(ex.solution(**context)):  # a function whose body is still `...`

        def placeholder(*args):
            ...

        exercises.check(key, placeholder, **context)
        assert "not attempted yet" in capsys.readouterr().out


def test_checks_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    for ex in REGISTRY.values():
        context = ex.example_context()
        exercises.check(ex.key, ex.solution(**context), **context)
    assert torch.equal(torch.get_rng_state(), state)


def test_an_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="01.1"):
        exercises.check("99.9", 1.0)


@pytest.mark.parametrize("prefix", sorted({k.split(".")[0] for k in KEYS}))
def test_each_notebook_asks_every_exercise_of_its_module(prefix):
    (path,) = NOTEBOOKS.glob(f"{prefix}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    asked = set(re.findall(r'exercises\.check\(\s*"(\d\d\.\d+)"', code))
    assert asked == {k for k in KEYS if k.startswith(prefix + ".")}
