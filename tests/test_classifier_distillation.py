"""Notebook 04's pieces, in smoke configurations: paired CIs, fidelity and calibration metrics,
the omitted-class pipeline (drop a class, distil, choose a bias on validation data), the
same-initialisation check and the precomputed teacher."""

from __future__ import annotations

import copy
import math

import matplotlib
import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

import kdkit
from kdkit import data, metrics, models, plotting, stats, train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

torch.set_num_threads(1)


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


def test_ece_is_bounded_and_bins_add_up():
    g = torch.Generator().manual_seed(0)
    probs = (3 * torch.randn(500, 10, generator=g)).softmax(-1)
    labels = torch.randint(0, 10, (500,), generator=g)
    ece = metrics.expected_calibration_error(probs, labels)
    assert 0.0 <= ece <= 1.0
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


def test_omitted_class_pipeline_smoke(digits):
    X_fit, y_fit, X_val, y_val = digits
    kdkit.set_seed(0)
    teacher = models.mlp(64, [64], 10)
    train.train_classifier(teacher, X_fit, y_fit, num_epochs=3, progress=False)
    X_no3, _ = data.drop_class(X_fit, y_fit, 3)
    student = models.mlp(64, [16], 10)
    train.distill_classifier(
        student, train.PrecomputedTeacher(teacher, X_fit), X_no3, None, T=8.0, alpha=1.0,
        num_epochs=2, progress=False,
    )
    val_logits = train.predict_logits(student, X_val)
    grid = np.arange(0, 5.01, 0.5)
    bias, accuracies = metrics.choose_class_bias(val_logits, y_val, 3, grid)
    assert bias in grid and accuracies.shape == (len(grid),)
    assert accuracies.max() >= accuracies[0]
    corrected = metrics.with_class_bias(val_logits, 3, bias)
    # raising a class's logit can only add predictions of that class
    assert metrics.class_recall(corrected, y_val, 3) >= metrics.class_recall(val_logits, y_val, 3)


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


def test_plots_return_figures():
    diffs = {
        "better": stats.paired_difference_ci([1.0, 1.2, 0.9], [2.0, 2.1, 2.0]),
        "unclear": stats.paired_difference_ci([1.0, 3.0, 2.2], [2.0, 2.0, 2.0]),
    }
    figs = [
        plotting.plot_paired_differences(diffs, title="t"),
        plotting.plot_sweep_heatmap(
            {"error": np.ones((2, 3)), "agreement": np.zeros((2, 3))}, [1, 2], [0.1, 0.5, 1.0],
            best=(0, 1), higher_is_better=["agreement"],
        ),
        plotting.plot_reliability_diagram(
            {"m": torch.randn(50, 4).softmax(-1)}, {"m": torch.randint(0, 4, (50,))}, min_count=1
        ),
        plotting.plot_class_bias_correction(
            [0, 1, 2], [[0.5, 0.6, 0.4]], [1.0], [0.3], [0.8]
        ),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    for f in figs:
        plt.close(f)
    with pytest.raises(ValueError, match="must have shape"):
        plotting.plot_sweep_heatmap({"e": np.ones((2, 2))}, [1, 2], [0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_paired_differences({})
