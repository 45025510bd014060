"""kdkit.family (notebook 08): the ensemble teacher, multi-stage distillation, mutual learning
and relation-based training, each checked against a hand computation in a tiny setting."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kdkit
from kdkit import family, losses, models, plotting, relations, train


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 6, generator=g)
    y = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0).long()  # 4 classes
    return X, y


def tiny(seed: int = 0) -> nn.Sequential:
    kdkit.set_seed(seed)
    return models.mlp(6, [8], 4)


# ------------------------------------------------------------------------ the ensemble


def test_geometric_ensemble_is_the_softmax_of_the_mean_logits(toy):
    X, _ = toy
    members = [tiny(s) for s in range(3)]
    out = family.EnsembleTeacher(members)(X)  # (N, C) log-probabilities
    mean_logits = torch.stack([m(X) for m in members]).mean(0)
    for T in (1.0, 4.0):  # the same distribution at every temperature
        assert torch.allclose((out / T).softmax(-1), (mean_logits / T).softmax(-1), atol=1e-6)


def test_arithmetic_ensemble_averages_probabilities(toy):
    X, _ = toy
    members = [tiny(s) for s in range(3)]
    out = family.EnsembleTeacher(members, combine="arithmetic")(X)
    mean_p = torch.stack([m(X).softmax(-1) for m in members]).mean(0)
    assert torch.allclose(out.exp(), mean_p, atol=1e-6)
    assert torch.allclose(out.exp().sum(-1), torch.ones(len(X)), atol=1e-6)


def test_an_ensemble_of_one_is_that_model(toy):
    X, _ = toy
    m = tiny()
    assert torch.allclose(family.EnsembleTeacher([m])(X), m(X).log_softmax(-1), atol=1e-6)


def test_ensemble_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        family.EnsembleTeacher([])
    with pytest.raises(ValueError, match="combine"):
        family.EnsembleTeacher([tiny()], combine="median")


# ------------------------------------------------------------------------ the embedder


def test_embedder_is_the_body_and_shares_weights(toy):
    X, _ = toy
    m = tiny()
    body = family.embedder(m)
    assert body(X).shape == (len(X), 8)
    assert torch.allclose(m[-1](body(X)), m(X))
    assert body[0].weight is m[0].weight
    with pytest.raises(ValueError, match="nn.Linear"):
        family.embedder(nn.Sequential(nn.Linear(6, 4), nn.ReLU()))


# ------------------------------------------------------------------------ multi-stage


def test_a_chain_of_two_is_distill_classifier_from_the_precomputed_teacher(toy):
    X, y = toy
    teacher = tiny(1)
    train.train_classifier(teacher, X, y, num_epochs=3, progress=False)
    a, b = tiny(2), tiny(2)
    options = dict(num_epochs=3, batch_size=16, lr=1e-2, progress=False)
    family.distill_chain([teacher, a], X, y, T=2.0, alpha=0.5, seed=7, **options)
    kdkit.set_seed(7)
    train.distill_classifier(b, train.PrecomputedTeacher(teacher, X), X, y, T=2.0, alpha=0.5,
                             **options)
    assert models.same_parameters(a, b)


def test_a_chain_distils_each_stage_from_the_previous_one(toy):
    X, y = toy
    teacher, ta, stu = tiny(1), models.mlp(6, [16], 4), tiny(3)
    ta_copy, stu_copy = copy.deepcopy(ta), copy.deepcopy(stu)
    options = dict(num_epochs=2, batch_size=16, lr=1e-2, progress=False)
    family.distill_chain([teacher, ta, stu], X, y, T=2.0, alpha=0.5, seed=5, **options)
    for prev, model in ((teacher, ta_copy), (ta, stu_copy)):  # replay each stage by hand
        kdkit.set_seed(5)
        train.distill_classifier(model, train.PrecomputedTeacher(prev, X), X, y, T=2.0,
                                 alpha=0.5, **options)
    assert models.same_parameters(ta, ta_copy) and models.same_parameters(stu, stu_copy)


def test_chain_refuses_bad_input(toy):
    X, y = toy
    with pytest.raises(ValueError, match="at least one student"):
        family.distill_chain([tiny()], X, y, T=2.0, alpha=0.5, num_epochs=1)
    with pytest.raises(ValueError, match="jitter"):
        family.distill_chain([tiny(), tiny()], X, y, T=2.0, alpha=0.5, num_epochs=1, jitter=1)


# ------------------------------------------------------------------------ mutual learning


def _mutual_step_by_hand(students, X, y, idx, T, alpha, lr):
    """One step of deep mutual learning, written out for two students."""
    opts = [torch.optim.AdamW(s.parameters(), lr=lr, weight_decay=0.0) for s in students]
    z = [s(X[idx]) for s in students]
    for k, opt in enumerate(opts):
        other = z[1 - k].detach()
        kl = T**2 * F.kl_div((z[k] / T).log_softmax(-1), (other / T).log_softmax(-1),
                             log_target=True, reduction="batchmean")
        loss = (1 - alpha) * F.cross_entropy(z[k], y[idx]) + alpha * kl
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_one_epoch_of_mutual_learning_matches_the_formula(toy):
    X, y = toy
    a, b = tiny(1), tiny(2)
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    kdkit.set_seed(3)
    family.mutual_learning([a, b], X, y, T=2.0, alpha=0.3, num_epochs=1, lr=1e-2,
                           batch_size=len(X), progress=False)
    kdkit.set_seed(3)
    idx = torch.randperm(len(X))  # the same batch order
    _mutual_step_by_hand([a2, b2], X, y, idx, T=2.0, alpha=0.3, lr=1e-2)
    assert models.same_parameters(a, a2) and models.same_parameters(b, b2)


def test_mutual_learning_with_alpha_zero_is_two_independent_ce_runs(toy):
    X, y = toy
    a, b = tiny(1), tiny(2)
    alone = copy.deepcopy(a)
    kdkit.set_seed(4)
    family.mutual_learning([a, b], X, y, alpha=0.0, num_epochs=3, lr=1e-2, batch_size=16,
                           progress=False)
    kdkit.set_seed(4)
    train.train_classifier(alone, X, y, num_epochs=3, lr=1e-2, batch_size=16, progress=False)
    assert models.same_parameters(a, alone)


def test_mutual_learning_pulls_the_students_together(toy):
    X, y = toy
    a, b = tiny(1), tiny(2)
    before = losses.kd_kl_loss(a(X), b(X)).item()
    kdkit.set_seed(0)
    family.mutual_learning([a, b], X, y, alpha=1.0, num_epochs=20, lr=1e-2, batch_size=20,
                           progress=False)
    assert losses.kd_kl_loss(a(X), b(X)).item() < 0.5 * before


def test_mutual_learning_refuses_bad_input(toy):
    X, y = toy
    a = tiny()
    with pytest.raises(ValueError, match="two distinct"):
        family.mutual_learning([a, a], X, y, num_epochs=1)
    with pytest.raises(ValueError, match="alpha"):
        family.mutual_learning([a, tiny(1)], X, y, alpha=1.5, num_epochs=1)
    with pytest.raises(ValueError, match="same N"):
        family.mutual_learning([a, tiny(1)], X, y[:-1], num_epochs=1)


# ------------------------------------------------------------------------ relations


def test_one_rkd_step_matches_the_formula(toy):
    X, y = toy
    teacher = models.mlp(6, [12], 4)
    teacher_body = family.embedder(teacher)
    a = tiny(1)
    b = copy.deepcopy(a)
    kdkit.set_seed(2)
    family.distill_relations(a, teacher, teacher_body, X, y, T=2.0, alpha=0.5,
                             distance_weight=1.0, angle_weight=2.0, angle_rows=10, num_epochs=1,
                             lr=1e-2, batch_size=len(X), progress=False)
    kdkit.set_seed(2)
    idx = torch.randperm(len(X))
    opt = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.0)
    with torch.no_grad():
        e_t, z_t = teacher_body(X[idx]), teacher(X[idx])
    e = b[:-1](X[idx])
    z = b[-1](e)
    loss = (0.5 * F.cross_entropy(z, y[idx]) + 0.5 * losses.kd_kl_loss(z, z_t, T=2.0)
            + relations.rkd_distance_loss(e, e_t)
            + 2.0 * relations.rkd_angle_loss(e[:10], e_t[:10]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert models.same_parameters(a, b)


def test_rkd_with_zero_weights_and_alpha_is_ce(toy):
    X, y = toy
    a = tiny(1)
    b = copy.deepcopy(a)
    body = family.embedder(tiny(5))
    kdkit.set_seed(6)
    family.distill_relations(a, None, body, X, y, alpha=0.0,
                             distance_weight=0.0, angle_weight=0.0, num_epochs=2, lr=1e-2,
                             batch_size=16, progress=False)
    kdkit.set_seed(6)
    train.train_classifier(b, X, y, num_epochs=2, lr=1e-2, batch_size=16, progress=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_rkd_brings_the_students_geometry_towards_the_teachers(toy):
    X, y = toy
    teacher_body = family.embedder(models.mlp(6, [12], 4))
    stu = tiny(1)
    before = relations.rkd_distance_loss(stu[:-1](X), teacher_body(X)).item()
    kdkit.set_seed(0)
    family.distill_relations(stu, None, teacher_body, X, y, alpha=0.0, distance_weight=1.0,
                             angle_weight=0.0, num_epochs=40, lr=1e-2, batch_size=40,
                             progress=False)
    assert relations.rkd_distance_loss(stu[:-1](X), teacher_body(X)).item() < 0.5 * before


def test_rkd_refuses_bad_input(toy):
    X, y = toy
    body = family.embedder(tiny(5))
    with pytest.raises(ValueError, match="pass the teacher"):
        family.distill_relations(tiny(), None, body, X, y, alpha=0.5, num_epochs=1)
    with pytest.raises(ValueError, match="angle_rows"):
        family.distill_relations(tiny(), None, body, X, y, angle_rows=2, num_epochs=1)
    with pytest.raises(ValueError, match="nn.Linear"):
        family.distill_relations(nn.Sequential(nn.Linear(6, 4), nn.ReLU()), None, body, X, y,
                                 num_epochs=1)


# ------------------------------------------------------------------------ the figure


def test_plot_teacher_sizes_draws_each_teacher_and_refuses_bad_input():
    teachers = {"small": (1_000, 5.0, [4.0, 4.2, 3.9]), "big": (10_000, 1.0, [3.0, 3.1, 3.2])}
    fig = plotting.plot_teacher_sizes(teachers, [4.5, 4.4, 4.6])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("small: teacher 5.00 → student 4.03" in t for t in texts)
    assert any("big: teacher 1.00 → student 3.10" in t for t in texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_teacher_sizes({}, [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        plotting.plot_teacher_sizes({"x": (0, 1.0, [1.0, 2.0])}, [1.0, 2.0])
