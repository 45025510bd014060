"""pytest hooks for running the notebooks under nbval (`make nbval`).

- stderr is not compared: it carries progress bars and library warnings whose text varies.
- nbval waits only 5 s for a cell's output messages by default (nbval issue #231);
  cells that train a model need longer.
"""

from __future__ import annotations


def pytest_collectstart(collector):
    if str(getattr(collector, "path", "")).endswith(".ipynb"):
        collector.skip_compare += ("stderr",)


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = 120
