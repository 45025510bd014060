"""Re-execute notebooks in place and store their outputs: the only way outputs are made.

    python tools/run_notebooks.py                      # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/02_*.ipynb # some of them

Runs each notebook top to bottom in a fresh `python3` kernel (the current environment's),
with the notebook's folder as working directory, then removes what nbval must not compare
or git must not store: widget state and per-cell timing metadata. Prints each run's time,
which is how the notebooks' time budgets are checked. The kernels run with the pinned CPU
arithmetic of tools/cpu_arithmetic.py, as nbval's do.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from cpu_arithmetic import pin
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800  # per cell


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop widget state and timing metadata; pin the kernelspec nbval and labs expect."""
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    elapsed = time.perf_counter() - start
    clean(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    pin()  # before any kernel starts: they inherit it
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for path in paths:
        print(f"running {path.relative_to(ROOT)} ...", flush=True)
        print(f"  done in {run(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
