"""Write the figures that README.md shows into figures/, taken from the notebooks' stored outputs.

A code cell tagged ``figure:NAME`` contributes its first PNG output as ``figures/NAME.png``, so
the README always shows exactly what the (CI-checked) notebooks show. ``make notebooks`` runs
this after re-executing the notebooks; ``tests/test_figures.py`` checks that figures/ is current.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"


def tagged_figures(notebook: Path) -> dict[str, bytes]:
    """``{name: png bytes}`` for every cell tagged ``figure:NAME`` in ``notebook``."""
    nb = json.loads(notebook.read_text())
    found: dict[str, bytes] = {}
    for cell in nb["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if not tag.startswith("figure:"):
                continue
            outputs = cell.get("outputs", [])
            pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
            if not pngs:
                raise SystemExit(
                    f"{notebook.name}: cell tagged {tag} has no PNG output; run `make notebooks`"
                )
            found[tag.removeprefix("figure:")] = base64.b64decode(pngs[0])
    return found


def all_figures() -> dict[str, bytes]:
    figures: dict[str, bytes] = {}
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        figures.update(tagged_figures(notebook))
    return figures


def main() -> int:
    FIGURES.mkdir(exist_ok=True)
    for name, png in all_figures().items():
        (FIGURES / f"{name}.png").write_bytes(png)
        print(f"figures/{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
