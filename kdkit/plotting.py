"""Plot functions for the notebooks and figures/: each returns a matplotlib Figure.

Nothing here writes files or calls ``plt.show()``; the caller decides (notebooks show,
``tools/make_figures.py`` saves into figures/). The sections, in order:

- shared helpers: arrays, class axes, colours (also :func:`logit_vector`, :func:`class_labels`)
- distributions and temperature: one softened distribution, a grid of T, a sweep over T
- digits and soft labels: images with their labels, spread and similarity of soft labels
- comparisons across seeds: dots per seed with mean and t interval, paired differences, sweeps
- attention maps
- calibration and class bias
- encoder-decoder pictures (T5)
- the teacher–student family: student error against teacher size (notebook 08)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from kdkit import distributions
from kdkit.stats import t_interval

ArrayLike = torch.Tensor | np.ndarray | Sequence  # a tensor, an array or (nested) lists of numbers


# ---------------------------------------------------- shared helpers: arrays, class axes, colours


def _np(x: ArrayLike) -> np.ndarray:
    """A tensor or array-like as a float NumPy array (detached, on CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


_TOP_COLOR = "C1"  # the top (argmax) class: no temperature changes which class it is
_REST_COLOR = "C0"
_LABEL_COLOR = "0.25"  # the one-hot label's single bar


def logit_vector(logits: ArrayLike, name: str = "logits") -> torch.Tensor:
    """One finite logit vector ``(V,)`` with V >= 2, as a float tensor."""
    z = torch.as_tensor(logits)
    if not z.is_floating_point():
        z = z.to(torch.get_default_dtype())
    if z.dim() != 1 or z.shape[0] < 2:
        raise ValueError(
            f"{name} must be one logit vector (V,) with V >= 2 classes, "
            f"got shape {tuple(z.shape)}."
        )
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return z


def class_labels(V: int, class_names: Sequence[str] | None) -> list[str]:
    """Tick labels for ``V`` classes: ``class_names`` checked against ``V``, or ``"0".."V-1"``."""
    if class_names is None:
        return [str(i) for i in range(V)]
    names = [str(c) for c in class_names]
    if len(names) != V:
        raise ValueError(f"class_names has {len(names)} entries but the logits have V={V} classes.")
    return names


def _class_axis(ax: Axes, names: list[str], label: str = "class") -> None:
    """Label the x axis with one tick per class name (slanted when the names are long)."""
    x = np.arange(len(names))
    long_names = max(len(n) for n in names) > 3
    ax.set_xticks(
        x, names, rotation=45 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_xlabel(label)
    ax.set_xlim(-0.6, len(names) - 0.4)


def _bold_tick(ax: Axes, index: int) -> None:
    """Make the x tick label of class ``index`` bold (the true class)."""
    labels = ax.get_xticklabels()
    if 0 <= index < len(labels):
        labels[index].set_fontweight("bold")


# ---------------------------------------------------- distributions and temperature (notebook 02)

_DEFAULT_TEMPERATURES = tuple(float(2.0**e) for e in np.linspace(-2, 5, 57))  # 0.25 .. 32


def _temperature_axis(ax: Axes) -> None:
    """A log2 x axis for T with plain tick labels and a dotted line at T = 1."""
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
    logits: ArrayLike,
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
    z = logit_vector(logits)
    names = class_labels(z.shape[0], class_names)
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
    fig: Figure, logits: ArrayLike, T: float, *, title: str | None = None
) -> None:
    """Redraw a figure from :func:`plot_softened_distribution` for new ``logits`` ``(V,)``
    and ``T``: bar heights and colours, value labels, the ratio axis' range, the title."""
    z = logit_vector(logits)
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
    logits: ArrayLike,
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
    z = logit_vector(logits)
    names = class_labels(z.shape[0], class_names)
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
    logits: ArrayLike,
    temperatures: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Entropy, mass outside the top class and wrong-class ratios ``p_j / p_top`` of
    ``softmax(logits / T)`` as functions of T (default: 0.25 to 32 on a log axis).

    Shapes: logits ``(V,)``. Dashed lines mark the uniform limit (T -> infinity).
    """
    z = logit_vector(logits)
    V = z.shape[0]
    names = class_labels(V, class_names)
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


# ------------------------------------------------------ digits and soft labels (notebooks 01, 05)


def _digit_arrays(
    images: ArrayLike, labels: ArrayLike, probs: ArrayLike, side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(N, side, side)``, labels ``(N,)`` as ints and probs ``(N, V)``, checked."""
    imgs, y, p = _np(images), _np(labels).astype(int), _np(probs)
    if p.ndim != 2 or imgs.shape[0] != p.shape[0] or y.shape != (p.shape[0],):
        raise ValueError(
            f"need images (N, ...), labels (N,) and probs (N, V) with the same N, got shapes "
            f"{imgs.shape}, {y.shape} and {p.shape}."
        )
    return imgs.reshape(p.shape[0], side, side), y, p  # (N, side*side) -> (N, side, side)


def _digit_row(
    axes: np.ndarray,
    image: np.ndarray,
    label: int,
    p: np.ndarray,
    names: list[str],
    log_floor: float | None,
) -> None:
    """One row of :func:`plot_digits_with_probs`: image ``(side, side)``, one-hot bars, the
    probabilities ``p`` ``(V,)`` as bars and, when ``log_floor`` is given, again on a log axis."""
    V = p.shape[0]
    x = np.arange(V)
    top = int(p.argmax())
    colors = [_TOP_COLOR if i == top else _REST_COLOR for i in range(V)]
    ax_img, ax_label, ax_p = axes[:3]
    ax_img.imshow(image, cmap="gray_r", interpolation="nearest")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    ax_img.set_title(
        f"label {names[label]}, teacher {names[top]}",
        fontsize=9,
        color="black" if top == label else "C3",
    )
    ax_label.bar(x, np.eye(V)[label], width=0.7, color=_LABEL_COLOR)
    ax_p.bar(x, p, width=0.7, color=colors)
    H = float(-(p * np.log(np.clip(p, 1e-300, None))).sum())
    ax_p.text(0.98, 0.93, f"H = {H:.2f} nats", transform=ax_p.transAxes, ha="right", va="top",
              fontsize=8)
    for ax in (ax_label, ax_p):
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    if log_floor is not None:
        ax_log = axes[3]
        ax_log.bar(x, np.clip(p, log_floor, None), width=0.7, color=colors)
        ax_log.set_yscale("log")
        ax_log.set_ylim(log_floor, 1.5)
        ax_log.minorticks_off()
        ax_log.grid(axis="y", alpha=0.3)


def plot_digits_with_probs(
    images: ArrayLike,
    labels: ArrayLike,
    probs: ArrayLike,
    class_names: Sequence[str] | None = None,
    *,
    side: int = 8,
    log_scale: bool = True,
    log_floor: float | None = None,
    title: str | None = None,
) -> Figure:
    """One row per image: the image, its one-hot label, and a teacher's probabilities as bars
    (again on a log scale with ``log_scale``, where the small wrong-class values show).

    Shapes: images ``(N, side*side)`` or ``(N, side, side)``, labels ``(N,)``, probs ``(N, V)``.
    The teacher's top class is orange, the true class' tick label bold, and an image's title
    red where the top class is wrong. The log panels start at ``log_floor`` (default: a
    decade below the smallest probability, at least 1e-12); smaller values sit at the floor.
    """
    imgs, y, p = _digit_arrays(images, labels, probs, side)
    n, V = p.shape
    names = class_labels(V, class_names)
    if log_floor is None:
        smallest = max(float(p.min()), 1e-12)
        log_floor = 10.0 ** (math.floor(math.log10(smallest)) - 1) if smallest < 0.1 else 1e-2
    ncols = 4 if log_scale else 3
    fig, axes = plt.subplots(
        n,
        ncols,
        figsize=(3.0 * ncols + 0.6, 1.9 * n + 0.4),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": [0.55] + [1.0] * (ncols - 1)},
    )
    for r in range(n):
        _digit_row(axes[r], imgs[r], int(y[r]), p[r], names, log_floor if log_scale else None)
        for ax in axes[r, 1:]:
            _class_axis(ax, names, label="class" if r == n - 1 else "")
            _bold_tick(ax, y[r])
    column_titles = ["one-hot label $y$", "teacher $p_i$", "teacher $p_i$ (log scale)"]
    for ax, heading in zip(axes[0, 1:], column_titles, strict=False):
        ax.set_title(heading, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_soft_label_spread(
    mass_outside_top: dict,
    entropy: dict,
    num_classes: int,
    *,
    floor: float | None = None,
    title: str | None = None,
) -> Figure:
    """Histograms over a data set of two summaries of soft labels, one line per temperature.

    ``mass_outside_top`` and ``entropy`` map a temperature T to per-example values ``(N,)``
    (e.g. from :func:`kdkit.distributions.mass_outside_top` and
    :func:`~kdkit.distributions.entropy`). Left: ``1 − p_top`` on a log axis from ``floor``
    (default: the decade below the smallest value, at least 1e-12; smaller values are counted
    at the floor); right: entropy in nats, up to ``log num_classes``. A one-hot label has 0
    for both.
    """
    if set(mass_outside_top) != set(entropy) or not mass_outside_top:
        raise ValueError("mass_outside_top and entropy need the same, non-empty set of T keys.")
    if floor is None:
        smallest = min(float(_np(m).min()) for m in mass_outside_top.values())
        floor = 10.0 ** math.floor(math.log10(min(max(smallest, 1e-12), 0.1)))
    fig, (ax_m, ax_h) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    mass_bins = np.logspace(math.log10(floor), 0, 37)
    entropy_bins = np.linspace(0, math.log(num_classes), 31)
    for k, T in enumerate(sorted(mass_outside_top)):
        m = np.clip(_np(mass_outside_top[T]), floor, 1.0)
        H = _np(entropy[T])
        color = f"C{k}"
        ax_m.hist(
            m,
            bins=mass_bins,
            histtype="step",
            lw=2,
            color=color,
            label=f"T = {T:g}: median {np.median(m):.3f}",
        )
        ax_m.axvline(np.median(m), color=color, ls=":", lw=1.2)
        ax_h.hist(
            H,
            bins=entropy_bins,
            histtype="step",
            lw=2,
            color=color,
            label=f"T = {T:g}: mean {H.mean():.2f} nats",
        )
        ax_h.axvline(H.mean(), color=color, ls=":", lw=1.2)
    ax_m.set_xscale("log")
    ax_m.set_xlabel(r"mass outside the top class $1 - p_{\mathrm{top}}$ (log scale)")
    ax_m.set_title("how much probability the teacher gives to other classes", fontsize=11)
    ax_h.axvline(math.log(num_classes), color="0.4", ls="--", lw=1)
    ax_h.text(
        math.log(num_classes),
        0.5,
        " uniform\n log V",
        transform=ax_h.get_xaxis_transform(),
        ha="right",
        va="center",
        fontsize=8,
        color="0.3",
    )
    ax_h.set_xlabel("entropy $H(p)$ [nats]")
    ax_h.set_title("entropy of the teacher's soft labels", fontsize=11)
    for ax, loc in ((ax_m, "upper left"), (ax_h, "upper center")):
        ax.set_ylabel("number of examples")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc=loc, title="one-hot labels: 0 for all", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_class_similarity(
    matrix: ArrayLike,
    class_names: Sequence[str] | None = None,
    *,
    hide_diagonal: bool = True,
    title: str | None = None,
) -> Figure:
    """A ``(V, V)`` heat map, rows = true class, columns = class the probability goes to.

    For the mean soft label per true class, the off-diagonal cells show which classes the
    teacher finds alike. With ``hide_diagonal`` the colour scale covers only the
    off-diagonal cells (the diagonal is grey, its values still printed).
    """
    S = _np(matrix)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"matrix must be square (V, V), got shape {S.shape}.")
    V = S.shape[0]
    names = class_labels(V, class_names)
    off = ~np.eye(V, dtype=bool)
    shown = np.where(off, S, np.nan) if hide_diagonal else S
    fig, ax = plt.subplots(figsize=(7.4, 6.2), layout="constrained")
    cmap = plt.get_cmap("Blues").with_extremes(bad="0.85")  # NaN (hidden diagonal): grey
    vmax = float(np.nanmax(shown))
    im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax)
    for i in range(V):
        for j in range(V):
            dark = off[i, j] and S[i, j] > 0.6 * vmax
            ax.text(
                j,
                i,
                f"{S[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "0.15",
            )
    ax.set_xticks(np.arange(V), names)
    ax.set_yticks(np.arange(V), names)
    ax.set_xlabel("class k the probability goes to")
    ax.set_ylabel("true class")
    fig.colorbar(
        im,
        ax=ax,
        shrink=0.85,
        label="mean probability" + (" (off-diagonal)" if hide_diagonal else ""),
    )
    ax.set_title(title or "which digits the teacher finds alike", fontsize=12)
    return fig


