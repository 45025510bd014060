"""Tests of the digits pipeline (kdkit.data, kdkit.models, kdkit.train) on smoke-sized runs,
and of the plot functions notebook 01 uses."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figure_readers import seed_rows
from matplotlib.figure import Figure

import kdkit
from kdkit import plotting
from kdkit.data.digits import jitter_images, load_digits_split
from kdkit.models import count_parameters, mlp
from kdkit.train import distill_classifier, evaluate, predict_logits, train_classifier


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _small(digits, n: int = 256):
    return digits.X_train[:n], digits.y_train[:n]


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------ data


def test_digits_split_shapes_types_and_range(digits):
    assert digits.X_train.shape == (1078, 64) and digits.X_test.shape == (719, 64)
    assert digits.y_train.shape == (1078,) and digits.y_test.shape == (719,)
    assert digits.X_train.dtype == torch.float32 and digits.y_train.dtype == torch.long
    for X in (digits.X_train, digits.X_test):
        assert X.min() >= 0.0 and X.max() <= 1.0
    assert digits.X_train.max() == 1.0  # scaled by the true maximum (16), not squashed
    assert set(digits.y_train.tolist()) == set(range(10))
    assert digits.class_names == [str(d) for d in range(10)]


def test_digits_split_is_stratified(digits):
    train_counts = torch.bincount(digits.y_train, minlength=10).double()
    test_counts = torch.bincount(digits.y_test, minlength=10).double()
    total = train_counts + test_counts
    # every class is split 60/40 up to rounding
    assert torch.all((train_counts - 0.6 * total).abs() <= 1.0)
    assert torch.all((test_counts - 0.4 * total).abs() <= 1.0)


def test_digits_split_is_deterministic():
    a, b = load_digits_split(seed=3), load_digits_split(seed=3)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    c = load_digits_split(seed=4)
    assert not torch.equal(a.X_train, c.X_train)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_digits_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        load_digits_split(test_size=test_size)


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """An 8×8 image moved by (dy, dx) pixels, zero fill: the reference for jitter_images."""
    out = torch.zeros_like(image)
    src = image[max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
    out[max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
    return out


def test_jitter_shifts_each_image_by_at_most_one_pixel(digits):
    X = digits.X_train[:64]
    kdkit.set_seed(0)
    J = jitter_images(X, max_shift=1)
    assert J.shape == X.shape and J.dtype == X.dtype
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    used = set()
    for x, j in zip(X.reshape(-1, 8, 8), J.reshape(-1, 8, 8), strict=True):
        matches = [s for s in shifts if torch.equal(j, _shifted(x, *s))]
        assert matches, "a jittered image is not a ≤1-pixel shift of its original"
        used.update(matches)
    assert len(used) > 3  # the shifts vary between images


def test_jitter_is_reproducible_and_zero_shift_is_identity(digits):
    X = digits.X_train[:32]
    kdkit.set_seed(5)
    a = jitter_images(X, 1)
    kdkit.set_seed(5)
    b = jitter_images(X, 1)
    assert torch.equal(a, b)
    assert torch.equal(jitter_images(X, max_shift=0), X)


# ---------------------------------------------------------------------------- models


def test_mlp_shapes_and_parameter_count():
    net = mlp(64, (32, 16), 10)
    assert net(torch.zeros(5, 64)).shape == (5, 10)
    assert count_parameters(net) == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    with_dropout = mlp(64, (32, 16), 10, dropout=0.2)
    assert count_parameters(with_dropout) == count_parameters(net)  # dropout has no weights
    assert sum(isinstance(m, torch.nn.Dropout) for m in with_dropout) == 2
    assert mlp(64, (), 10)(torch.zeros(2, 64)).shape == (2, 10)  # no hidden layer: linear


def test_count_parameters_counts_all_or_only_trainable():
    net = mlp(4, (3,), 2)
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == (4 * 3 + 3) + (3 * 2 + 2)
    assert count_parameters(net, trainable_only=True) == 3 + (3 * 2 + 2)


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_mlp_rejects_bad_dropout(dropout):
    with pytest.raises(ValueError, match="dropout"):
        mlp(64, (8,), 10, dropout=dropout)


# ----------------------------------------------------------------------------- train


def test_train_classifier_reduces_loss(digits):
    X, y = _small(digits)
    kdkit.set_seed(0)
    net = mlp(64, (32,), 10)
    history = train_classifier(net, X, y, num_epochs=20, lr=3e-3, progress=False)
    assert len(history["loss"]) == 20
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert not net.training  # left in eval mode
    assert evaluate(net, X, y)["accuracy"] > 0.8


def test_train_classifier_is_bitwise_deterministic(digits):
    X, y = _small(digits, 128)

    def run():
        kdkit.set_seed(1)
        net = mlp(64, (16,), 10, dropout=0.2)
        history = train_classifier(net, X, y, num_epochs=3, jitter=1, progress=False)
        return net, history

    (net_a, hist_a), (net_b, hist_b) = run(), run()
    assert hist_a == hist_b
    assert _states_equal(net_a, net_b)


@pytest.fixture(scope="module")
def small_teacher(digits):
    X, y = _small(digits, 512)
    kdkit.set_seed(0)
    teacher = mlp(64, (64,), 10)
    train_classifier(teacher, X, y, num_epochs=20, lr=3e-3, progress=False)
    return teacher


def _agreement(a: torch.nn.Module, b: torch.nn.Module, X: torch.Tensor) -> float:
    return (predict_logits(a, X).argmax(-1) == predict_logits(b, X).argmax(-1)).float().mean()


def test_distill_without_labels_moves_student_towards_teacher(digits, small_teacher):
    X = digits.X_train[:512]
    teacher_before = copy.deepcopy(small_teacher.state_dict())
    kdkit.set_seed(0)
    student = mlp(64, (16,), 10)
    before = _agreement(student, small_teacher, digits.X_test)
    history = distill_classifier(
        student, small_teacher, X, None, T=2.0, alpha=1.0, num_epochs=20, lr=3e-3, progress=False
    )
    after = _agreement(student, small_teacher, digits.X_test)
    assert after > before + 0.3 and after > 0.7
    assert all(loss > 0 for loss in history["loss"])  # unlabelled rows do train the student
    assert history["loss"][-1] < history["loss"][0]
    for name, w in small_teacher.state_dict().items():  # the teacher is only read
        assert torch.equal(w, teacher_before[name])


def test_distill_requires_alpha_one_without_labels(digits, small_teacher):
    X = digits.X_train[:64]
    with pytest.raises(ValueError, match="alpha"):
        distill_classifier(mlp(64, (8,), 10), small_teacher, X, None, alpha=0.5, num_epochs=1)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_distill_rejects_alpha_outside_unit_interval(digits, small_teacher, alpha):
    X, y = _small(digits, 64)
    with pytest.raises(ValueError, match="alpha"):
        distill_classifier(mlp(64, (8,), 10), small_teacher, X, y, alpha=alpha, num_epochs=1)


def test_distill_accepts_unlabelled_entries(digits, small_teacher):
    X, y = _small(digits, 256)
    y_partial = y.clone()
    y_partial[::2] = -100  # half the rows have no label: soft targets only
    kdkit.set_seed(0)
    student = mlp(64, (16,), 10)
    history = distill_classifier(
        student, small_teacher, X, y_partial, T=2.0, alpha=0.5, num_epochs=3, progress=False
    )
    assert all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]
    # With no labels at all the hard term is empty, but the soft term still trains.
    none_labelled = torch.full_like(y, -100)
    history = distill_classifier(
        mlp(64, (16,), 10),
        small_teacher,
        X,
        none_labelled,
        alpha=0.5,
        num_epochs=1,
        progress=False,
    )
    assert history["loss"][0] > 0


def test_distill_same_start_same_result(digits, small_teacher):
    X, y = _small(digits, 128)
    kdkit.set_seed(2)
    init = copy.deepcopy(mlp(64, (16,), 10).state_dict())

    def run():
        student = mlp(64, (16,), 10)
        student.load_state_dict(init)
        kdkit.set_seed(2)
        distill_classifier(student, small_teacher, X, y, num_epochs=2, jitter=1, progress=False)
        return student

    assert _states_equal(run(), run())


def test_evaluate_and_predict_logits(digits, small_teacher):
    result = evaluate(small_teacher, digits.X_test, digits.y_test)
    assert set(result) == {"accuracy", "loss"}
    logits = predict_logits(small_teacher, digits.X_test, batch_size=100)
    assert logits.shape == (719, 10)
    assert torch.allclose(logits, predict_logits(small_teacher, digits.X_test))
    # the reported numbers are those of the predictions, computed here independently
    with torch.no_grad():
        direct = small_teacher.eval()(digits.X_test)
    expected_acc = float(np.mean(direct.argmax(-1).numpy() == digits.y_test.numpy()))
    log_probs = direct.double().log_softmax(-1).numpy()
    expected_loss = -float(np.mean(log_probs[np.arange(719), digits.y_test.numpy()]))
    assert result["accuracy"] == pytest.approx(expected_acc, abs=1e-6)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    # and they show the trained teacher's effect: far above chance (0.1) and an untrained net
    kdkit.set_seed(0)
    untrained = evaluate(mlp(64, (64,), 10), digits.X_test, digits.y_test)
    assert result["accuracy"] > 0.8 and result["accuracy"] > untrained["accuracy"] + 0.5
    assert result["loss"] < untrained["loss"] - 1.0


def test_bad_shapes_raise(digits, small_teacher):
    X, y = _small(digits, 32)
    net = mlp(64, (8,), 10)
    with pytest.raises(ValueError, match="X must have shape"):
        train_classifier(net, X.reshape(32, 8, 8), y, num_epochs=1)
    with pytest.raises(ValueError, match="y must have shape"):
        train_classifier(net, X, y[:-1], num_epochs=1)
    with pytest.raises(ValueError, match="y must have shape"):
        distill_classifier(net, small_teacher, X, y[:, None], alpha=0.5, num_epochs=1)
    with pytest.raises(ValueError, match="X must have shape"):
        evaluate(net, X[0], y)
    with pytest.raises(ValueError, match="y must have shape"):
        evaluate(net, X, y[:10])


# ----------------------------------------------- learning curves and schedules (notebook 04)


def _runs_with_and_without_val(run):
    """``run(val)`` twice from the same seed, without and with a validation set: the models,
    histories and the global RNG state each run leaves behind."""
    out = []
    for val in (None, "val"):
        kdkit.set_seed(3)
        model, history = run(val)
        out.append((model, history, torch.get_rng_state()))
    return out


def test_learning_curves_change_no_weight_of_training(digits, small_teacher):
    X, y = _small(digits, 192)
    val = (digits.X_test[:100], digits.y_test[:100])
    y_partial = y.clone()
    y_partial[::3] = -100  # transfer rows: the KD term only
    options = dict(num_epochs=3, batch_size=32, jitter=1, lr_schedule="cosine", progress=False)

    def trained(val_or_none):  # dropout and jitter: the run draws random numbers all along
        net = mlp(64, (16,), 10, dropout=0.3)
        return net, train_classifier(net, X, y, val=val_or_none and val, **options)

    def distilled(val_or_none):
        net = mlp(64, (16,), 10, dropout=0.3)
        return net, distill_classifier(net, small_teacher, X, y_partial, T=2.0, alpha=0.5,
                                       val=val_or_none and val, **options)

    for run in (trained, distilled):
        (plain, hist_plain, rng_plain), (curved, hist_curved, rng_curved) = (
            _runs_with_and_without_val(run))
        assert _states_equal(plain, curved)  # bit for bit
        assert hist_plain["loss"] == hist_curved["loss"]
        assert torch.equal(rng_plain, rng_curved)  # the evaluation drew no random number
        assert set(hist_plain) == {"loss"}
        assert len(hist_curved["val_error"]) == 4  # step 0, then after each epoch


def test_learning_curve_points_are_the_models_errors_at_those_steps(digits, small_teacher):
    X, y = _small(digits, 200)
    y_partial = y.clone()
    y_partial[50:] = -100  # only the first 50 rows are labelled
    val = (digits.X_test[:150], digits.y_test[:150])
    kdkit.set_seed(0)
    net = mlp(64, (16,), 10)
    start = evaluate(net, *val)
    history = distill_classifier(net, small_teacher, X, y_partial, T=2.0, alpha=0.5,
                                 num_epochs=7, batch_size=64, val=val, eval_every=3,
                                 progress=False)
    assert history["step"] == [0, 12, 24, 28]  # 4 batches per epoch: epochs 0, 3, 6, 7 (last)
    assert history["val_error"][0] == pytest.approx(1 - start["accuracy"])
    assert history["val_loss"][0] == pytest.approx(start["loss"])
    end_val, end_fit = evaluate(net, *val), evaluate(net, X[:50], y[:50])  # labelled rows only
    assert history["val_error"][-1] == pytest.approx(1 - end_val["accuracy"])
    assert history["val_loss"][-1] == pytest.approx(end_val["loss"])
    assert history["train_error"][-1] == pytest.approx(1 - end_fit["accuracy"])
    assert history["train_loss"][-1] == pytest.approx(end_fit["loss"])
    assert history["train_loss"][-1] < history["train_loss"][0]
    unlabelled = distill_classifier(mlp(64, (8,), 10), small_teacher, X, None, alpha=1.0,
                                    num_epochs=1, val=val, progress=False)
    assert np.isnan(unlabelled["train_error"]).all() and not np.isnan(unlabelled["val_error"]).any()


def _reference_linear_decay(net, X, y, *, num_epochs, batch_size, lr):
    """train_classifier's loop written out with torch's own pieces: AdamW and a LambdaLR whose
    rate falls linearly from lr to 0 over all steps."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    total = num_epochs * -(-len(X) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / total)
    for _ in range(num_epochs):
        net.train()
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return sched.get_last_lr()[0]


