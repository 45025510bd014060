"""The house rules of kdkit/ (ARCHITECTURE.md), checked on the source: what may import what,
no private names across modules, functions that fit a screen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdkit"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _kdkit_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from kdkit... import name`` and ``import kdkit...``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kdkit"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("kdkit")]
    return found


def test_the_package_has_the_modules_the_architecture_names():
    names = {_module_name(p) for p in MODULES}
    assert {"kdkit.losses", "kdkit.data.digits", "kdkit.hub", "kdkit.t5", "kdkit.pipeline",
            "kdkit.jobs", "kdkit.checkpoints", "kdkit.schedules"} <= names
    assert "kdkit.data" in names and not (PACKAGE / "data.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_no_module_imports_a_private_name_of_another(path):
    private = [f"{m}.{n}" for m, n in _kdkit_imports(path) if n.startswith("_")]
    assert not private, f"{_module_name(path)} imports private names: {private}"


@pytest.mark.parametrize(
    ("module", "allowed"),
    [("losses", set()), ("config", {"kdkit.losses"}), ("distributions", {"kdkit.losses"})],
)
def test_base_modules_import_little_of_kdkit(module, allowed):
    imported = {m for m, _ in _kdkit_imports(PACKAGE / f"{module}.py")}
    assert imported <= allowed, f"kdkit.{module} imports {imported - allowed}"


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_functions_fit_a_screen(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_module_name(path)}: split these up: {long}"


def test_the_losses_import_neither_transformers_nor_matplotlib():
    code = (
        "import sys, kdkit.losses\n"
        "heavy = [m for m in ('transformers', 'matplotlib', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import kdkit.losses pulled in {out.stdout.strip()}"