def plot_target_gradients(
    targets: dict,
    gradients: dict,
    class_names: Sequence[str] | None = None,
    *,
    true_class: int | None = None,
    title: str | None = None,
) -> Figure:
    """Grouped bars: target distributions (left) and the negative gradient of each loss with
    respect to the student's logits (right: the direction one descent step moves each logit).

    ``targets`` and ``gradients`` map the same names (e.g. "one-hot", "soft") to ``(V,)``.
    """
    if list(targets) != list(gradients) or not targets:
        raise ValueError("targets and gradients need the same, non-empty keys in the same order.")
    series = [(_np(targets[k]), -_np(gradients[k])) for k in targets]
    V = series[0][0].shape[0]
    names = class_labels(V, class_names)
    fig, (ax_t, ax_g) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    x = np.arange(V)
    width = 0.8 / len(series)
    for k, (name, (q, g)) in enumerate(zip(targets, series, strict=True)):
        offset = (k - (len(series) - 1) / 2) * width
        color = _LABEL_COLOR if k == 0 else f"C{k - 1}"  # first series: usually the label
        ax_t.bar(x + offset, q, width=width, color=color, label=name)
        ax_g.bar(x + offset, g, width=width, color=color, label=name)
    ax_t.set_ylabel("target probability $q_i$")
    ax_t.set_title("the two targets", fontsize=11)
    ax_g.axhline(0.0, color="0.3", lw=0.8)
    ax_g.set_ylabel(r"$-\partial L / \partial z_i$ (up: logit pushed up)")
    ax_g.set_title("where one gradient step moves each logit", fontsize=11)
    for ax in (ax_t, ax_g):
        _class_axis(ax, names)
        if true_class is not None:
            _bold_tick(ax, true_class)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


