"""environment.yml (conda route) mirrors pyproject.toml; conda itself is not run here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
    wanted = pyproject["dependencies"] + pyproject["optional-dependencies"]["test"]
    wanted = [r for r in wanted if ";" not in r]  # marker-only backports (tomli on 3.10)
    missing = [r for r in wanted if CONDA_NAME.get(_name(r), _name(r)) not in specs]
    assert not missing, f"environment.yml lacks {missing}"


def test_version_ranges_agree():
    pyproject, env = load()
    specs = conda_specs(env)
    for req in pyproject["dependencies"]:
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
