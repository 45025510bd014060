"""Read back what kdkit.plotting drew, so figure tests can check the plotted data."""

from __future__ import annotations

import numpy as np


def seed_rows(ax) -> dict[str, dict]:
    """Per row of a seed comparison, top to bottom: the dots' x values, the mean, the interval
    ends (None without one), the mean's colour and the label printed above it."""
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = sorted(zip(ax.get_yticks(), labels, strict=True), reverse=True)
    rows = {name: {} for _, name in ticks}
    at = {int(round(float(y))): name for y, name in ticks}  # row y -> name

    def row(y) -> dict:
        return rows[at[int(round(float(y)))]]

    for line in ax.lines:
        if line.get_marker() == "o":
            row(line.get_ydata()[0])["dots"] = np.asarray(line.get_xdata(), dtype=float)
    for bar in ax.containers:
        mean_line, _, ranges = bar.lines
        r = row(mean_line.get_ydata()[0])
        r["mean"], r["color"] = float(mean_line.get_xdata()[0]), mean_line.get_color()
        r["interval"] = tuple(ranges[0].get_segments()[0][:, 0]) if ranges else None
    for text in ax.texts:
        row(text.get_position()[1])["label"] = text.get_text()
    return rows