# ------------------------------- comparisons across seeds, paired differences, sweeps (01, 04-06)


def _seed_rows(
    ax: Axes,
    rows: dict[str, np.ndarray],
    colors: Sequence[str],
    *,
    confidence: float | None,
    label: str,
    color_labels: bool = False,
) -> None:
    """One row per entry of ``rows`` (the first on top): a dot per seed, a diamond at the mean
    and, unless ``confidence`` is None, the mean's Student-t interval as an error bar.

    ``rows`` maps a row's name to its per-seed values ``(n_seeds,)``; ``colors`` has one colour
    per row. ``label`` is printed above the diamond, formatted with the row's ``mean`` and, with
    an interval, ``half``, ``low`` and ``high`` (e.g. ``"{mean:.3f} ± {half:.3f}"``);
    ``color_labels`` prints it in the row's colour. Every seed comparison in this module draws
    its rows here.
    """
    y = np.arange(len(rows))[::-1]  # first row on top
    for yi, values, color in zip(y, rows.values(), colors, strict=True):
        seeds = _np(values).ravel()  # (n_seeds,)
        numbers = {"mean": float(seeds.mean())}
        if confidence is not None:
            mean, half = t_interval(seeds, confidence)
            numbers = {"mean": mean, "half": half, "low": mean - half, "high": mean + half}
        mean = numbers["mean"]
        ax.plot(seeds, np.full(seeds.shape, yi - 0.22), "o", color=color, ms=5, alpha=0.7,
                mec="white", mew=0.5)
        ax.errorbar(mean, yi, xerr=numbers.get("half"), fmt="D", color=color, ms=7, capsize=4,
                    lw=1.5)
        ax.text(mean, yi + 0.18, label.format(**numbers), ha="center", va="bottom", fontsize=8,
                color=color if color_labels else "black")
    ax.set_yticks(y, list(rows))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", alpha=0.3)


def plot_accuracy_comparison(
    accuracies: dict,
    *,
    reference: dict | None = None,
    xlabel: str = "test accuracy",
    title: str | None = None,
) -> Figure:
    """One row per setting: a dot per run (seed) and a diamond at the runs' mean.

    ``accuracies`` maps a setting's name to its runs' accuracies; ``reference`` maps a name
    (e.g. "teacher") to a value drawn as a dashed vertical line. No bars from zero: the
    x axis is zoomed to the data, which a bar's length would misrepresent.
    """
    if not accuracies:
        raise ValueError("accuracies is empty.")
    runs = {k: _np(v).ravel() for k, v in accuracies.items()}  # name -> (n_runs,)
    fig, ax = plt.subplots(figsize=(9, 0.7 * len(runs) + 1.5), layout="constrained")
    colors = [f"C{k}" for k in range(len(runs))]
    _seed_rows(ax, runs, colors, confidence=None, label="mean {mean:.3f}")
    refs = dict(reference or {})
    for k, (name, value) in enumerate(refs.items()):
        ax.axvline(value, color=f"C{7 + k}", ls="--", lw=1.2, label=f"{name} ({value:.3f})")
    values = np.concatenate([*runs.values(), np.asarray(list(refs.values()), dtype=float)])
    span = max(float(values.max() - values.min()), 0.02)
    ax.set_xlim(values.min() - 0.15 * span, min(1.0, values.max() + 0.15 * span))
    ax.set_xlabel(xlabel)
    if refs:
        ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=12)
    return fig


