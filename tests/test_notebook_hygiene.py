"""Stored notebooks are what `make notebooks` writes: nbval compares against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


def test_course_has_part_one():
    names = [p.stem for p in NOTEBOOKS]
    for stem in ("01_soft_vs_hard_labels", "02_temperature", "03_loss_derivations"):
        assert stem in names


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def nb(request):
    return json.loads(request.param.read_text())


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_execution_counts_are_1_to_n(nb):
    counts = [c["execution_count"] for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), "re-run `make notebooks`"


def test_every_code_cell_ran(nb):
    """Every code cell was executed, in order, in one kernel session (Restart & Run All): each
    has an execution count, they run 1..N top to bottom, and every stored output comes from
    its cell's own execution (not left over from an earlier run of a different cell)."""
    expected = 1
    for cell in code_cells(nb):
        source = "".join(cell["source"])
        assert source.strip(), "empty code cell"
        count = cell.get("execution_count")
        assert isinstance(count, int), f"never executed (re-run `make notebooks`): {source[:200]}"
        assert count == expected, f"ran out of order ({count}, expected {expected}): {source[:200]}"
        expected += 1
        for out in cell["outputs"]:
            if "execution_count" in out:  # execute_result outputs carry the count that made them
                assert out["execution_count"] == count, f"stale output: {source[:200]}"


def test_no_error_outputs_unless_tagged(nb):
    for cell in code_cells(nb):
        tags = cell.get("metadata", {}).get("tags", [])
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if "raises-exception" in tags:
            assert errors, "a cell tagged raises-exception must show its error"
        else:
            assert not errors, "".join(cell["source"])[:200]


def test_no_widget_state_or_timing_metadata(nb):
    assert "widgets" not in nb["metadata"]
    for cell in nb["cells"]:
        assert "execution" not in cell.get("metadata", {})
        assert "ExecuteTime" not in cell.get("metadata", {})


def test_kernelspec_is_python3(nb):
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_first_cell_sets_inline_backend_and_seed(nb):
    first = "".join(code_cells(nb)[0]["source"])
    assert first.startswith("%matplotlib inline")
    source = "\n".join("".join(c["source"]) for c in code_cells(nb))
    assert "set_seed(" in source
    assert "torch.set_num_threads(" in source or "threads=" in source


def test_plot_cells_show_an_image(nb):
    for cell in code_cells(nb):
        if "plt.show()" in "".join(cell["source"]):
            assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), (
                "a plot cell stores no image: " + "".join(cell["source"])[:200]
            )


def test_no_stderr_warnings_stored(nb):
    for cell in code_cells(nb):
        for out in cell["outputs"]:
            if out.get("name") == "stderr":
                text = "".join(out["text"])
                assert "Warning" not in text, text[:300]
