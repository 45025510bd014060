"""Plot functions for the notebooks and figures/: each returns a matplotlib Figure.

Nothing here writes files or calls ``plt.show()``; the caller decides (notebooks show,
``tools/make_figures.py`` saves into figures/).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from kdkit import distributions


def _np(x) -> np.ndarray:
    """A tensor or array-like as a float NumPy array (detached, on CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


# --------------------------------------------------------- temperature (notebook 02)

_TOP_COLOR = "C1"  # the top (argmax) class: no temperature changes which class it is
_REST_COLOR = "C0"
_DEFAULT_TEMPERATURES = tuple(float(2.0**e) for e in np.linspace(-2, 5, 57))  # 0.25 .. 32


def _logit_vector(logits) -> torch.Tensor:
    """One finite logit vector ``(V,)`` with V >= 2, as a float tensor."""
    z = torch.as_tensor(logits)
    if not z.is_floating_point():
        z = z.to(torch.get_default_dtype())
    if z.dim() != 1 or z.shape[0] < 2:
        raise ValueError(
            f"logits must be one vector (V,) with V >= 2 classes, got shape {tuple(z.shape)}."
        )
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or infinite values.")
    return z


def _class_labels(V: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(V)]
    names = [str(c) for c in class_names]
    if len(names) != V:
        raise ValueError(f"class_names has {len(names)} entries but the logits have V={V} classes.")
    return names


def _class_axis(ax, names: list[str], label: str = "class") -> None:
    x = np.arange(len(names))
    long_names = max(len(n) for n in names) > 3
    ax.set_xticks(
        x, names, rotation=45 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_xlabel(label)
    ax.set_xlim(-0.6, len(names) - 0.4)


def _temperature_axis(ax) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda t, _: f"{t:g}"))
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("temperature $T$ (log scale)")


def _ratio_floor(z: torch.Tensor) -> float:
    """Bottom of a log-scale ratio axis: a decade below the smallest ``p_j / p_top`` at T = 1.

    Fixed per logit vector (not per T), so that moving T visibly raises or lowers the bars.
    """
    ratios = distributions.wrong_class_ratios(distributions.softened(z, 1.0), z.argmax())
    smallest = max(float(np.nanmin(_np(ratios))), 1e-300)
    return float(np.clip(10.0 ** (math.floor(math.log10(smallest)) - 1), 1e-12, 1e-2))


def plot_softened_distribution(
    logits,
    T: float = 1.0,
    class_names: Sequence[str] | None = None,
    *,
    ratios: bool = True,
    title: str | None = None,
) -> Figure:
    """Bars of ``p = softmax(logits / T)`` for one logit vector ``(V,)``; with ``ratios``, a
    second panel of the wrong-class ratios ``p_j / p_top`` on a log scale (the dark knowledge).

    The top class is drawn in orange. :func:`update_softened_distribution` redraws the figure
    in place for another T or logit vector; ``kdkit.widgets.temperature_explorer`` does that.
    """
    z = _logit_vector(logits)
    names = _class_labels(z.shape[0], class_names)
    x = np.arange(len(names))
    fig, axes = plt.subplots(
        1,
        2 if ratios else 1,
        figsize=(11, 4.2) if ratios else (5.8, 4.2),
        squeeze=False,
        layout="constrained",
    )
    ax_p = axes[0, 0]
    ax_p.bar(x, np.zeros(len(x)), width=0.7, color=_REST_COLOR)
    for xi in x:
        ax_p.text(xi, 0.0, "", ha="center", va="bottom", fontsize=8)
    _class_axis(ax_p, names)
    ax_p.set_ylim(0, 1.1)
    ax_p.set_ylabel("probability $p_i$")
    ax_p.set_title(r"softened distribution $p = \mathrm{softmax}(z / T)$", fontsize=11)
    ax_p.grid(axis="y", alpha=0.3)
    if ratios:
        ax_r = axes[0, 1]
        ax_r.set_yscale("log")
        ax_r.bar(x, np.ones(len(x)), width=0.7, color=_REST_COLOR)
        ax_r.axhline(1.0, color="0.4", ls="--", lw=1)
        ax_r.minorticks_off()  # many decades: minor ticks add clutter and redraw time
        _class_axis(ax_r, names)
        ax_r.set_ylabel(r"$p_j \,/\, p_{\mathrm{top}}$ (log scale)")
        ax_r.set_title(
            r"wrong-class ratios $p_j / p_{\mathrm{top}} = e^{(z_j - z_{\mathrm{top}})/T}$",
            fontsize=11,
        )
        ax_r.grid(axis="y", alpha=0.3)
    update_softened_distribution(fig, z, T, title=title)
    return fig


def update_softened_distribution(
    fig: Figure, logits, T: float, *, title: str | None = None
) -> None:
    """Redraw a figure from :func:`plot_softened_distribution` for new ``logits`` ``(V,)``
    and ``T``: bar heights and colours, value labels, the ratio axis' range, the title."""
    z = _logit_vector(logits)
    p = distributions.softened(z, T)  # (V,)
    top = int(z.argmax())
    ax_p = fig.axes[0]
    bars = ax_p.containers[0]
    if len(bars) != z.shape[0]:
        raise ValueError(f"the figure shows {len(bars)} classes but the logits have {z.shape[0]}.")
    colors = [_TOP_COLOR if i == top else _REST_COLOR for i in range(len(bars))]
    for rect, text, color, pi in zip(bars, ax_p.texts, colors, _np(p), strict=True):
        rect.set_height(pi)
        rect.set_color(color)
        text.set_y(pi + 0.01)
        text.set_text(f"{pi:.2f}" if pi >= 0.005 else "")
    if len(fig.axes) > 1:
        ax_r = fig.axes[1]
        ratios = _np(distributions.wrong_class_ratios(p, top))  # (V,), NaN at top
        ratios[top] = 1.0  # the top class as its own reference bar
        for rect, color, r in zip(ax_r.containers[0], colors, ratios, strict=True):
            rect.set_height(r)
            rect.set_color(color)
        ax_r.set_ylim(_ratio_floor(z), 2.0)
    H = float(distributions.entropy(p))
    heading = f"T = {T:.2f}:  entropy {H:.2f} nats = {math.exp(H):.2f} effective classes"
    fig.suptitle(f"{title}  |  {heading}" if title else heading, fontsize=12)


