"""The temperature explorer (kdkit.widgets) and the temperature plots (kdkit.plotting),
driven from Python without a kernel: move a widget, then look at the figure and the readout."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from kdkit import distributions, plotting, widgets  # noqa: E402

# A "2" that looks a bit like a 3 and a 7 (notebook 02's hand-typed example).
HAND = torch.tensor([-1.0, 0.5, 9.0, 5.0, -2.0, 0.0, -1.5, 3.5, 1.0, -0.5])
# A different vector with a different top class ("7"), to check that the dropdown switches.
OTHER = torch.tensor([0.0, 1.0, 2.0, 0.5, -1.0, 0.0, 0.0, 6.0, 1.5, 2.5])
NAMES = [str(d) for d in range(10)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def parts():
    return widgets.temperature_explorer({"hand": HAND, "other": OTHER}, NAMES, T=1.0)


def bar_heights(ax) -> np.ndarray:
    return np.array([rect.get_height() for rect in ax.containers[0]])


def shown_png(parts) -> str:
    (output,) = parts["output"].outputs
    return output["data"]["image/png"]


def expected_probs(z, T) -> np.ndarray:
    return distributions.softened(z, T).double().numpy()


# ----------------------------------------------------------------------------- explorer


def test_explorer_parts_and_initial_view(parts):
    assert set(parts) >= {"ui", "slider", "choice", "readout", "output", "figure", "update"}
    assert parts["slider"].value == pytest.approx(1.0)
    assert parts["choice"].value == "hand"
    assert list(parts["choice"].options) == ["hand", "other"]
    np.testing.assert_allclose(bar_heights(parts["figure"].axes[0]), expected_probs(HAND, 1.0))
    assert shown_png(parts)  # the figure is rendered into the Output from the start
    assert "kdkit-explorer" in parts["ui"]._dom_classes  # what the browser test looks for
    assert "kdkit-readout" in parts["readout"]._dom_classes
    # shown through the Output only: pyplot must not display it a second time
    assert parts["figure"].number not in plt.get_fignums()


def test_moving_the_slider_redraws_bars_readout_and_image(parts):
    fig = parts["figure"]
    before_heights = bar_heights(fig.axes[0])
    before_readout = parts["readout"].value
    before_png = shown_png(parts)

    parts["slider"].value = 4.0

    after = bar_heights(fig.axes[0])
    np.testing.assert_allclose(after, expected_probs(HAND, 4.0))
    assert not np.allclose(after, before_heights)
    readout = parts["readout"].value
    assert readout != before_readout
    assert "T = 4.00" in readout
    H = float(distributions.entropy(distributions.softened(HAND, 4.0)))
    assert f"{H:.3f}" in readout
    assert shown_png(parts) != before_png
    assert "T = 4.00" in fig.get_suptitle()


def test_ratio_panel_shows_wrong_class_ratios(parts):
    parts["slider"].value = 2.0
    ratios = distributions.wrong_class_ratios(distributions.softened(HAND, 2.0), 2).numpy()
    ratios[2] = 1.0  # the top class is drawn as its own reference bar
    np.testing.assert_allclose(bar_heights(parts["figure"].axes[1]), ratios, rtol=1e-6)
    # p_i / p_j = exp((z_i - z_j) / T)
    np.testing.assert_allclose(ratios[3], math.exp((5.0 - 9.0) / 2.0), rtol=1e-6)


def test_changing_the_dropdown_switches_logits(parts):
    parts["slider"].value = 2.0
    before_readout = parts["readout"].value
    parts["choice"].value = "other"
    np.testing.assert_allclose(bar_heights(parts["figure"].axes[0]), expected_probs(OTHER, 2.0))
    readout = parts["readout"].value
    assert readout != before_readout
    assert "top class '7'" in readout
    assert parts["figure"].get_suptitle().startswith("other")


def test_update_redraws_for_the_current_widget_values(parts):
    parts["choice"].value = "other"
    parts["slider"].value = 8.0
    parts["figure"].axes[0].containers[0][0].set_height(0.5)  # disturb the drawing
    parts["update"]()
    np.testing.assert_allclose(bar_heights(parts["figure"].axes[0]), expected_probs(OTHER, 8.0))


def test_readout_numbers():
    T = 3.0
    p = distributions.softened(HAND, T)
    text = widgets.temperature_readout(HAND, T, NAMES)
    assert f"{float(distributions.entropy(p)):.3f}" in text
    assert f"<b>{float(distributions.effective_classes(p)):.2f}</b> effective classes of 10" in text
    assert f"{float(distributions.mass_outside_top(p)):.3f}" in text
    assert f"log 10 = {math.log(10):.3f}" in text
    # the largest wrong-class ratio is the runner-up class "3": exp((5 - 9) / T)
    assert f"p('3') / p('2') = <b>{math.exp(-4.0 / T):.3g}</b>" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"T": 0.0}, "T .temperature. must be a finite number > 0"),
        ({"T": -1.0}, "T .temperature. must be a finite number > 0"),
        ({"T": float("nan")}, "T .temperature. must be a finite number > 0"),
        ({"T": 64.0}, "outside the slider's range"),
        ({"T_min": 0.0}, "T_min .temperature. must be a finite number > 0"),
        ({"class_names": NAMES[:9]}, "class_names has 9 entries but the logits have V=10"),
    ],
)
def test_explorer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.temperature_explorer({"hand": HAND}, **kwargs)


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({}, "logits_choices is empty"),
        ({"batch": torch.zeros(2, 10)}, r"logits_choices\['batch'\] must be one logit vector"),
        ({"one": torch.zeros(1)}, "V >= 2"),
        ({"bad": torch.tensor([0.0, float("inf")])}, "NaN or infinite"),
        ({"a": HAND, "b": torch.zeros(5)}, "same number of classes"),
    ],
)
def test_explorer_rejects_bad_logits(choices, message):
    with pytest.raises(ValueError, match=message):
        widgets.temperature_explorer(choices)


# ----------------------------------------------------------------------------- plots


def expected_ratios(z, T) -> np.ndarray:
    """``p_j / p_top`` of ``softmax(z / T)``, 1 at the top class (its own reference bar)."""
    p = distributions.softened(z, T)
    ratios = distributions.wrong_class_ratios(p, int(z.argmax())).double().numpy()
    ratios[int(z.argmax())] = 1.0
    return ratios


def bar_colors(ax) -> list[str]:
    """``"top"`` for an orange (C1) bar, ``"rest"`` for a blue (C0) one."""
    top, rest = to_rgba("C1"), to_rgba("C0")
    named = {top: "top", rest: "rest"}
    return [named.get(rect.get_facecolor(), "?") for rect in ax.containers[0]]


def test_softened_distribution_figure_and_update():
    fig = plotting.plot_softened_distribution(HAND, 2.0, NAMES, title="hand")
    assert len(fig.axes) == 2
    ax_p, ax_r = fig.axes
    np.testing.assert_allclose(bar_heights(ax_p), expected_probs(HAND, 2.0))
    np.testing.assert_allclose(bar_heights(ax_r), expected_ratios(HAND, 2.0), rtol=1e-6)
    assert bar_colors(ax_p) == ["top" if i == 2 else "rest" for i in range(10)]
    assert [t.get_text() for t in ax_p.texts][:3] == [
        f"{p:.2f}" if p >= 0.005 else "" for p in expected_probs(HAND, 2.0)[:3]
    ]
    assert [t.get_text() for t in ax_p.get_xticklabels()] == NAMES
    H = float(distributions.entropy(distributions.softened(HAND, 2.0)))
    assert fig.get_suptitle().startswith(f"hand  |  T = 2.00:  entropy {H:.2f} nats")
    assert ax_r.get_yscale() == "log"
    plotting.update_softened_distribution(fig, OTHER, 0.5)
    np.testing.assert_allclose(bar_heights(ax_p), expected_probs(OTHER, 0.5))
    np.testing.assert_allclose(bar_heights(ax_r), expected_ratios(OTHER, 0.5), rtol=1e-6)
    assert bar_colors(ax_r) == ["top" if i == 7 else "rest" for i in range(10)]
    single = plotting.plot_softened_distribution(HAND, 1.0, ratios=False)
    assert len(single.axes) == 1
    with pytest.raises(ValueError, match="the figure shows 10 classes but the logits have 5"):
        plotting.update_softened_distribution(fig, torch.zeros(5), 1.0)


def test_temperature_grid_has_one_axes_per_temperature():
    temperatures = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    fig = plotting.plot_temperature_grid(HAND, temperatures, NAMES, ncols=4)
    assert len(fig.axes) == len(temperatures)
    sweep = distributions.temperature_sweep(HAND, temperatures)
    for k, (ax, T) in enumerate(zip(fig.axes, temperatures, strict=True)):
        np.testing.assert_allclose(bar_heights(ax), expected_probs(HAND, T), rtol=1e-6)
        assert ax.get_title() == f"T = {T:g}"
        assert bar_colors(ax) == ["top" if i == 2 else "rest" for i in range(10)]
        (summary,) = ax.texts
        H, m = float(sweep["entropy"][k]), float(sweep["mass_outside_top"][k])
        assert summary.get_text() == f"H = {H:.2f} nats\n$1 - p_{{top}}$ = {m:.2f}"


def test_temperature_sweep_plot_matches_distributions():
    temperatures = [0.5, 1.0, 2.0, 4.0]
    fig = plotting.plot_temperature_sweep(HAND, temperatures, NAMES)
    assert len([ax for ax in fig.axes if ax.lines]) == 3
    sweep = distributions.temperature_sweep(HAND, temperatures)
    entropy_line, mass_line = fig.axes[0].lines[0], fig.axes[1].lines[0]
    np.testing.assert_allclose(entropy_line.get_xdata(), temperatures)
    np.testing.assert_allclose(entropy_line.get_ydata(), sweep["entropy"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(mass_line.get_ydata(), sweep["mass_outside_top"].numpy(), rtol=1e-6)
    # one line per wrong class in the ratio panel (plus the dashed line at 1)
    ratio_lines = {line.get_label(): line for line in fig.axes[2].lines}
    ratio_lines = {name: line for name, line in ratio_lines.items() if name in NAMES}
    assert list(ratio_lines) == [name for name in NAMES if name != "2"]
    ratios = distributions.wrong_class_ratios(sweep["probs"], 2).double().numpy()  # (K, V)
    for j, name in enumerate(NAMES):
        if name != "2":
            np.testing.assert_allclose(ratio_lines[name].get_ydata(), ratios[:, j], rtol=1e-6)
    assert "'2'" in fig.axes[1].get_title()  # the top class


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plotting.plot_softened_distribution(HAND, 0.0), "must be a finite number > 0"),
        (lambda: plotting.plot_temperature_grid(HAND, [1.0, -2.0]), "must be a finite number > 0"),
        (lambda: plotting.plot_temperature_grid(HAND, []), "temperatures is empty"),
        (lambda: plotting.plot_temperature_sweep(HAND, []), "temperatures is empty"),
        (
            lambda: plotting.plot_temperature_grid(HAND, [1.0], NAMES[:3]),
            "class_names has 3 entries but the logits have V=10",
        ),
        (lambda: plotting.plot_softened_distribution(torch.zeros(2, 3)), "one logit vector"),
    ],
)
def test_plots_reject_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
