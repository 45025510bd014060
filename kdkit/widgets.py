"""Interactive explorers: thin ipywidgets layers over kdkit's pure functions.

An explorer returns a dict of its parts, so a test (or a curious reader) can move a widget from
Python and look at what changed. Every number it shows comes from :mod:`kdkit.distributions`
and every figure it draws is also a plain call in :mod:`kdkit.plotting` (notebook 02).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from kdkit import distributions
from kdkit.losses import check_temperature
from kdkit.plotting import (
    ArrayLike,
    class_labels,
    logit_vector,
    plot_softened_distribution,
    update_softened_distribution,
)

__all__ = ["temperature_readout", "temperature_explorer"]


def _logit_vectors(logits_choices: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Each choice as a float tensor ``(V,)``; all choices must share V."""
    if not isinstance(logits_choices, Mapping) or len(logits_choices) == 0:
        raise ValueError(
            "logits_choices is empty: give a dict {name: logits of shape (V,)} with at least "
            "one entry."
        )
    vectors = {
        str(name): logit_vector(logits, f"logits_choices[{name!r}]")
        for name, logits in logits_choices.items()
    }
    sizes = {name: z.shape[0] for name, z in vectors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"all logit vectors must have the same number of classes, got {sizes}.")
    return vectors


def temperature_readout(
    logits: ArrayLike, T: float, class_names: Sequence[str] | None = None
) -> str:
    """One line of HTML about ``p = softmax(logits / T)`` for a logit vector ``(V,)``.

    Shows T, the entropy in nats and as an effective number of classes ``e^H`` (at most V),
    the mass outside the top class and the largest wrong-class ratio ``p_j / p_top``.
    """
    T = check_temperature(T)
    (z,) = _logit_vectors({"logits": logits}).values()
    V = z.shape[0]
    names = class_labels(V, class_names)
    p = distributions.softened(z, T)  # (V,)
    top = int(z.argmax())
    H = float(distributions.entropy(p))
    ratios = distributions.wrong_class_ratios(p, top).nan_to_num(nan=-1.0)  # (V,)
    runner_up = int(ratios.argmax())
    top_name, runner_name = html.escape(names[top]), html.escape(names[runner_up])
    parts = [
        f"<b>T = {T:.2f}</b>",
        f"entropy <b>{H:.3f}</b> nats (at most log {V} = {math.log(V):.3f}), i.e. "
        f"<b>{float(distributions.effective_classes(p)):.2f}</b> effective classes of {V}",
        f"mass outside the top class '{top_name}': "
        f"<b>{float(distributions.mass_outside_top(p, top)):.3f}</b>",
        f"largest wrong-class ratio p('{runner_name}') / p('{top_name}') = "
        f"<b>{float(ratios[runner_up]):.3g}</b>",
    ]
    return " &nbsp;|&nbsp; ".join(parts)


def _png_output(fig: Figure) -> dict[str, Any]:
    """``fig`` as one ``display_data`` output message (PNG, with a text fallback)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": repr(fig)},
        "metadata": {},
    }


def _temperature_slider(
    T: float, T_min: float, T_max: float, continuous_update: bool
) -> widgets.FloatLogSlider:
    """A slider over T in ``[T_min, T_max]`` on a log2 scale, starting at ``T``."""
    return widgets.FloatLogSlider(
        value=T,
        base=2,
        min=math.log2(T_min),
        max=math.log2(T_max),
        step=0.125,  # T changes by a factor 2**(1/8) per step
        description="T",
        readout_format=".2f",
        continuous_update=continuous_update,
        layout=widgets.Layout(width="420px"),
    )


def _frozen(fig: Figure) -> Figure:
    """``fig`` closed to pyplot and laid out once, its axes fixed where that layout put them.

    The explorer shows the figure through an ``Output`` only: closing it keeps pyplot from
    showing it again at the end of the cell. After the first (constrained) layout, the axes'
    positions stay: only heights and texts change, and redrawing then takes half the time.
    """
    plt.close(fig)
    fig.draw_without_rendering()
    positions = [ax.get_position() for ax in fig.axes]
    fig.set_layout_engine("none")
    for ax, position in zip(fig.axes, positions, strict=True):
        ax.set_position(position)
    return fig


def temperature_explorer(
    logits_choices: Mapping[str, Any],
    class_names: Sequence[str] | None = None,
    T: float = 1.0,
    *,
    T_min: float = 0.25,
    T_max: float = 32.0,
    continuous_update: bool = True,
) -> dict[str, Any]:
    """A live view of ``softmax(z / T)``: a temperature slider and a choice of logit vectors.

    ``logits_choices`` maps a name to logits ``(V,)`` (all with the same V). The view is
    :func:`kdkit.plotting.plot_softened_distribution` (probabilities and wrong-class ratios
    ``p_j / p_top``) with a readout from :func:`temperature_readout` above it. Returns the
    parts: ``ui`` (display this), ``slider`` (``FloatLogSlider`` over T in [T_min, T_max]),
    ``choice`` (``Dropdown``), ``readout`` (``HTML``), ``output`` (``Output`` holding the
    rendered figure), ``figure`` (the one ``Figure``, redrawn in place) and ``update`` (redraws
    for the widgets' current values; moving a widget calls it). In the page, the container has
    the CSS class ``kdkit-explorer`` and the readout ``kdkit-readout``.
    """
    T = check_temperature(T)
    T_min, T_max = check_temperature(T_min, "T_min"), check_temperature(T_max, "T_max")
    if not T_min <= T <= T_max:
        raise ValueError(
            f"T={T} lies outside the slider's range [T_min, T_max] = [{T_min}, {T_max}]."
        )
    vectors = _logit_vectors(logits_choices)
    first = next(iter(vectors))
    names = class_labels(vectors[first].shape[0], class_names)

    slider = _temperature_slider(T, T_min, T_max, continuous_update)
    choice = widgets.Dropdown(
        options=list(vectors),
        value=first,
        description="logits",
        layout=widgets.Layout(width="auto"),
    )
    readout = widgets.HTML()
    output = widgets.Output()
    fig = _frozen(plot_softened_distribution(vectors[first], T, names, title=first))

    def update(change: Any = None) -> None:
        """Redraw the figure and the readout for the current choice and T."""
        z = vectors[choice.value]
        T_now = float(slider.value)
        update_softened_distribution(fig, z, T_now, title=choice.value)
        readout.value = temperature_readout(z, T_now, names)
        # Replacing the Output's outputs swaps the image in one message (no flicker), and
        # works the same with or without a kernel, which is how the tests drive it.
        output.outputs = (_png_output(fig),)

    slider.observe(update, names="value")
    choice.observe(update, names="value")
    update()
    ui = widgets.VBox([widgets.HBox([choice, slider]), readout, output])
    # CSS classes for browser tests and custom styles (tests/test_browser.py finds them)
    ui.add_class("kdkit-explorer")
    readout.add_class("kdkit-readout")
    return {
        "ui": ui,
        "slider": slider,
        "choice": choice,
        "readout": readout,
        "output": output,
        "figure": fig,
        "update": update,
    }
