"""environment.yml (conda route) mirrors pyproject.toml; conda itself is not run here. And the
core install (`pip install kdkit`) needs torch and numpy only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names where they differ from PyPI's
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].strip().lower()


def load():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return pyproject, env


def lab_requirements(pyproject) -> list[str]:
    """What the course's lab needs: the core dependencies and the course and t5 extras."""
    extras = pyproject["optional-dependencies"]
    return pyproject["dependencies"] + extras["course"] + extras["t5"]


def conda_specs(env) -> dict[str, str]:
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            specs[_name(dep)] = dep
    return specs


def test_channels_are_conda_forge_without_defaults():
    _, env = load()
    assert env["channels"][0] == "conda-forge"
    assert "nodefaults" in env["channels"]
    assert "defaults" not in env["channels"]


def test_every_dependency_is_in_the_environment():
    pyproject, env = load()
    specs = conda_specs(env)
    wanted = lab_requirements(pyproject) + pyproject["optional-dependencies"]["test"]
    wanted = [r for r in wanted if ";" not in r]  # marker-only backports (tomli on 3.10)
    missing = [r for r in wanted if CONDA_NAME.get(_name(r), _name(r)) not in specs]
    assert not missing, f"environment.yml lacks {missing}"


def test_version_ranges_agree():
    pyproject, env = load()
    specs = conda_specs(env)
    for req in lab_requirements(pyproject):
        name = _name(req)
        py_range = req[len(name):].strip()
        conda = specs[CONDA_NAME.get(name, name)]
        assert conda.replace(" ", "").endswith(py_range.replace(" ", "")), (req, conda)


def test_python_version_is_within_requires_python():
    pyproject, env = load()
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    version = Version(python.split("=")[-1])
    assert version in SpecifierSet(pyproject["requires-python"])


def test_package_itself_is_installed_editable():
    _, env = load()
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip


def test_core_dependencies_are_torch_and_numpy_only():
    pyproject, _ = load()
    assert sorted(_name(r) for r in pyproject["dependencies"]) == ["numpy", "torch"]


def test_the_all_extra_is_course_t5_and_test():
    pyproject, _ = load()
    extras = pyproject["optional-dependencies"]
    assert {"course", "t5", "test", "all"} <= set(extras)
    named = {e.strip() for r in extras["all"] for e in r.split("[")[1].split("]")[0].split(",")}
    assert all(_name(r) == "kdkit" for r in extras["all"]) and named == {"course", "t5", "test"}
    # the same pin wherever a package is named twice (tqdm is in course and t5)
    pins: dict[str, set[str]] = {}
    for req in lab_requirements(pyproject):
        pins.setdefault(_name(req), set()).add(req)
    assert all(len(p) == 1 for p in pins.values()), pins


# The modules pyproject's comment lists as core, and what only the extras install.
CORE_MODULES = [
    "kdkit", "kdkit.losses", "kdkit.distributions", "kdkit.features", "kdkit.models",
    "kdkit.config", "kdkit.schedules", "kdkit.seed", "kdkit.checkpoints", "kdkit.data",
    "kdkit.data.tickets", "kdkit.data.batching", "kdkit.cli",
]
EXTRA_PACKAGES = [
    "tqdm", "sklearn", "scipy", "matplotlib", "ipywidgets", "IPython", "transformers",
    "tokenizers", "datasets", "sacrebleu", "rouge_score", "huggingface_hub",
]


def test_core_modules_import_without_the_extras():
    # Imported in a fresh interpreter where every package of the extras is missing.
    code = f"""
import importlib, importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRA_PACKAGES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (an extra)", name=name)
sys.meta_path.insert(0, Missing())
for module in {CORE_MODULES!r}:
    importlib.import_module(module)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_make_bench_runs_and_prints_every_row():
    """benchmarks/bench.py in its quick form: the script `make bench` runs does not rot."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench.py"), "--quick", "--no-compile",
         "--reps", "1"],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout
    rows = ("machine", "(a) KD step", "(a) throughput", "(b) top-64 cached",
            "(c) extra peak memory", "(c) chunked / plain time", "(d) distillation_loss")
    for row in rows:
        assert row in out, out


@pytest.mark.slow
def test_the_trainer_vs_loop_benchmark_runs_and_prints_every_row():
    """benchmarks/trainer_vs_loop.py in its quick form (the GPU comparison's script)."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "trainer_vs_loop.py"), "--quick",
         "--steps", "2", "--warmup", "1"],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout
    for row in ("loop target tokens/s", "trainer target tokens/s", "trainer / loop tokens/s"):
        assert row in out, out
