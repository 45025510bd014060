"""The test suite's own set-up: no module changes process-wide state at import time, Hypothesis
is derandomised in CI, and the browser tests' screenshots stay out of the tracked figures/."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Calls that change the whole process: made at import time, they leak into every test module
# collected after this one. Use a fixture that restores the previous value (tests/conftest.py).
GLOBAL_SETTERS = {
    "matplotlib.use",
    "plt.switch_backend",
    "matplotlib.pyplot.switch_backend",
    "torch.set_num_threads",
    "torch.set_num_interop_threads",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _import_time_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls in the statements that run on import: the module body, outside functions and
    classes (``if`` and ``with`` blocks included)."""
    found = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            found.append((node.lineno, _dotted(node.func)))
        pending.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("module", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_module_changes_global_state_at_import(module):
    calls = _import_time_calls(ast.parse(module.read_text(), filename=str(module)))
    bad = [f"{module.name}:{line} {name}()" for line, name in calls if name in GLOBAL_SETTERS]
    assert not bad, f"move these into a fixture that restores the previous value: {bad}"


def test_tests_run_on_agg_with_one_torch_thread():
    import matplotlib
    import torch

    assert matplotlib.get_backend().lower() == "agg"  # set by tests/conftest.py's fixture
    assert torch.get_num_threads() == 1


def _loaded_profile(ci: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    code = (
        "import sys; sys.path.insert(0, 'tests'); import conftest; "
        "from hypothesis import settings; s = settings.default; "
        "print(s.derandomize, s.print_blob, s.deadline)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    return {"derandomize": out[0] == "True", "print_blob": out[1] == "True", "deadline": out[2]}


@pytest.mark.slow
def test_hypothesis_is_derandomised_when_ci_is_set():
    assert _loaded_profile("true") == {"derandomize": True, "print_blob": True, "deadline": "None"}
    assert _loaded_profile(None)["derandomize"] is False  # locally: fresh examples each run


def _make_figures():
    path = ROOT / "tools" / "make_figures.py"
    spec = importlib.util.spec_from_file_location("make_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browser_screenshots_go_to_an_ignored_folder_not_figures(monkeypatch):
    make_figures = _make_figures()
    monkeypatch.delenv("KDKIT_SCREENSHOT_DIR", raising=False)
    folder = make_figures.screenshot_dir()
    assert folder == ROOT / "build" / "screenshots"
    assert "build/" in (ROOT / ".gitignore").read_text().split()
    monkeypatch.setenv("KDKIT_SCREENSHOT_DIR", "/tmp/elsewhere")
    assert make_figures.screenshot_dir() == Path("/tmp/elsewhere")
    # the browser test saves its screenshots under screenshot_dir(), nowhere else
    source = (TESTS / "test_browser.py").read_text()
    saves = [c for c in ast.walk(ast.parse(source)) if isinstance(c, ast.Call)
             and _dotted(c.func).endswith(".screenshot")]
    assert saves, "test_browser.py takes no screenshot"
    for call in saves:
        paths = [ast.unparse(k.value) for k in call.keywords if k.arg == "path"]
        assert paths and all("figures" not in p and "ROOT" not in p for p in paths), paths
    assert "make_figures.screenshot_dir()" in source


def test_make_figures_copies_the_screenshots_it_finds(tmp_path):
    make_figures = _make_figures()
    shots, figures = tmp_path / "shots", tmp_path / "figures"
    shots.mkdir()
    figures.mkdir()
    before, after = make_figures.SCREENSHOTS
    assert (before, after) == ("temperature_explorer_before", "temperature_explorer_after")
    (figures / f"{after}.png").write_bytes(b"committed")
    (shots / f"{before}.png").write_bytes(b"new before")
    # only one screenshot there: it is copied, the other keeps its committed copy
    assert make_figures.copy_screenshots(shots, figures) == [before]
    assert (figures / f"{before}.png").read_bytes() == b"new before"
    assert (figures / f"{after}.png").read_bytes() == b"committed"
    (shots / f"{after}.png").write_bytes(b"new after")
    assert make_figures.copy_screenshots(shots, figures) == [before, after]
    assert (figures / f"{after}.png").read_bytes() == b"new after"
