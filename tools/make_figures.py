"""Refresh what README.md shows from the notebooks' stored outputs: figures and result tables.

- A code cell tagged ``figure:NAME`` contributes its first PNG output as ``figures/NAME.png``.
- A code cell tagged ``readme:NAME`` prints a Markdown table; its text replaces the block between
  ``<!-- begin readme:NAME -->`` and ``<!-- end readme:NAME -->`` in README.md.
- The temperature explorer's screenshots (:data:`SCREENSHOTS`), which ``make browser`` leaves in
  ``build/screenshots/`` (ignored by git; ``KDKIT_SCREENSHOT_DIR`` overrides it), are copied to
  ``figures/`` when present. Tests never write to ``figures/`` themselves.

So the README always shows exactly what the (CI-checked) notebooks show. ``make notebooks`` runs
this after re-executing the notebooks; ``tests/test_figures.py`` checks that both are current.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"
README = ROOT / "README.md"
# Taken by tests/test_browser.py (JupyterLab in Chromium), not stored in any notebook.
SCREENSHOTS = ("temperature_explorer_before", "temperature_explorer_after")


def screenshot_dir() -> Path:
    """Where the browser tests leave their screenshots: ``$KDKIT_SCREENSHOT_DIR`` if set, else
    ``build/screenshots/`` (ignored by git)."""
    return Path(os.environ.get("KDKIT_SCREENSHOT_DIR") or ROOT / "build" / "screenshots")


def copy_screenshots(source: Path | None = None, target: Path = FIGURES) -> list[str]:
    """Copy each of :data:`SCREENSHOTS` found in ``source`` into ``target``; the names copied.
    A missing screenshot keeps its committed copy (no Chromium here: nothing to refresh)."""
    source = screenshot_dir() if source is None else source
    copied = []
    for name in SCREENSHOTS:
        shot = source / f"{name}.png"
        if shot.is_file():
            shutil.copyfile(shot, target / f"{name}.png")
            copied.append(name)
    return copied


def _tagged_cells(prefix: str):
    """``(notebook, name, cell)`` for every code cell with a tag ``prefix:NAME``."""
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            for tag in cell.get("metadata", {}).get("tags", []):
                if tag.startswith(prefix + ":"):
                    yield notebook, tag.removeprefix(prefix + ":"), cell


def all_figures() -> dict[str, bytes]:
    """``{name: png bytes}`` for every cell tagged ``figure:NAME``."""
    figures: dict[str, bytes] = {}
    for notebook, name, cell in _tagged_cells("figure"):
        outputs = cell.get("outputs", [])
        pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
        if not pngs:
            raise SystemExit(f"{notebook.name}: figure:{name} has no PNG; run `make notebooks`")
        figures[name] = base64.b64decode(pngs[0])
    return figures


def all_tables() -> dict[str, str]:
    """``{name: printed text}`` for every cell tagged ``readme:NAME``."""
    tables: dict[str, str] = {}
    for notebook, name, cell in _tagged_cells("readme"):
        text = "".join(
            "".join(o["text"]) for o in cell.get("outputs", []) if o.get("name") == "stdout"
        )
        if not text.strip():
            raise SystemExit(f"{notebook.name}: readme:{name} printed nothing; `make notebooks`")
        tables[name] = text.strip() + "\n"
    return tables


def block_pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- begin readme:{re.escape(name)} -->\n)(.*?)(<!-- end readme:{re.escape(name)} -->)",
        re.DOTALL,
    )


def readme_with_tables(readme: str, tables: dict[str, str]) -> str:
    """``readme`` with each ``readme:NAME`` block replaced by its table."""
    for name, text in tables.items():
        pattern = block_pattern(name)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no block for readme:{name}")
        readme = pattern.sub(lambda m, t=text: m.group(1) + t + m.group(3), readme)
    return readme


def main() -> int:
    FIGURES.mkdir(exist_ok=True)
    for name, png in all_figures().items():
        (FIGURES / f"{name}.png").write_bytes(png)
        print(f"figures/{name}.png")
    README.write_text(readme_with_tables(README.read_text(), all_tables()))
    print("README.md result tables")
    copied = copy_screenshots()
    for name in copied:
        print(f"figures/{name}.png (from {screenshot_dir()})")
    if len(copied) < len(SCREENSHOTS):
        print(f"screenshots not in {screenshot_dir()}: run `make browser` first to refresh them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