def plot_temperature_grid(
    logits,
    temperatures: Sequence[float],
    class_names: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """The same softened distribution ``softmax(logits / T)`` at several T: one bar chart per T.

    The static version of the temperature explorer, for readers without a kernel.
    Shapes: logits ``(V,)``, one axes per entry of ``temperatures``.
    """
    z = _logit_vector(logits)
    names = _class_labels(z.shape[0], class_names)
    temps = [float(T) for T in temperatures]
    if not temps:
        raise ValueError("temperatures is empty: give at least one T.")
    sweep = distributions.temperature_sweep(z, temps)  # raises for T <= 0
    K = len(temps)
    ncols = min(K, 5) if ncols is None else ncols
    nrows = math.ceil(K / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.6 * ncols + 0.4, 2.7 * nrows + 0.5),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    top = int(z.argmax())
    colors = [_TOP_COLOR if i == top else _REST_COLOR for i in range(len(names))]
    for k, ax in enumerate(axes.flat):
        if k >= K:
            ax.remove()
            continue
        ax.bar(np.arange(len(names)), _np(sweep["probs"][k]), width=0.7, color=colors)
        _class_axis(ax, names)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"T = {temps[k]:g}", fontsize=11)
        H, m = float(sweep["entropy"][k]), float(sweep["mass_outside_top"][k])
        ax.text(
            0.97,
            0.95,
            f"H = {H:.2f} nats\n$1 - p_{{top}}$ = {m:.2f}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.8"},
        )
        ax.grid(axis="y", alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("$p_i$")
    fig.suptitle(title or "softened distributions at several temperatures", fontsize=12)
    return fig


def plot_temperature_sweep(
    logits,
    temperatures: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Entropy, mass outside the top class and wrong-class ratios ``p_j / p_top`` of
    ``softmax(logits / T)`` as functions of T (default: 0.25 to 32 on a log axis).

    Shapes: logits ``(V,)``. Dashed lines mark the uniform limit (T -> infinity).
    """
    z = _logit_vector(logits)
    V = z.shape[0]
    names = _class_labels(V, class_names)
    temps = _DEFAULT_TEMPERATURES if temperatures is None else [float(T) for T in temperatures]
    if not temps:
        raise ValueError("temperatures is empty: give at least one T.")
    sweep = distributions.temperature_sweep(z, temps)
    T_axis = _np(sweep["temperatures"])
    top = int(z.argmax())
    fig, (ax_h, ax_m, ax_r) = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")

    ax_h.plot(T_axis, _np(sweep["entropy"]), color="C0", lw=2)
    uniform = f"log V = {math.log(V):.2f} (uniform)"
    ax_h.axhline(math.log(V), color="0.4", ls="--", lw=1, label=uniform)
    ax_h.set_ylim(0, 1.1 * math.log(V))
    ax_h.set_ylabel("entropy $H(p)$ [nats]")
    ax_h.set_title("entropy grows with T, up to log V", fontsize=11)
    # effective classes e^H on the right; the inverse is clipped because the axis starts at H = 0
    effective = ax_h.secondary_yaxis(
        "right", functions=(np.exp, lambda n: np.log(np.maximum(n, 1e-12)))
    )
    effective.set_ylabel("effective classes $e^{H}$")
    ax_h.legend(loc="upper left", fontsize=8)

    ax_m.plot(T_axis, _np(sweep["mass_outside_top"]), color="C0", lw=2)
    uniform = f"(V - 1) / V = {(V - 1) / V:.2f} (uniform)"
    ax_m.axhline((V - 1) / V, color="0.4", ls="--", lw=1, label=uniform)
    ax_m.set_ylim(0, 1.0)
    ax_m.set_ylabel(r"mass outside the top class $1 - p_{\mathrm{top}}$")
    ax_m.set_title(f"probability outside the top class '{names[top]}'", fontsize=11)
    ax_m.legend(loc="upper left", fontsize=8)

    ratios = _np(distributions.wrong_class_ratios(sweep["probs"], top))  # (K, V)
    for j in range(V):
        if j != top:
            ax_r.plot(T_axis, ratios[:, j], color=f"C{j % 10}", lw=1.5, label=names[j])
    ax_r.axhline(1.0, color="0.4", ls="--", lw=1)
    ax_r.set_yscale("log")
    ax_r.set_ylim(_ratio_floor(z), 2.0)
    ax_r.set_ylabel(r"$p_j \,/\, p_{\mathrm{top}}$ (log scale)")
    ax_r.set_title("wrong-class ratios all rise towards 1", fontsize=11)
    ax_r.legend(title="class j", ncols=3, fontsize=7, title_fontsize=8, loc="lower right")

    for ax in (ax_h, ax_m, ax_r):
        _temperature_axis(ax)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig
