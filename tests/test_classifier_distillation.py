"""Notebook 04's pieces, in smoke configurations: paired CIs, fidelity and calibration metrics,
the omitted-class pipeline (drop a class, distil, choose a bias on validation data), the
same-initialisation check and the precomputed teacher."""

from __future__ import annotations

import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figure_readers import seed_rows
from scipy import stats as scipy_stats

import kdkit
from kdkit import metrics, models, plotting, stats, train
from kdkit.data import digits as data


@pytest.fixture(scope="module")
def digits():
    split = data.load_digits_split(test_size=0.4, seed=0)
    X_fit, y_fit, X_val, y_val = data.validation_split(split.X_train, split.y_train, 0.2, seed=0)
    return X_fit, y_fit, X_val, y_val


# --------------------------------------------------------------------------- paired CIs


def test_paired_difference_ci_matches_scipy():
    a = [4.0, 3.5, 5.1, 3.9, 4.4]
    b = [5.0, 4.9, 5.5, 4.1, 5.6]
    d = np.subtract(a, b)
    low, high = scipy_stats.t.interval(
        0.95, df=len(d) - 1, loc=d.mean(), scale=scipy_stats.sem(d)
    )
    ci = stats.paired_difference_ci(a, b)
    assert math.isclose(ci.mean, d.mean())
    assert math.isclose(ci.low, low) and math.isclose(ci.high, high)
    assert ci.n == 5 and ci.differences == pytest.approx(tuple(d))
    assert ci.excludes_zero and ci.high < 0