def plot_variant_comparison(
    accuracies: dict,
    baseline: str,
    *,
    reference: dict | None = None,
    confidence: float = 0.95,
    title: str | None = None,
    xlabel: str = "test accuracy",
    diff_xlabel: str | None = None,
    digits: int = 3,
) -> Figure:
    """Seeds and intervals for several training variants, absolute and paired.

    ``accuracies`` maps a variant's name to its per-seed accuracies (all variants run on the
    same seeds, in the same order). Left: a dot per seed, the mean and its t interval.
    Right: per seed, each variant minus ``baseline`` (the same seed's run), with the mean
    difference and its t interval; an interval clear of 0 is a difference the seeds support.
    ``reference`` maps a name (e.g. "teacher") to a value drawn as a dashed line on the left.
    ``xlabel``/``diff_xlabel`` label the two x axes; labels print ``digits`` decimals.
    """
    if baseline not in accuracies:
        raise ValueError(f"baseline {baseline!r} is not one of {list(accuracies)}.")
    names = list(accuracies)
    runs = {k: _np(v).ravel() for k, v in accuracies.items()}  # name -> (n_seeds,)
    if any(r.size != runs[baseline].size for r in runs.values()):
        raise ValueError("every variant needs one value per seed, the same seeds for all.")
    # per seed, each other variant minus the baseline: name -> (n_seeds,)
    diffs = {k: runs[k] - runs[baseline] for k in names if k != baseline}
    fig, (ax_a, ax_d) = plt.subplots(
        1,
        2,
        figsize=(13, 0.55 * len(names) + 2.0),
        layout="constrained",
        gridspec_kw={"width_ratios": [1.1, 1.0]},
    )
    pct = int(round(100 * confidence))
    half = f"{{half:.{digits}f}}"  # a format for _seed_rows' labels: "0.812 ± 0.034"
    _seed_rows(ax_a, runs, [f"C{k}" for k in range(len(names))], confidence=confidence,
               label=f"{{mean:.{digits}f}} ± {half}")
    for j, (name, ref) in enumerate((reference or {}).items()):
        ax_a.axvline(ref, color=f"C{7 + j}", ls="--", lw=1.2, label=f"{name} ({ref:.{digits}f})")
    ax_a.set_xlabel(xlabel)
    ax_a.set_title(f"per seed (dots), mean ± {pct}% t interval", fontsize=11)
    if reference:
        ax_a.legend(fontsize=8, loc="lower right")
    _seed_rows(ax_d, diffs, [f"C{names.index(k)}" for k in diffs], confidence=confidence,
               label=f"{{mean:+.{digits}f}} ± {half}")
    ax_d.axvline(0.0, color="0.3", lw=1)
    ax_d.set_xlabel(diff_xlabel or f"accuracy − {baseline} (same seed)")
    ax_d.set_title(f"paired difference vs {baseline}, mean ± {pct}% t interval", fontsize=11)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_paired_differences(
    diffs: dict,
    *,
    xlabel: str = "difference in test error (points), same seed",
    title: str | None = None,
) -> Figure:
    """One row per comparison ``a − b``: a dot per seed, the mean and its confidence interval.

    ``diffs`` maps a label to a :class:`kdkit.stats.PairedDifference`. Lower is better: an
    interval entirely left of 0 is drawn green (a measurable gain), entirely right of 0 red,
    across 0 grey (no measurable difference at this number of seeds).
    """
    if not diffs:
        raise ValueError("diffs is empty.")
    fig, ax = plt.subplots(figsize=(9.5, 0.75 * len(diffs) + 1.6), layout="constrained")
    colors = [
        "tab:green" if d.high < 0 else "tab:red" if d.low > 0 else "0.45" for d in diffs.values()
    ]
    confidence = next(iter(diffs.values())).confidence
    if any(d.confidence != confidence for d in diffs.values()):
        raise ValueError("all paired differences need the same confidence level.")
    # the same Student-t interval as kdkit.stats.paired_difference_ci, from the per-seed values
    seeds = {name: np.asarray(d.differences) for name, d in diffs.items()}  # name -> (n_seeds,)
    _seed_rows(ax, seeds, colors, confidence=confidence, color_labels=True,
               label="{mean:+.2f}  [{low:+.2f}, {high:+.2f}]")
    ax.axvline(0.0, color="k", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_title(
        (title + "\n" if title else "")
        + f"dots: seeds · diamond: mean with {100 * confidence:g}% t interval"
        + " · left of 0: first one better",
        fontsize=10,
    )
    return fig


def plot_sweep_heatmap(
    grids: dict,
    T_values: Sequence[float],
    alphas: Sequence[float],
    *,
    best: tuple[int, int] | None = None,
    higher_is_better: Sequence[str] = (),
    title: str | None = None,
) -> Figure:
    """T × α grids side by side (rows: temperatures, columns: α), each cell annotated.

    ``grids`` maps a panel's label (e.g. "validation error (%)") to an array of shape
    ``(len(T_values), len(alphas))``. Darker is better: low values, or high ones for the
    labels in ``higher_is_better``. ``best`` = ``(row, column)`` of the chosen cell, outlined.
    """
    if not grids:
        raise ValueError("grids is empty.")
    fig, axes = plt.subplots(
        1, len(grids), figsize=(5.2 * len(grids) + 0.6, 0.8 * len(T_values) + 1.9),
        layout="constrained", squeeze=False,
    )
    for ax, (label, values) in zip(axes[0], grids.items(), strict=True):
        v = _np(values)
        if v.shape != (len(T_values), len(alphas)):
            raise ValueError(
                f"{label!r} must have shape ({len(T_values)}, {len(alphas)}) for "
                f"{len(T_values)} temperatures × {len(alphas)} alphas, got {v.shape}."
            )
        cmap = "viridis_r" if label in higher_is_better else "viridis"
        image = ax.imshow(v, cmap=cmap, aspect="auto")
        # white text on the dark (better) half of the colour scale
        sign = -1.0 if label in higher_is_better else 1.0
        middle = sign * (np.nanmin(v) + np.nanmax(v)) / 2
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                color = "white" if sign * v[i, j] < middle else "black"
                ax.text(j, i, f"{v[i, j]:.2f}", ha="center", va="center", fontsize=11, color=color)
        if best is not None:
            ax.add_patch(
                plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, ec="r", lw=3)
            )
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(T_values)), [f"{t:g}" for t in T_values])
        ax.set_xlabel("α (weight of the soft-target term)")
        ax.set_ylabel("temperature T")
        ax.set_title(label, fontsize=11)
        fig.colorbar(image, ax=ax, shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


# ------------------------------------------------------------------------ attention (notebook 05)


def plot_attention_maps(
    attentions: dict,
    tokens: Sequence[str],
    *,
    gamma: float = 1.0,
    title: str | None = None,
) -> Figure:
    """Attention probabilities of one sentence: a grid of heads (rows) × layers (columns) per
    model, models side by side.

    ``attentions`` maps a model's name to its per-layer maps, each ``(H, L, L)`` (rows are
    queries, columns keys) or ``(1, H, L, L)``; all models need the same ``H`` and ``L``, and
    ``tokens`` names the ``L`` positions. One colour scale for all panels, from 0 to the
    largest probability shown; ``gamma`` < 1 makes it a power scale that brightens small values.
    """
    if not attentions:
        raise ValueError("attentions is empty: give at least one model's maps.")
    maps = {}
    for name, layers in attentions.items():
        arrays = [_np(a) for a in layers]
        arrays = [a[0] if a.ndim == 4 and a.shape[0] == 1 else a for a in arrays]
        if not arrays or any(a.ndim != 3 or a.shape[1] != a.shape[2] for a in arrays):
            raise ValueError(f"{name}: each layer's map must have shape (H, L, L).")
        maps[name] = arrays
    H, L, _ = next(iter(maps.values()))[0].shape
    for name, arrays in maps.items():
        if any(a.shape != (H, L, L) for a in arrays):
            raise ValueError(
                f"{name}: every map must have shape {(H, L, L)} like the first model's."
            )
    if len(tokens) != L:
        raise ValueError(f"tokens has {len(tokens)} entries but the maps cover L={L} positions.")
    widths = [len(arrays) for arrays in maps.values()]
    fig = plt.figure(figsize=(1.75 * sum(widths) + 1.6, 1.75 * H + 1.4), layout="constrained")
    # one subfigure per model, plus a narrow one for the colour bar that all panels share
    subfigs = fig.subfigures(1, len(maps) + 1, width_ratios=[*widths, 0.45], wspace=0.03)
    vmax = max(float(a.max()) for arrays in maps.values() for a in arrays)
    norm = PowerNorm(gamma=gamma, vmin=0.0, vmax=vmax)
    image = None
    for subfig, (name, arrays) in zip(subfigs[:-1], maps.items(), strict=True):
        axes = subfig.subplots(H, len(arrays), squeeze=False)
        for layer, a in enumerate(arrays):
            for head in range(H):
                ax = axes[head, layer]
                image = ax.imshow(a[head], cmap="viridis", norm=norm)
                ax.set_xticks([])
                ax.set_yticks([])
                if head == 0:
                    ax.set_title(f"layer {layer}", fontsize=9)
                if head == H - 1:
                    ax.set_xticks(np.arange(L), tokens, rotation=90, fontsize=6)
                if layer == 0:
                    ax.set_yticks(np.arange(L), tokens, fontsize=6)
                    ax.set_ylabel(f"head {head}", fontsize=9)
        subfig.suptitle(name, fontsize=11)
    cax = subfigs[-1].add_axes((0.1, 0.2, 0.2, 0.6))
    subfigs[-1].colorbar(image, cax=cax, label="attention probability")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_token_weights(
    groups: dict[str, dict[str, ArrayLike]],
    tokens: Sequence[str],
    *,
    value_label: str = "attention probability",
    title: str | None = None,
) -> Figure:
    """Weights over one sentence's tokens as heatmap rows, grouped (e.g. one group per model).

    ``groups[group][row]`` is a vector ``(L,)`` over ``tokens`` — e.g. the ``[CLS]`` row of
    one head's attention. Groups are stacked top to bottom with one colour scale from 0 to the
    largest weight; each row's largest weight is outlined and printed, the rest left to the
    colour (a wall of numbers is what this replaces).
    """
    if not groups or not all(groups.values()):
        raise ValueError("groups is empty: give {group: {row: weights over the tokens}}.")
    L = len(tokens)
    arrays = {}
    for group, rows in groups.items():
        array = np.stack([_np(w).ravel() for w in rows.values()])  # (R, L)
        if array.shape[1] != L:
            raise ValueError(
                f"{group}: rows have {array.shape[1]} weights but tokens has {L} entries."
            )
        arrays[group] = array
    vmax = max(float(a.max()) for a in arrays.values())
    heights = [a.shape[0] for a in arrays.values()]
    fig, axes = plt.subplots(
        len(arrays), 1, figsize=(0.55 * L + 2.8, 0.24 * sum(heights) + 0.45 * len(arrays) + 1.4),
        layout="constrained", sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    image = None
    for ax, (group, rows), array in zip(axes[:, 0], groups.items(), arrays.values(), strict=True):
        image = ax.imshow(array, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_yticks(np.arange(len(rows)), list(rows), fontsize=7)
        for r, k in enumerate(array.argmax(axis=1)):  # each row's largest weight
            ax.add_patch(plt.Rectangle((k - 0.5, r - 0.5), 1, 1, fill=False, ec="white", lw=1.2))
            ax.text(k, r, f"{array[r, k]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if array[r, k] > 0.6 * vmax else "white")
        ax.set_title(group, fontsize=10, loc="left")
    axes[-1, 0].set_xticks(np.arange(L), list(tokens), rotation=60, ha="right", fontsize=8)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label=value_label, shrink=0.6)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_epoch_curves(
    histories: dict[str, Sequence[dict]],
    *,
    train_key: str = "ce",
    title: str | None = None,
) -> Figure:
    """Per-epoch learning curves of several variants over seeds (:mod:`kdkit.train`'s loops).

    ``histories[variant]`` holds one history per seed, each with per-epoch lists ``train_key``
    (cross-entropy on the training batches, averaged over the epoch, dropout on),
    ``"val_loss"`` and ``"val_accuracy"`` (train with ``val=``). Left: training (dashed) and
    validation (solid) cross-entropy, means over the seeds, log scale — a validation loss that
    rises while the training loss falls is overfitting. Right: validation accuracy, a thin line
    per seed and their mean bold.
    """
    if not histories:
        raise ValueError("histories is empty: give {variant: [history per seed]}.")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.9), layout="constrained")
    for k, (name, runs) in enumerate(histories.items()):
        keys = (train_key, "val_loss", "val_accuracy")
        if not runs or not all(run.get(key) for run in runs for key in keys):
            raise ValueError(f"{name!r}: every history needs {keys} per epoch (pass val=).")
        epochs = np.arange(1, len(runs[0]["val_accuracy"]) + 1)
        train_loss = np.mean([_np(run[train_key]) for run in runs], axis=0)  # (epochs,)
        val_loss = np.mean([_np(run["val_loss"]) for run in runs], axis=0)  # (epochs,)
        ax_loss.plot(epochs, train_loss, "--", color=f"C{k}", lw=1.5)
        ax_loss.plot(epochs, val_loss, "-", color=f"C{k}", lw=2, label=name)
        accuracy = np.array([_np(run["val_accuracy"]) for run in runs])  # (seeds, epochs)
        for row in accuracy:
            ax_acc.plot(epochs, row, color=f"C{k}", alpha=0.3, lw=0.8)
        ax_acc.plot(epochs, accuracy.mean(axis=0), color=f"C{k}", lw=2, marker="o", ms=3,
                    label=name)
    ax_loss.plot([], [], "--", color="0.4", label="training batches")
    ax_loss.plot([], [], "-", color="0.4", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (log scale)", yscale="log",
                title="cross-entropy to the labels (mean over seeds)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy",
               title="validation accuracy (thin: seeds, bold: mean)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


# ------------------------------------------------------- calibration and class bias (notebook 04)


def plot_reliability_diagram(
    probs: dict,
    labels: dict,
    *,
    num_bins: int = 15,
    min_count: int = 5,
    title: str | None = None,
) -> Figure:
    """Accuracy against confidence per confidence bin, one line per model, ECE in the legend.

    ``probs`` maps a model's name to its probabilities ``(N, C)``, ``labels`` maps the same
    names to the true labels ``(N,)`` (pool several seeds by concatenating). The diagonal is
    perfect calibration; points below it are over-confident bins. Bins with fewer than
    ``min_count`` predictions are not drawn (their accuracy is noise); the ECE counts them.
    Right: how many predictions fall in each bin (log scale).
    """
    from kdkit.metrics import calibration_bins, expected_calibration_error

    if probs.keys() != labels.keys():
        raise ValueError("probs and labels must have the same model names.")
    fig, (ax, ax_n) = plt.subplots(
        1, 2, figsize=(11.5, 4.8), layout="constrained", gridspec_kw={"width_ratios": [1.15, 1]}
    )
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfect calibration")
    width = 1 / num_bins
    for k, (name, p) in enumerate(probs.items()):
        bins = calibration_bins(p, labels[name], num_bins)
        count = _np(bins["count"])
        shown = count >= max(min_count, 1)
        conf, acc = _np(bins["confidence"])[shown], _np(bins["accuracy"])[shown]
        ece = expected_calibration_error(p, labels[name], num_bins)
        ax.plot(conf, acc, "o-", color=f"C{k}", lw=1.5, ms=5,
                label=f"{name}: ECE {100 * ece:.2f}%")
        centres = _np(bins["edges"])[:-1] + width * (k + 1) / (len(probs) + 1)
        ax_n.bar(centres, count, width / (len(probs) + 1), color=f"C{k}", label=name)
    ax.set(xlim=(0, 1.01), ylim=(0, 1.01), xlabel="confidence (top probability), bin mean",
           ylabel="accuracy in the bin")
    ax.set_title(f"reliability (bins with ≥ {min_count} predictions)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    ax_n.set_yscale("log")
    ax_n.set(xlim=(0, 1.01), xlabel="confidence bin", ylabel="predictions in the bin")
    ax_n.set_title("where the predictions are", fontsize=11)
    ax_n.grid(axis="y", alpha=0.3)
    ax_n.legend(fontsize=9, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_class_bias_correction(
    biases: Sequence[float],
    val_accuracies: Sequence,
    chosen: Sequence[float],
    recall_before: Sequence[float],
    recall_after: Sequence[float],
    *,
    cls_name: str = "3",
    title: str | None = None,
) -> Figure:
    """Omitted-class repair, per seed: validation accuracy vs the class's logit bias (left,
    chosen bias marked) and the share of test examples of the class classified right before and
    after the correction (right). Lists hold one entry per seed, in seed order."""
    n = len(chosen)
    if not (len(val_accuracies) == len(recall_before) == len(recall_after) == n):
        raise ValueError("val_accuracies, chosen, recall_before, recall_after: one per seed.")
    b = _np(biases)
    fig, (ax_v, ax_r) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    for s in range(n):
        acc = 100 * _np(val_accuracies[s])
        ax_v.plot(b, acc, color=f"C{s}", lw=1.5, label=f"seed {s}: bias +{chosen[s]:g}")
        ax_v.plot(chosen[s], acc[int(np.argmin(np.abs(b - chosen[s])))], "o", color=f"C{s}", ms=8)
    ax_v.set(xlabel=f"bias added to the {cls_name}-logit",
             ylabel="validation accuracy (%)")
    ax_v.set_title("choosing the bias on validation data", fontsize=11)
    ax_v.grid(alpha=0.3)
    ax_v.legend(fontsize=9)
    x = np.arange(n)
    before, after = 100 * _np(recall_before), 100 * _np(recall_after)
    ax_r.bar(x - 0.2, before, 0.4, color="0.6", label="before")
    ax_r.bar(x + 0.2, after, 0.4, color="tab:green", label="after the bias correction")
    for xi, lo, hi in zip(x, before, after, strict=True):
        ax_r.text(xi - 0.2, lo + 1, f"{lo:.1f}", ha="center", va="bottom", fontsize=9)
        ax_r.text(xi + 0.2, hi + 1, f"{hi:.1f}", ha="center", va="bottom", fontsize=9)
    ax_r.set_xticks(x, [f"seed {s}" for s in range(n)])
    ax_r.set(ylim=(0, 125), ylabel=f"test {cls_name}s classified right (%)")
    ax_r.set_title(f"test {cls_name}s the student gets right", fontsize=11)
    ax_r.legend(fontsize=9, loc="upper center", ncol=2)
    ax_r.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_train_val_curves(
    panels: dict[str, dict[str, Sequence[dict]]],
    *,
    quantities: Sequence[str] = ("error", "loss"),
    title: str | None = None,
) -> Figure:
    """Training and validation curves of classifier students, mean over seeds.

    ``panels[panel][student]`` holds one history per seed from
    :func:`kdkit.train.train_classifier` or :func:`kdkit.train.distill_classifier` run with
    ``val=``. One column per panel, one row per quantity: ``"error"`` (%, linear scale, the
    first steps cut off) or ``"loss"`` (cross-entropy, log scale). Each student is one colour:
    validation solid, training (its labelled fit rows) dashed; the space between them is the
    train–validation gap.
    """
    if not panels or not all(panels.values()):
        raise ValueError("panels is empty: give {panel: {student: [history per seed]}}.")
    bad = [q for q in quantities if q not in ("error", "loss")]
    if bad or not quantities:
        raise ValueError(f"quantities are 'error' and/or 'loss', got {list(quantities)}.")
    fig, axes = plt.subplots(len(quantities), len(panels), squeeze=False, layout="constrained",
                             figsize=(4.6 * len(panels), 3.3 * len(quantities)))
    for col, (panel, students) in enumerate(panels.items()):
        for row, quantity in enumerate(quantities):
            ax, scale = axes[row, col], 100 if quantity == "error" else 1
            finals = []
            for k, (name, runs) in enumerate(students.items()):
                if not runs or not all(run.get("step") for run in runs):
                    raise ValueError(f"{name!r}: every history needs learning curves (val=).")
                steps = _np(runs[0]["step"])
                for split, style in (("val", "-"), ("train", "--")):
                    mean = scale * np.mean([_np(r[f"{split}_{quantity}"]) for r in runs], 0)
                    label = f"{name}: {'validation' if split == 'val' else 'training'}"
                    ax.plot(steps, mean, style, color=f"C{k}", lw=1.6, label=label)
                    finals.append(mean[-1])
            if quantity == "error":
                ax.set_ylim(0, max(5.0, 2.5 * max(finals)))
                ax.set_ylabel("error (%)")
            else:
                ax.set_yscale("log")
                ax.set_ylabel("cross-entropy (nats)")
            ax.set_xlabel("optimiser step")
            ax.set_title(panel, fontsize=10)
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


# ----------------------------------------------------- encoder-decoder pictures (T5, notebook 06)


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str, **kw) -> None:
    """A rounded box at ``(x, y)`` of size ``w`` × ``h`` with ``text`` in its middle."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="0.25", lw=1.2
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", **kw)


def _arrow(
    ax: Axes, xy_from: tuple[float, float], xy_to: tuple[float, float], color: str = "0.3", **kw
) -> None:
    """An arrow from ``xy_from`` to ``xy_to`` in data coordinates."""
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(
        FancyArrowPatch(
            xy_from, xy_to, arrowstyle="-|>", mutation_scale=10, color=color, lw=1.1, **kw
        )
    )


def _draw_encoder(ax: Axes, src: list[str], cell: float) -> None:
    """Source tokens in, one stack of blocks, one hidden state per source token out."""
    width = len(src) * cell
    for i, tok in enumerate(src):
        _box(ax, i * cell + 0.04, 0.0, cell - 0.08, 0.6, tok, "#e8eef7", fontsize=8)
        _arrow(ax, (i * cell + cell / 2, 0.62), (i * cell + cell / 2, 1.15))
    _box(ax, 0.0, 1.2, width, 1.4, "encoder blocks\nself-attention over the whole source",
         "#c9d9f0", fontsize=10)
    for i in range(len(src)):
        _box(ax, i * cell + 0.12, 2.95, cell - 0.24, 0.4, "", "#9fbce6")
        _arrow(ax, (i * cell + cell / 2, 2.62), (i * cell + cell / 2, 2.93))
    ax.text(width / 2, 3.5, "encoder states (one per source token)", ha="center", fontsize=9)
    ax.text(width / 2, -0.55, "source tokens", ha="center", fontsize=9)


def _draw_decoder(
    ax: Axes, tgt: list[str], x0: float, cell: float, step_probs: Sequence[float] | None
) -> None:
    """From ``x0`` on: ``<pad>`` + the target shifted right in, one distribution per step out,
    each a bar filled to ``step_probs[t]`` (full without ``step_probs``)."""
    width = len(tgt) * cell
    for i, tok in enumerate(["<pad>", *tgt[:-1]]):  # the decoder's inputs
        x = x0 + i * cell
        _box(ax, x + 0.04, 0.0, cell - 0.08, 0.6, tok, "#f6ebdc", fontsize=8)
        _arrow(ax, (x + cell / 2, 0.62), (x + cell / 2, 1.15))
    _box(ax, x0, 1.2, width, 1.4, "decoder blocks\ncausal self-attention + cross-attention",
         "#f0d6b3", fontsize=10)
    for i, tok in enumerate(tgt):
        x = x0 + i * cell
        _arrow(ax, (x + cell / 2, 2.62), (x + cell / 2, 2.93))
        height = 1.0 if step_probs is None else float(step_probs[i])
        ax.add_patch(
            plt.Rectangle((x + 0.14, 2.95), cell - 0.28, 1.2, fc="white", ec="0.5", lw=0.8)
        )
        ax.add_patch(
            plt.Rectangle((x + 0.14, 2.95), cell - 0.28, 1.2 * height, fc="C1", alpha=0.8, lw=0)
        )
        ax.text(x + cell / 2, 4.35, tok, ha="center", fontsize=9, weight="bold")
    ax.text(
        x0 + width / 2,
        4.95,
        "one distribution over the vocabulary per step: p(y_t | y_<t, x)\n"
        "word-level KD: KL(p_teacher ‖ p_student) at every step",
        ha="center",
        fontsize=9,
    )
    ax.text(x0 + width / 2, -0.55, "decoder input: the target shifted right (teacher forcing)",
            ha="center", fontsize=9)


def plot_encoder_decoder(
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    step_probs: Sequence[float] | None = None,
) -> Figure:
    """The encoder–decoder picture of T5 under teacher forcing, for one example.

    The encoder reads every source token at once; the decoder reads ``<pad>`` (T5's start
    token) followed by the target shifted right, and at each step ``t`` outputs a distribution
    over the vocabulary for target token ``t``: the place where word-level KD compares
    teacher and student. ``step_probs`` (one per target token, optional) are drawn as the
    height of each step's probability bar (e.g. a model's probability of the right token).
    """
    src, tgt = [str(t) for t in source_tokens], [str(t) for t in target_tokens]
    if not src or not tgt:
        raise ValueError("source_tokens and target_tokens must be non-empty.")
    if step_probs is not None and len(step_probs) != len(tgt):
        raise ValueError(f"step_probs needs one value per target token ({len(tgt)}).")
    cell, gap = 0.62, 1.4  # a token's width; the space between encoder and decoder
    width_src = len(src) * cell
    x_dec = width_src + gap
    fig, ax = plt.subplots(figsize=(max(10.0, 0.62 * (len(src) + len(tgt)) + 2.5), 5.6))
    ax.set_xlim(-0.4, x_dec + len(tgt) * cell + 0.4)
    ax.set_ylim(-0.9, 5.6)
    ax.axis("off")
    _draw_encoder(ax, src, cell)
    _draw_decoder(ax, tgt, x_dec, cell, step_probs)
    # cross-attention: the decoder reads the encoder states
    _arrow(ax, (width_src + 0.05, 3.15), (x_dec + 0.1, 2.2), color="C0",
           connectionstyle="arc3,rad=-0.25")
    ax.text(width_src + gap / 2, 3.3, "cross-\nattention", ha="center", fontsize=8, color="C0")
    ax.set_title(
        "T5: an encoder reads the source, a decoder writes the target one token at a time",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def plot_decoder_steps(
    probs: dict,
    tokens: Sequence[str],
    target_tokens: Sequence[str],
    steps: Sequence[int],
    *,
    top_k: int = 5,
    reference: str | None = None,
) -> Figure:
    """Per-step distributions of several models at several temperatures, side by side.

    ``probs[T][model]`` is a ``(L, V)`` array of one model's ``softmax(z / T)`` at each
    target step (:func:`kdkit.seq2seq.step_distributions`); ``tokens`` names the ``V`` ids;
    ``target_tokens`` are the reference's tokens. One row per temperature, one column per
    step in ``steps``: horizontal bars over the ``top_k`` tokens the ``reference`` model
    (default: the first) ranks highest at that step, one bar per model. The reference token
    is marked with ``←``.
    """
    temps = list(probs)
    if not temps:
        raise ValueError("probs is empty: give {T: {model: (L, V) probabilities}}.")
    models = list(probs[temps[0]])
    reference = reference or models[0]
    if reference not in models:
        raise ValueError(f"reference {reference!r} is not one of the models {models}.")
    steps = list(steps)
    fig, axes = plt.subplots(
        len(temps),
        len(steps),
        figsize=(3.1 * len(steps), 2.2 * len(temps) + 0.8),
        squeeze=False,
        layout="constrained",
    )
    height = 0.8 / len(models)
    for r, T in enumerate(temps):
        arrays = {m: _np(probs[T][m]) for m in models}
        for c, t in enumerate(steps):
            ax = axes[r, c]
            if not 0 <= t < len(target_tokens):
                raise ValueError(f"step {t} is outside the target (0..{len(target_tokens) - 1}).")
            order = np.argsort(-arrays[reference][t])[:top_k]  # (top_k,) token ids
            y = np.arange(len(order))[::-1]
            for k, m in enumerate(models):
                ax.barh(
                    y + 0.4 - (k + 0.5) * height,
                    arrays[m][t, order],
                    height=height,
                    color=f"C{k}",
                    label=m,
                )
            labels = [
                f"{tokens[j]!s}" + (" ←" if str(tokens[j]) == str(target_tokens[t]) else "")
                for j in order
            ]
            ax.set_yticks(y, labels, fontsize=9)
            ax.set_xlim(0, 1)
            ax.grid(axis="x", alpha=0.3)
            if r == 0:
                ax.set_title(f"step {t}: next is {target_tokens[t]!r}", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"T = {T:g}", fontsize=11)
            if r == len(temps) - 1:
                ax.set_xlabel("probability")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    return fig


def plot_learning_curves(
    histories: dict[str, Sequence[dict]],
    *,
    metric: str = "validation score (%)",
    smooth: int = 50,
) -> Figure:
    """Learning curves of several arms over several seeds, side by side.

    ``histories[arm]`` is one :func:`kdkit.seq2seq.train_seq2seq` history per seed. Left: each
    arm's own training objective per step (``"loss"``, a running mean over ``smooth`` steps;
    the arms minimise different objectives, so compare shapes, not levels). Right: the
    validation score at ``"val_step"`` — one thin line per seed, the mean bold.
    """
    if not histories:
        raise ValueError("histories is empty: give {arm: [history per seed]}.")
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for k, (arm, runs) in enumerate(histories.items()):
        if not runs or not all(run.get("val_step") for run in runs):
            raise ValueError(f"{arm!r}: every history needs val_step/val_score (eval_every).")
        losses = np.mean([_np(run["loss"]) for run in runs], axis=0)  # (steps,)
        window = max(1, min(smooth, len(losses)))
        running = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax_loss.plot(np.arange(window, len(losses) + 1), running, color=f"C{k}", label=arm)
        steps = _np(runs[0]["val_step"])
        scores = np.array([_np(run["val_score"]) for run in runs])  # (seeds, evals)
        for row in scores:
            ax_val.plot(steps, row, color=f"C{k}", alpha=0.3, lw=0.8)
        ax_val.plot(steps, scores.mean(axis=0), color=f"C{k}", lw=2, marker="o", label=arm)
    ax_loss.set(xlabel="optimiser step", ylabel=f"training objective (mean of {smooth} steps)",
                yscale="log", title="what each arm minimises")
    ax_val.set(xlabel="optimiser step", ylabel=metric, title="held-out score while training")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=9)
    return fig


def plot_loss_curves(
    histories: dict[str, dict[str, Sequence[float]]],
    *,
    keys: Sequence[str] = ("loss",),
    labels: dict[str, str] | None = None,
    smooth: int = 1,
    ylabel: str = "per target token",
    title: str | None = None,
) -> Figure:
    """Per-step training curves of a few runs, one panel per quantity.

    ``histories[run]`` holds ``"step"`` and, for each of ``keys``, one value per step: a
    :func:`kdkit.seq2seq.train_seq2seq` history, or a Hugging Face Trainer's logged values
    gathered into lists (notebook 06). Each run is one colour: its values thin, their running
    mean over ``smooth`` steps bold. ``labels`` names the panels (default: the keys).
    """
    if not histories:
        raise ValueError("histories is empty: give {run: {'step': [...], key: [...]}}.")
    if not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be an int >= 1, got {smooth!r}.")
    for name, history in histories.items():
        missing = [k for k in ("step", *keys) if len(history.get(k, ())) == 0]
        if missing:
            raise ValueError(f"{name!r}: the history has no values for {missing}.")
        if any(len(history[k]) != len(history["step"]) for k in keys):
            raise ValueError(f"{name!r}: every key needs one value per step.")
    labels = labels or {}
    fig, axes = plt.subplots(1, len(keys), squeeze=False, layout="constrained",
                             figsize=(4.2 * len(keys) + 0.6, 3.6))
    for ax, key in zip(axes[0], keys, strict=True):
        for k, (name, history) in enumerate(histories.items()):
            steps, values = _np(history["step"]), _np(history[key])  # (steps,), (steps,)
            window = min(smooth, len(values))
            running = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps, values, color=f"C{k}", alpha=0.3, lw=0.8)
            ax.plot(steps[window - 1 :], running, color=f"C{k}", lw=2, label=name)
        ax.set(xlabel="optimiser step", title=labels.get(key, key))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel + (f" (bold: mean of {smooth} steps)" if smooth > 1 else ""))
    axes[0, 0].legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_divergence_by_position(
    views: dict[str, dict[str, Sequence[dict]]],
    *,
    min_count: int = 100,
) -> Figure:
    """Exposure bias, seen by target position: each student's ``KL(p_tea ‖ p_stu)`` to the teacher
    along the references (solid) and along its own greedy outputs (dashed).

    ``views[student][view]`` holds one :func:`kdkit.on_policy.divergence_by_position` result
    per seed for ``view`` in ``("references", "own outputs")``; the plot shows the mean over
    seeds at each position that at least ``min_count`` targets reach in every seed.
    """
    if not views:
        raise ValueError("views is empty: give {student: {'references': [...], "
                         "'own outputs': [...]}}.")
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for k, (student, by_view) in enumerate(views.items()):
        for view, style in (("references", "-"), ("own outputs", "--")):
            runs = by_view.get(view)
            if not runs:
                raise ValueError(f"{student!r} has no {view!r} results.")
            length = min(len(r["kl"]) for r in runs)
            counts = np.array([_np(r["count"])[:length] for r in runs])  # (seeds, L)
            keep = (counts >= min_count).all(axis=0)  # (L,)
            kl = np.array([_np(r["kl"])[:length] for r in runs]).mean(axis=0)  # (L,)
            positions = np.arange(1, length + 1)
            ax.plot(positions[keep], kl[keep], style, color=f"C{k}", marker="o", ms=3,
                    label=f"{student}, along {view}")
    ax.set(xlabel="target position (1 = first phoneme)", ylabel="KL(teacher ‖ student), nats",
           title="Per-step divergence to the teacher: on perfect prefixes vs on its own")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_size_speed_accuracy(
    points: dict[str, tuple[float, float, int]],
    *,
    latency_label: str = "milliseconds per 1,000 predictions (log scale)",
    score_label: str = "test accuracy (%)",
    title: str = "Accuracy, speed and size",
) -> Figure:
    """The trade-off in one picture: score against latency, one bubble per model.

    ``points[name] = (latency, score, parameters)``; the bubble's area grows linearly with the
    parameter count, which the first label of each size also prints. Up and to the left is
    better. The form of
    the bubble plot in Tunstall et al., *NLP with Transformers*, ch. 8.
    """
    if not points:
        raise ValueError("points is empty: give {model: (latency, score, parameters)}.")
    bad = [name for name, (lat, _, n) in points.items() if not (lat > 0 and n > 0)]
    if bad:
        raise ValueError(f"latency and parameters must be positive; check {bad}.")
    largest = max(n for _, _, n in points.values())
    area = lambda n: 60 + 2400 * n / largest  # noqa: E731  (points², the smallest stays visible)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    sizes_named: set[int] = set()
    for k, (name, (lat, score, n)) in enumerate(points.items()):
        ax.scatter(lat, score, s=area(n), color=f"C{k}", alpha=0.55, edgecolor="black", lw=0.6)
        label = name if n in sizes_named else f"{name}, {n:,} parameters"
        sizes_named.add(n)
        radius = math.sqrt(area(n) / math.pi)  # points
        ax.annotate(label, (lat, score), xytext=(radius + 4, 0), textcoords="offset points",
                    fontsize=8, va="center")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    lats = [lat for lat, _, _ in points.values()]
    ax.set_xlim(min(lats) / 3, max(lats) * 6)
    scores = [s for _, s, _ in points.values()]
    pad = max(1.0, 0.15 * (max(scores) - min(scores)))
    ax.set_ylim(min(scores) - pad, max(scores) + pad)
    ax.set(xlabel=latency_label, ylabel=score_label, title=title)
    ax.grid(alpha=0.3)
    return fig


# ---- the pitfalls clinic


def plot_broken_vs_fixed(
    broken_losses: Sequence[float],
    fixed_losses: Sequence[float],
    *,
    broken_label: str = "as written",
    fixed_label: str = "fixed",
) -> Figure:
    """The training loss of a broken and a fixed distillation run, side by side (notebook 09).

    Left: the broken run's loss per step with the zero line (a divergence never goes below
    it). Right: the fixed run's loss per step.
    """
    fig, (ax_b, ax_f) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    ax_b.plot(np.arange(1, len(broken_losses) + 1), _np(broken_losses), color="C3")
    ax_b.axhline(0.0, color="k", lw=0.8, ls="--")
    ax_b.set(xlabel="step", ylabel="reported loss", title=broken_label)
    ax_f.plot(np.arange(1, len(fixed_losses) + 1), _np(fixed_losses), color="C2")
    ax_f.axhline(0.0, color="k", lw=0.8, ls="--")
    ax_f.set(xlabel="step", ylabel="reported loss", title=fixed_label)
    for ax in (ax_b, ax_f):
        ax.grid(alpha=0.3)
    return fig


def plot_loss_vs_length(lengths: Sequence[int], values: dict[str, Sequence[float]]) -> Figure:
    """KD loss values against the sequence length, one line per way of reducing (notebook 09).

    ``values[name][i]`` is the loss at ``lengths[i]``, for sequences whose per-token
    divergence is the same at every length: a per-token mean stays flat, a sum does not.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for k, (name, ys) in enumerate(values.items()):
        ax.plot(_np(lengths), _np(ys), marker="o", color=f"C{k}", label=name)
    ax.set(xlabel="sequence length L (tokens)", ylabel="loss", yscale="log",
           title="the same per-token divergence at every length")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(lengths), [str(n) for n in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return fig


# ---- the teacher–student family (notebook 08)


def plot_teacher_sizes(
    teachers: dict,
    baseline: Sequence[float],
    *,
    baseline_label: str = "student alone (CE)",
    confidence: float = 0.95,
    title: str | None = None,
) -> Figure:
    """Does a bigger teacher make a better student? Test error against teacher size.

    ``teachers[name] = (parameters, teacher_error, student_errors)``: the teacher's size and test
    error, and the per-seed test errors ``(n_seeds,)`` of the students it taught. Squares: the
    teachers; diamonds: the students' mean with its Student-t interval; the band: ``baseline``
    (per-seed errors of the same students trained without a teacher), mean ± interval.
    """
    if not teachers:
        raise ValueError("teachers is empty: give {name: (parameters, error, student_errors)}.")
    if any(p <= 0 for p, _, _ in teachers.values()):
        raise ValueError("teacher parameter counts must be positive (log axis).")
    fig, ax = plt.subplots(figsize=(8, 4.4), layout="constrained")
    mean, half = t_interval(_np(baseline).ravel(), confidence)
    ax.axhspan(mean - half, mean + half, color="0.85", label=f"{baseline_label}: {mean:.2f}")
    ax.axhline(mean, color="0.5", lw=1)
    for k, (name, (params, t_err, s_errs)) in enumerate(teachers.items()):
        s_mean, s_half = t_interval(_np(s_errs).ravel(), confidence)
        ax.plot(params, t_err, "s", color=f"C{k}", ms=7, alpha=0.6)
        ax.errorbar(params, s_mean, yerr=s_half, fmt="D", color=f"C{k}", ms=7, capsize=4,
                    label=f"{name}: teacher {t_err:.2f} → student {s_mean:.2f}")
        ax.plot([params, params], [t_err, s_mean], ":", color=f"C{k}", lw=1)
    ax.set_xscale("log")
    ax.set(xlabel="teacher parameters (log scale)", ylabel="test error (%)",
           title=(title + "\n" if title else "")
           + f"squares: teachers · diamonds: their students, mean ± {100 * confidence:g}% t "
           "interval")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return fig