def test_linear_lr_schedule_matches_a_hand_written_decay(digits):
    X, y = _small(digits, 100)
    kdkit.set_seed(4)
    init = mlp(64, (16,), 10)
    runs = {}
    for schedule in ("linear", "constant", "reference"):
        net = copy.deepcopy(init)
        kdkit.set_seed(5)
        if schedule == "reference":
            last_lr = _reference_linear_decay(net, X, y, num_epochs=3, batch_size=32, lr=0.01)
        else:
            train_classifier(net, X, y, num_epochs=3, batch_size=32, lr=0.01,
                             lr_schedule=schedule, progress=False)
        runs[schedule] = net
    assert last_lr == 0.0  # the reference decays all the way
    assert _states_equal(runs["linear"], runs["reference"])
    assert not _states_equal(runs["linear"], runs["constant"])


def test_curve_and_schedule_options_are_checked(digits, small_teacher):
    X, y = _small(digits, 32)
    net = mlp(64, (8,), 10)
    with pytest.raises(ValueError, match="eval_every"):
        train_classifier(net, X, y, num_epochs=1, val=(X, y), eval_every=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        distill_classifier(net, small_teacher, X, y, num_epochs=1, lr_schedule="step")
    with pytest.raises(ValueError, match="val must be a pair"):
        train_classifier(net, X, y, num_epochs=1, val=X)
    with pytest.raises(ValueError, match="y must have shape"):
        train_classifier(net, X, y, num_epochs=1, val=(X, y[:5]))


# -------------------------------------------------------------------- plotting (nb 01)


def _bar_heights(ax) -> np.ndarray:
    return np.array([rect.get_height() for rect in ax.patches])


def test_plot_digits_with_probs(digits):
    from matplotlib.colors import to_rgba

    probs = torch.softmax(2 * torch.randn(3, 10, generator=torch.Generator().manual_seed(0)), -1)
    probs[1] = torch.tensor([0.02, 0.05, 0.03, 0.7, 2e-9, 0.05, 0.05, 0.05, 0.03, 0.02])
    labels = torch.tensor([int(probs[0].argmax()), 8, int(probs[2].argmax())])
    names = [f"d{i}" for i in range(10)]
    fig = plotting.plot_digits_with_probs(digits.X_test[:3], labels, probs, names)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 4
    p = probs.double().numpy()
    for r in range(3):
        image_ax, label_ax, prob_ax, log_ax = fig.axes[4 * r : 4 * r + 4]
        np.testing.assert_allclose(
            image_ax.images[0].get_array(), digits.X_test[r].reshape(8, 8).numpy()
        )
        top = int(p[r].argmax())
        assert image_ax.get_title() == f"label d{int(labels[r])}, teacher d{top}"
        np.testing.assert_allclose(_bar_heights(label_ax), np.eye(10)[int(labels[r])])
        np.testing.assert_allclose(_bar_heights(prob_ax), p[r], rtol=1e-6)
        assert [t.get_text() for t in prob_ax.get_xticklabels()] == names
        assert prob_ax.patches[top].get_facecolor() == to_rgba("C1")
        assert log_ax.get_yscale() == "log"
        floor = log_ax.get_ylim()[0]
        np.testing.assert_allclose(_bar_heights(log_ax), np.clip(p[r], floor, None), rtol=1e-6)
    assert fig.axes[4].get_title(loc="center").endswith("teacher d3")
    assert fig.axes[4].title.get_color() == "C3"  # row 1: the teacher's top class is wrong
    assert fig.axes[7].get_ylim()[0] == pytest.approx(1e-10)  # a decade below 2e-9
    assert (
        len(
            plotting.plot_digits_with_probs(
                digits.X_test[:2], labels[:2], probs[:2], log_scale=False
            ).axes
        )
        == 2 * 3
    )
    with pytest.raises(ValueError, match="same N"):
        plotting.plot_digits_with_probs(digits.X_test[:2], labels, probs)


def test_plot_soft_label_spread():
    logits = 4 * torch.randn(50, 10)
    temps = [1.0, 4.0]
    probs = {T: torch.softmax(logits / T, -1) for T in temps}
    mass = {T: 1 - p.max(-1).values for T, p in probs.items()}
    ent = {T: -(p * p.log()).sum(-1) for T, p in probs.items()}
    fig = plotting.plot_soft_label_spread(mass, ent, num_classes=10, floor=1e-4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_mass, ax_entropy = fig.axes
    assert len(ax_mass.patches) == len(temps) and len(ax_entropy.patches) == len(temps)
    assert ax_mass.get_xscale() == "log"
    mass_bins, entropy_bins = np.logspace(-4, 0, 37), np.linspace(0, np.log(10), 31)
    for k, T in enumerate(temps):
        m, H = np.clip(mass[T].double().numpy(), 1e-4, 1.0), ent[T].double().numpy()
        # a step histogram's outline: the count of bin i is the height of vertices 2i+1, 2i+2
        counts_m = ax_mass.patches[k].get_xy()[1:-1:2, 1]
        counts_H = ax_entropy.patches[k].get_xy()[1:-1:2, 1]
        np.testing.assert_allclose(counts_m, np.histogram(m, mass_bins)[0])
        np.testing.assert_allclose(counts_H, np.histogram(H, entropy_bins)[0])
        assert ax_mass.lines[k].get_xdata()[0] == pytest.approx(np.median(m))
        assert ax_entropy.lines[k].get_xdata()[0] == pytest.approx(H.mean())
        assert ax_entropy.patches[k].get_label() == f"T = {T:g}: mean {H.mean():.2f} nats"
    with pytest.raises(ValueError, match="same"):
        plotting.plot_soft_label_spread(mass, {1.0: ent[1.0]}, num_classes=10)


def test_plot_class_similarity():
    S = torch.softmax(torch.randn(4, 4) + 3 * torch.eye(4), -1)
    fig = plotting.plot_class_similarity(S, ["a", "b", "c", "d"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heat map and colour bar
    shown = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    assert np.isnan(np.diag(shown)).all()
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(shown[off], S.numpy()[off])
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{v:.2f}" for v in S.numpy().ravel()]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c", "d"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="square"):
        plotting.plot_class_similarity(torch.ones(3, 4))


def test_plot_target_gradients():
    q = torch.softmax(torch.randn(10), -1)
    y = torch.nn.functional.one_hot(torch.tensor(3), 10).float()
    g = {"one-hot": 0.1 - y, "soft": 0.2 - q}
    fig = plotting.plot_target_gradients({"one-hot": y, "soft": q}, g, true_class=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_t, ax_g = fig.axes
    assert len(ax_t.patches) == 20 and len(ax_g.patches) == 20
    # bars of the first series, then of the second
    np.testing.assert_allclose(_bar_heights(ax_t), np.concatenate([y, q]), rtol=1e-6)
    minus_g = np.concatenate([-(0.1 - y), -(0.2 - q)])  # up: the logit is pushed up
    np.testing.assert_allclose(_bar_heights(ax_g), minus_g, rtol=1e-6)
    assert [c.get_label() for c in ax_g.containers] == ["one-hot", "soft"]
    assert ax_t.get_xticklabels()[3].get_fontweight() == "bold"
    with pytest.raises(ValueError, match="same"):
        plotting.plot_target_gradients({"one-hot": y}, {"soft": q})


def test_plot_accuracy_comparison():
    results = {"hard": [0.80, 0.82, 0.85], "soft": [0.86, 0.87, 0.90], "one run": [0.88]}
    fig = plotting.plot_accuracy_comparison(results, reference={"teacher": 0.95})
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    rows = seed_rows(ax)
    assert list(rows) == ["hard", "soft", "one run"]  # first setting on top
    for k, (name, runs) in enumerate(results.items()):
        np.testing.assert_allclose(rows[name]["dots"], runs)
        assert rows[name]["mean"] == pytest.approx(np.mean(runs))
        assert rows[name]["interval"] is None  # means only, no intervals
        assert rows[name]["label"] == f"mean {np.mean(runs):.3f}"
        assert rows[name]["color"] == f"C{k}"
    (teacher,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert teacher.get_xdata()[0] == 0.95 and teacher.get_label() == "teacher (0.950)"
    assert ax.get_xlim()[1] >= 0.95  # the teacher's line is in view
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_accuracy_comparison({})