def test_paired_difference_ci_by_hand_two_seeds():
    # d = (1, 3): mean 2, s_d = sqrt(2), t_{0.975, 1} = 12.706...
    ci = stats.paired_difference_ci([2.0, 5.0], [1.0, 2.0])
    half = 12.706204736174707 * math.sqrt(2) / math.sqrt(2)
    assert ci.mean == pytest.approx(2.0)
    assert (ci.low, ci.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert not ci.excludes_zero


def test_paired_difference_ci_confidence_widens_interval():
    a, b = [1.0, 2.0, 4.0, 3.0], [0.5, 1.0, 2.5, 2.9]
    narrow = stats.paired_difference_ci(a, b, confidence=0.8)
    wide = stats.paired_difference_ci(a, b, confidence=0.99)
    assert wide.low < narrow.low < narrow.mean < narrow.high < wide.high


def test_paired_difference_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        stats.paired_difference_ci([1.0], [2.0])
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_difference_ci([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_difference_ci([1.0, 2.0], [0.0, 0.0], confidence=1.5)


def test_verdict_words_follow_the_interval():
    better = stats.paired_difference_ci([1.0, 1.1, 0.9], [2.0, 2.0, 2.0])
    worse = stats.paired_difference_ci([3.0, 3.1, 2.9], [2.0, 2.0, 2.0])
    unclear = stats.paired_difference_ci([1.0, 3.0, 2.2], [2.0, 2.0, 2.0])
    assert "KD lowers test error by 1.00 points" in stats.verdict(better, "KD", "CE")
    assert "excludes 0" in stats.verdict(better, "KD", "CE")
    assert "KD raises test error" in stats.verdict(worse, "KD", "CE")
    assert "no measurable difference" in stats.verdict(unclear, "KD", "CE")
    assert "includes 0" in stats.verdict(unclear, "KD", "CE")
    assert str(better).startswith("-1.00 (95% CI [")


# --------------------------------------------------------------------------- metrics


def test_agreement_counts_matching_argmax():
    a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    b = torch.tensor([[9.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.1, 0.2, 0.7], [0.0, 5.0, 0.0]])
    assert metrics.agreement(a, b) == pytest.approx(0.5)
    assert metrics.agreement(a, a) == 1.0
    assert metrics.agreement(a, a.softmax(-1)) == 1.0  # logits or probabilities


def test_agreement_rejects_bad_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.agreement(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        metrics.agreement(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="floating point"):
        metrics.agreement(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))


def test_ece_of_one_hot_predictions():
    labels = torch.tensor([0, 1, 2, 1])
    right = torch.nn.functional.one_hot(labels, 3).float()
    wrong = torch.nn.functional.one_hot((labels + 1) % 3, 3).float()
    assert metrics.expected_calibration_error(right, labels) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(wrong, labels) == pytest.approx(1.0)


def test_ece_of_a_perfectly_calibrated_model_is_zero():
    # 10 predictions at confidence 0.8 (8 right) and 4 at 0.5 (2 right)
    probs = torch.tensor([[0.8, 0.1, 0.1]] * 10 + [[0.5, 0.3, 0.2]] * 4)
    labels = torch.tensor([0] * 8 + [1, 2] + [0, 0, 1, 2])
    ece = metrics.expected_calibration_error(probs, labels, num_bins=10)
    assert ece == pytest.approx(0.0, abs=1e-6)
    # the same predictions, all right: under-confident by 0.2 and 0.5
    expected = (10 * 0.2 + 4 * 0.5) / 14
    assert metrics.expected_calibration_error(
        probs, torch.zeros(14, dtype=torch.long), num_bins=10
    ) == pytest.approx(expected)


def test_ece_equals_the_hand_computation_and_bins_add_up():
    g = torch.Generator().manual_seed(0)
    probs = (3 * torch.randn(500, 10, generator=g)).softmax(-1)
    labels = torch.randint(0, 10, (500,), generator=g)
    ece = metrics.expected_calibration_error(probs, labels)
    # the same ECE, one prediction at a time: bin b holds confidences in (b/15, (b+1)/15]
    p = probs.double().numpy()
    conf, right = p.max(1), p.argmax(1) == labels.numpy()
    which = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
    by_hand = sum(
        (which == b).sum() / 500 * abs(right[which == b].mean() - conf[which == b].mean())
        for b in range(15) if (which == b).any()
    )
    assert ece == pytest.approx(by_hand, rel=1e-4)
    assert ece > 0.3  # random labels, confident predictions: badly over-confident
    bins = metrics.calibration_bins(probs, labels, num_bins=15)
    assert bins["count"].sum().item() == 500
    assert bins["edges"].shape == (16,) and bins["accuracy"].shape == (15,)
    filled = bins["count"] > 0
    conf = bins["confidence"][filled]
    lower, upper = bins["edges"][:-1][filled], bins["edges"][1:][filled]
    assert ((conf >= lower - 1e-6) & (conf <= upper + 1e-6)).all()
    assert torch.isnan(bins["accuracy"][~filled]).all()


def test_calibration_bins_edges():
    # confidence exactly 1 goes to the last bin, exactly 0.5 (an edge) to the bin below it
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    bins = metrics.calibration_bins(probs, torch.tensor([0, 0]), num_bins=4)
    assert bins["count"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="softmax"):
        metrics.expected_calibration_error(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        metrics.expected_calibration_error(torch.full((5, 2), 0.5), torch.zeros(4).long())
    with pytest.raises(ValueError, match="num_bins"):
        metrics.calibration_bins(torch.full((5, 2), 0.5), torch.zeros(5, dtype=torch.long), 0)


def test_class_recall():
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    labels = torch.tensor([1, 1, 1, 0])
    assert metrics.class_recall(logits, labels, 1) == pytest.approx(2 / 3)
    assert metrics.class_recall(logits, labels, 0) == 1.0
    with pytest.raises(ValueError, match="no input has label"):
        metrics.class_recall(logits[:3], labels[:3], 0)


# --------------------------------------------------------------------------- omitted class


def test_with_class_bias_copies():
    logits = torch.zeros(3, 4)
    shifted = metrics.with_class_bias(logits, 2, 1.5)
    assert (logits == 0).all() and (shifted[:, 2] == 1.5).all() and shifted[:, :2].eq(0).all()
    with pytest.raises(ValueError, match="class index"):
        metrics.with_class_bias(logits, 4, 1.0)


def test_choose_class_bias_picks_the_smallest_best():
    # class 1 is under-scored by 2 on its own examples; a bias in (2, 3) fixes them without
    # stealing the class-0 examples (margin 3)
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([1, 1, 0, 0])
    bias, accuracies = metrics.choose_class_bias(logits, labels, 1, [0, 1, 2.5, 2.75, 4])
    assert bias == 2.5
    assert accuracies.tolist() == [0.5, 0.5, 1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="empty"):
        metrics.choose_class_bias(logits, labels, 1, [])


def test_drop_class_and_validation_split(digits):
    X_fit, y_fit, X_val, y_val = digits
    assert len(y_fit) == 862 and len(y_val) == 216
    # stratified: every class in both parts, in about the same proportion
    assert torch.bincount(y_val, minlength=10).min() >= 20
    X_no3, y_no3 = data.drop_class(X_fit, y_fit, 3)
    assert (y_no3 != 3).all() and len(y_no3) == int((y_fit != 3).sum())
    with pytest.raises(ValueError, match="nothing to drop"):
        data.drop_class(X_no3, y_no3, 3)
    with pytest.raises(ValueError, match="fraction"):
        data.validation_split(X_fit, y_fit, fraction=1.0)


def test_validation_split_is_disjoint_and_repeatable():
    X = torch.arange(200, dtype=torch.float32).reshape(100, 2)
    y = torch.arange(100) % 4
    X_a, y_a, X_b, y_b = data.validation_split(X, y, fraction=0.2, seed=3)
    assert len(y_b) == 20 and torch.bincount(y_b).tolist() == [5, 5, 5, 5]
    assert not set(X_a[:, 0].tolist()) & set(X_b[:, 0].tolist())
    assert torch.equal(data.validation_split(X, y, fraction=0.2, seed=3)[2], X_b)


def test_labelled_subset_is_stratified_and_seeded():
    y = torch.arange(1000) % 10
    kdkit.set_seed(0)
    mask = data.labelled_subset(y, 0.05)
    assert mask.dtype == torch.bool and mask.sum() == 50
    assert torch.bincount(y[mask], minlength=10).tolist() == [5] * 10
    kdkit.set_seed(0)
    assert torch.equal(data.labelled_subset(y, 0.05), mask)
    assert data.labelled_subset(y, 0.001).sum() == 10  # at least one label per class
    with pytest.raises(ValueError, match="fraction"):
        data.labelled_subset(y, 0.0)


@pytest.fixture(scope="module")
def held_out():
    split = data.load_digits_split(test_size=0.4, seed=0)
    return split.X_test, split.y_test


@pytest.mark.slow
def test_omitted_class_bias_brings_back_the_omitted_3s(digits, held_out):
    """Hinton et al. (2015, §3): a student distilled on a transfer set without 3s rarely
    predicts 3; a positive bias on the 3-logit, chosen on validation data, restores them."""
    X_fit, y_fit, X_val, y_val = digits
    X_test, y_test = held_out
    kdkit.set_seed(0)
    teacher = models.mlp(64, [64], 10)
    train.train_classifier(teacher, X_fit, y_fit, num_epochs=20, lr=3e-3, progress=False)
    X_no3, _ = data.drop_class(X_fit, y_fit, 3)
    student = models.mlp(64, [16], 10)
    train.distill_classifier(
        student, train.PrecomputedTeacher(teacher, X_fit), X_no3, None, T=4.0, alpha=1.0,
        num_epochs=20, lr=3e-3, progress=False,
    )
    val_logits = train.predict_logits(student, X_val)
    grid = np.arange(0, 5.01, 0.5)
    bias, accuracies = metrics.choose_class_bias(val_logits, y_val, 3, grid)

    # brute force: validation accuracy at every bias, the 3-logit raised by hand
    three = torch.nn.functional.one_hot(torch.tensor(3), 10).float()
    brute = [((val_logits + b * three).argmax(-1) == y_val).float().mean().item() for b in grid]
    np.testing.assert_allclose(accuracies.numpy(), brute)
    assert bias == min(b for b, a in zip(grid, brute, strict=True) if a == max(brute))
    assert bias > 0 and max(brute) > brute[0]

    # on held-out data the chosen bias raises the recall of 3s, and overall accuracy with it
    test_logits = train.predict_logits(student, X_test)
    is3 = y_test == 3

    def recall_of_3s(b: float) -> float:
        return ((test_logits[is3] + b * three).argmax(-1) == 3).float().mean().item()

    def test_accuracy(b: float) -> float:
        return ((test_logits + b * three).argmax(-1) == y_test).float().mean().item()

    assert recall_of_3s(0.0) < 0.5  # never shown a 3, the student seldom predicts one
    assert recall_of_3s(bias) > recall_of_3s(0.0) + 0.3
    assert test_accuracy(bias) > test_accuracy(0.0) + 0.02
    corrected = metrics.with_class_bias(test_logits, 3, bias)
    assert metrics.class_recall(corrected, y_test, 3) == pytest.approx(recall_of_3s(bias))
    assert metrics.class_recall(test_logits, y_test, 3) == pytest.approx(recall_of_3s(0.0))


# --------------------------------------------------------------------------- models and teacher


def test_small_cnn_shapes_and_checks():
    net = models.small_cnn()
    assert net(torch.rand(5, 64)).shape == (5, 10)
    assert models.small_cnn(num_classes=3, side=4, channels=4)(torch.rand(2, 16)).shape == (2, 3)
    with pytest.raises(ValueError, match="even"):
        models.small_cnn(side=7)
    with pytest.raises(ValueError, match="dropout"):
        models.small_cnn(dropout=1.0)


def test_same_parameters_detects_training_and_architecture():
    kdkit.set_seed(0)
    init = models.mlp(64, [8], 10)
    a, b = copy.deepcopy(init), copy.deepcopy(init)
    assert models.same_parameters(a, b)
    train.train_classifier(b, torch.rand(16, 64), torch.randint(0, 10, (16,)), num_epochs=1,
                           progress=False)
    assert not models.same_parameters(a, b)
    assert not models.same_parameters(a, models.mlp(64, [8, 8], 10))


def test_precomputed_teacher_matches_and_refuses(digits):
    X_fit, y_fit, X_val, _ = digits
    kdkit.set_seed(0)
    teacher = models.small_cnn(channels=4)
    state = torch.get_rng_state()
    cached = train.PrecomputedTeacher(teacher, X_fit)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    rows = torch.tensor([5, 0, 861, 5])
    expected = train.predict_logits(teacher, X_fit[rows])
    assert torch.allclose(cached(X_fit[rows]), expected, atol=1e-5)
    with pytest.raises(ValueError, match="no logits for"):
        cached(X_val[:4])
    with pytest.raises(ValueError, match="no logits for"):
        cached(X_fit[:4] + 1e-3)


def test_distilling_from_the_precomputed_teacher_equals_the_teacher(digits):
    X_fit, y_fit, _, _ = digits
    X, y = X_fit[:200], y_fit[:200].clone()
    y[::3] = -100  # unlabelled transfer rows get only the soft term
    kdkit.set_seed(0)
    teacher = models.mlp(64, [32], 10)
    init = models.mlp(64, [8], 10)
    results = []
    for t in (teacher, train.PrecomputedTeacher(teacher, X)):
        student = copy.deepcopy(init)
        kdkit.set_seed(1)
        train.distill_classifier(student, t, X, y, T=2.0, alpha=0.5, num_epochs=2, progress=False)
        results.append(torch.cat([p.flatten() for p in student.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


# --------------------------------------------------------------------------- plots


def test_paired_differences_plot_draws_each_seed_mean_and_interval():
    diffs = {
        "better": stats.paired_difference_ci([1.0, 1.2, 0.9], [2.0, 2.1, 2.0]),
        "unclear": stats.paired_difference_ci([1.0, 3.0, 2.2], [2.0, 2.0, 2.0]),
        "worse": stats.paired_difference_ci([3.0, 3.3, 2.9], [2.0, 2.0, 2.0]),
    }
    fig = plotting.plot_paired_differences(diffs, title="t")
    rows = seed_rows(fig.axes[0])
    assert list(rows) == ["better", "unclear", "worse"]  # first comparison on top
    for name, d in diffs.items():
        np.testing.assert_allclose(rows[name]["dots"], d.differences)
        assert rows[name]["mean"] == pytest.approx(d.mean)
        np.testing.assert_allclose(rows[name]["interval"], (d.low, d.high))
        assert rows[name]["label"] == f"{d.mean:+.2f}  [{d.low:+.2f}, {d.high:+.2f}]"
    assert [r["color"] for r in rows.values()] == ["tab:green", "0.45", "tab:red"]
    assert "95% t interval" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_paired_differences({})


def test_sweep_heatmap_plot_shows_each_grid_and_the_best_cell():
    grids = {"error": np.arange(6.0).reshape(2, 3), "agreement": 10 - np.arange(6.0).reshape(2, 3)}
    fig = plotting.plot_sweep_heatmap(
        grids, [1, 2], [0.1, 0.5, 1.0], best=(0, 1), higher_is_better=["agreement"]
    )
    panels = [ax for ax in fig.axes if ax.images]  # the rest are colour bars
    assert [ax.get_title() for ax in panels] == list(grids)
    for ax, (label, grid) in zip(panels, grids.items(), strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), grid)
        assert ax.images[0].get_cmap().name == ("viridis_r" if label == "agreement" else "viridis")
        assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in grid.ravel()]
        (outline,) = ax.patches
        assert outline.get_xy() == (0.5, -0.5)  # column 1, row 0
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.5", "1"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2"]
    plt.close(fig)
    with pytest.raises(ValueError, match="must have shape"):
        plotting.plot_sweep_heatmap({"e": np.ones((2, 2))}, [1, 2], [0.1, 0.5, 1.0])


def test_reliability_diagram_plots_accuracy_per_confidence_bin():
    # model "a": 2 right at confidence 0.45 (too few to draw), 10 right at 0.62, 10 at 0.9 with
    # 5 right; model "b": 6 right at 0.99
    rows = [[0.45, 0.3, 0.25]] * 2 + [[0.62, 0.2, 0.18]] * 10 + [[0.9, 0.05, 0.05]] * 10
    probs = {"a": torch.tensor(rows), "b": torch.tensor([[0.99, 0.005, 0.005]] * 6)}
    labels = {"a": torch.tensor([0] * 17 + [1] * 5), "b": torch.zeros(6, dtype=torch.long)}
    fig = plotting.plot_reliability_diagram(probs, labels, num_bins=15, min_count=5)
    ax, ax_n = fig.axes
    diagonal, line_a, line_b = ax.lines
    np.testing.assert_allclose(diagonal.get_ydata(), [0, 1])
    np.testing.assert_allclose(line_a.get_xdata(), [0.62, 0.9], rtol=1e-6)
    np.testing.assert_allclose(line_a.get_ydata(), [1.0, 0.5])
    np.testing.assert_allclose(line_b.get_xdata(), [0.99], rtol=1e-6)
    np.testing.assert_allclose(line_b.get_ydata(), [1.0])
    ece_a = (2 * 0.55 + 10 * 0.38 + 10 * 0.4) / 22
    assert line_a.get_label() == f"a: ECE {100 * ece_a:.2f}%"
    assert line_b.get_label() == "b: ECE 1.00%"
    counts = np.array([bar.get_height() for bar in ax_n.patches]).reshape(2, 15)
    expected = np.zeros((2, 15))
    expected[0, [6, 9, 13]] = [2, 10, 10]  # bins (0.4, 0.467], (0.6, 0.667], (0.867, 0.933]
    expected[1, 14] = 6
    np.testing.assert_allclose(counts, expected)


def test_class_bias_correction_plot_shows_each_seed():
    biases = [0.0, 1.0, 2.0]
    val = [[0.5, 0.6, 0.4], [0.3, 0.75, 0.7]]  # seed 1 chose 2.0, not its best bias
    fig = plotting.plot_class_bias_correction(biases, val, [1.0, 2.0], [0.3, 0.1], [0.8, 0.9])
    ax_v, ax_r = fig.axes
    curve_0, chosen_0, curve_1, chosen_1 = ax_v.lines
    np.testing.assert_allclose(curve_0.get_xdata(), biases)
    np.testing.assert_allclose(curve_0.get_ydata(), [50, 60, 40])
    np.testing.assert_allclose(curve_1.get_ydata(), [30, 75, 70])
    np.testing.assert_allclose([chosen_0.get_xdata()[0], chosen_0.get_ydata()[0]], [1.0, 60])
    np.testing.assert_allclose([chosen_1.get_xdata()[0], chosen_1.get_ydata()[0]], [2.0, 70])
    heights = [bar.get_height() for bar in ax_r.patches]
    np.testing.assert_allclose(heights, [30, 10, 80, 90])  # before per seed, then after
    assert [t.get_text() for t in ax_r.get_xticklabels()] == ["seed 0", "seed 1"]
    with pytest.raises(ValueError, match="one per seed"):
        plotting.plot_class_bias_correction(biases, val, [1.0], [0.3], [0.8])


def _curves(val_error, train_error, val_loss, train_loss):
    return {"step": [0, 10, 20], "val_error": val_error, "train_error": train_error,
            "val_loss": val_loss, "train_loss": train_loss, "loss": [1.0, 0.5]}


def test_train_val_curves_plot_draws_the_seed_mean_of_each_split():
    ce = [_curves([0.9, 0.2, 0.1], [0.9, 0.1, 0.0], [2.0, 0.5, 0.6], [2.0, 0.3, 0.1]),
          _curves([0.9, 0.4, 0.3], [0.9, 0.1, 0.0], [2.0, 0.7, 0.8], [2.0, 0.3, 0.1])]
    kd = [_curves([0.9, 0.2, 0.1], [0.9, 0.2, 0.1], [2.0, 0.5, 0.4], [2.0, 0.4, 0.3])]
    fig = plotting.plot_train_val_curves({"regime": {"CE": ce, "KD": kd}, "other": {"KD": kd}},
                                         title="t")
    assert len(fig.axes) == 4  # rows: error, loss; columns: the two panels
    error_ax, loss_ax = fig.axes[0], fig.axes[2]
    ce_val, ce_train, kd_val, kd_train = error_ax.lines
    np.testing.assert_allclose(ce_val.get_xdata(), [0, 10, 20])
    np.testing.assert_allclose(ce_val.get_ydata(), [90, 30, 20])  # mean of two seeds, in %
    np.testing.assert_allclose(ce_train.get_ydata(), [90, 10, 0])
    np.testing.assert_allclose(kd_train.get_ydata(), [90, 20, 10])
    assert ce_val.get_linestyle() == "-" and ce_train.get_linestyle() == "--"
    assert ce_val.get_color() == ce_train.get_color() != kd_val.get_color()
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [2.0, 0.6, 0.7])
    assert loss_ax.get_yscale() == "log" and error_ax.get_ylim() == (0, 50)  # 2.5 × the top final
    assert error_ax.get_legend() is not None and loss_ax.get_legend() is None
    only_loss = plotting.plot_train_val_curves({"r": {"KD": kd}}, quantities=("loss",))
    assert len(only_loss.axes) == 1
    with pytest.raises(ValueError, match="learning curves"):
        plotting.plot_train_val_curves({"r": {"CE": [{"loss": [1.0]}]}})
    with pytest.raises(ValueError, match="quantities"):
        plotting.plot_train_val_curves({"r": {"KD": kd}}, quantities=("accuracy",))
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_train_val_curves({})


def test_size_speed_accuracy_plot_places_each_model_and_sizes_bubbles_by_parameters():
    points = {"teacher": (70.0, 99.0, 150_000), "student": (0.08, 96.5, 3_500)}
    fig = plotting.plot_size_speed_accuracy(points)
    (ax,) = fig.axes
    teacher, student = ax.collections
    assert teacher.get_offsets()[0].tolist() == [70.0, 99.0]
    assert student.get_offsets()[0].tolist() == [0.08, 96.5]
    assert teacher.get_sizes()[0] > 10 * student.get_sizes()[0] > 0
    assert ax.get_xscale() == "log"
    assert any("150,000 parameters" in t.get_text() for t in ax.texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="positive"):
        plotting.plot_size_speed_accuracy({"broken": (0.0, 90.0, 10)})
