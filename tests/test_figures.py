"""figures/ holds what the notebooks show, and the README shows figures that exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_figures", ROOT / "tools" / "make_figures.py")
make_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_figures)


def test_figures_are_current():
    figures = make_figures.all_figures()
    assert figures, "no notebook cell is tagged figure:NAME"
    for name, png in figures.items():
        path = ROOT / "figures" / f"{name}.png"
        assert path.exists(), f"{path.name} is missing: run `make figures`"
        assert path.read_bytes() == png, f"{path.name} is stale: run `make figures`"


def test_readme_tables_are_current():
    tables = make_figures.all_tables()
    readme = (ROOT / "README.md").read_text()
    assert make_figures.readme_with_tables(readme, tables) == readme, (
        "README result tables differ from the notebooks' outputs: run `make figures`"
    )


def test_readme_images_exist():
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images, "the README shows no figure"
    for image in images:
        assert (ROOT / image).exists(), image
