"""pytest hooks for running the notebooks under nbval (`make nbval`).

- stderr is not compared: it carries progress bars and library warnings whose text varies.
- nbval waits only 5 s for a cell's output messages by default (nbval issue #231);
  cells that train a model need longer.
- The kernels nbval starts inherit this process's environment: the notebooks' CPU arithmetic is
  pinned here (tools/cpu_arithmetic.py), as it was when their outputs were stored.
"""

from __future__ import annotations

from tools.cpu_arithmetic import pin

pin()


def pytest_collectstart(collector):
    if str(getattr(collector, "path", "")).endswith(".ipynb"):
        collector.skip_compare += ("stderr",)


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = 120
