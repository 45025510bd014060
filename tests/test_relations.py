"""Relational KD (Park et al. 2019): the paper's reference code, the invariances it states, and
clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdkit.relations import pairwise_distances, rkd_angle_loss, rkd_distance_loss


def _reference_distance(student, teacher):
    """lenscloth/RKD's RkdDistance (pdist via ‖a‖² + ‖b‖² − 2ab, mean over all N² entries)."""

    def pdist(e, eps=1e-12):
        sq = e.pow(2).sum(1)
        res = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt().clone()
        res[range(len(e)), range(len(e))] = 0
        return res

    t_d = pdist(teacher)
    t_d = t_d / t_d[t_d > 0].mean()
    d = pdist(student)
    d = d / d[d > 0].mean()
    return F.smooth_l1_loss(d, t_d)


def _reference_angle(student, teacher):
    """lenscloth/RKD's RKdAngle (mean over all N³ entries)."""

    def angles(e):
        unit = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(unit, unit.transpose(1, 2)).view(-1)

    return F.smooth_l1_loss(angles(student), angles(teacher))


def _embeddings(N=12, D_stu=5, D_tea=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(N, D_stu, generator=gen, dtype=torch.float64),
            torch.randn(N, D_tea, generator=gen, dtype=torch.float64))


def _rotation(D, seed=1):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    return q


def test_distance_loss_matches_the_papers_code_up_to_its_diagonal():
    s, t = _embeddings()
    N = len(s)
    expected = _reference_distance(s, t) * N**2 / (N * (N - 1))  # ours averages i != j only
    assert torch.allclose(rkd_distance_loss(s, t), expected)


def test_angle_loss_matches_the_papers_code_over_distinct_triplets():
    s, t = _embeddings()
    N = len(s)
    expected = _reference_angle(s, t) * N**3 / (N * (N - 1) * (N - 2))
    assert torch.allclose(rkd_angle_loss(s, t), expected)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_zero_when_the_student_has_the_teachers_geometry_in_other_coordinates(loss):
    s, t = _embeddings(D_stu=9)
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    moved = 3.7 * t @ _rotation(9) + 2.5  # rotated, scaled, translated
    assert loss(moved, t).item() == pytest.approx(0.0, abs=1e-10)
    assert loss(s, t).item() > 1e-3  # a different geometry is not free


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_invariant_to_rotating_scaling_and_moving_either_space(loss):
    s, t = _embeddings()
    base = loss(s, t)
    assert torch.allclose(loss(0.2 * s @ _rotation(5) - 4.0, t), base)
    assert torch.allclose(loss(s, 10.0 * t @ _rotation(9, seed=2) + 1.0), base)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_a_shuffled_student_is_penalised(loss):
    s, t = _embeddings(D_stu=9)
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(3))
    assert loss(t[perm], t) > 1e-3  # the relations are between examples, in order


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_gradients_are_finite_where_two_student_embeddings_coincide(loss):
    s, t = _embeddings()
    s = s.clone()
    s[1] = s[0]
    s.requires_grad_()
    loss(s, t).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_half_precision_embeddings_are_computed_in_float32(loss):
    s, t = _embeddings()
    value = loss(s.bfloat16(), t.bfloat16())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss(s.bfloat16().double(), t.bfloat16().double()).item(),
                                         rel=1e-4)


def test_pairwise_distances_are_exact_symmetric_and_zero_on_the_diagonal():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [-1.0, 0.0]])
    d = pairwise_distances(e)
    assert d[0, 1].item() == 5.0 and d[0, 2].item() == 1.0
    assert torch.equal(d, d.T) and (d.diagonal() == 0).all()


@pytest.mark.parametrize(
    ("s", "t", "message"),
    [
        (torch.randn(4, 3, 2), torch.randn(4, 3), "shape \\(N, D\\)"),
        (torch.randn(4, 3), torch.randn(5, 3), "different batches: 4 vs 5"),
        (torch.ones(4, 3, dtype=torch.long), torch.randn(4, 3), "float tensor"),
        (torch.randn(2, 3), torch.randn(2, 3), "at least 3 examples"),
    ],
)
def test_bad_inputs_say_what_is_wrong(s, t, message):
    with pytest.raises(ValueError, match=message):
        rkd_angle_loss(s, t)
    if "at least" not in message:
        with pytest.raises(ValueError, match=message):
            rkd_distance_loss(s, t)
