"""Unit and property tests of kdkit.losses against the loss contract in DESIGN.md.

Numerical identities use float64 so that tolerances can be tight. Each identity is checked
against an independent reference: torch.nn.functional, autograd, or a naive formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdkit.losses import (
    distillation_loss,
    generalized_jsd_loss,
    hard_cross_entropy,
    kd_kl_loss,
    logit_mse_loss,
    mask_from_labels,
    soft_cross_entropy,
    soft_targets,
)

FAST = settings(max_examples=60, deadline=None)
F64 = torch.float64
REDUCTIONS = ("mean", "sum", "none")
IGNORE = -100



# --------------------------------------------------------------------------- strategies

SHAPES = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(2, 7)),  # (B, V)
    st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(2, 7)),  # (B, L, V)
)
TEMPS = st.floats(0.25, 20.0)
UNIT_OPEN = st.floats(0.01, 0.99)


@dataclass
class Case:
    student: torch.Tensor  # (..., V)
    teacher: torch.Tensor  # (..., V)
    mask: torch.Tensor  # (...) bool
    labels: torch.Tensor  # (...) long, IGNORE where mask is False

    @property
    def V(self) -> int:
        return self.student.shape[-1]


@st.composite
def cases(draw, shapes=SHAPES, max_scale: float = 8.0) -> Case:
    """Random float64 student/teacher logits, a mask and labels consistent with the mask."""
    shape = draw(shapes)
    positions = math.prod(shape[:-1])
    V = shape[-1]
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.floats(0.1, max_scale))
    student = torch.randn(shape, generator=gen, dtype=F64) * scale
    teacher = torch.randn(shape, generator=gen, dtype=F64) * scale
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=positions, max_size=positions)))
    mask = mask.reshape(shape[:-1])
    classes = draw(st.lists(st.integers(0, V - 1), min_size=positions, max_size=positions))
    labels = torch.tensor(classes).reshape(shape[:-1])
    labels = torch.where(mask, labels, torch.full_like(labels, IGNORE))
    return Case(student, teacher, mask, labels)


def raw_logit_pairs(max_abs: float = 30.0):
    """Logits straight from hypothesis floats: ties, constant rows and large gaps included."""
    elements = st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False)
    return SHAPES.flatmap(
        lambda shape: st.tuples(
            hnp.arrays(np.float64, shape, elements=elements),
            hnp.arrays(np.float64, shape, elements=elements),
        )
    ).map(lambda pair: (torch.from_numpy(pair[0]), torch.from_numpy(pair[1])))


# --------------------------------------------------------------------------- references


def log_p(logits: torch.Tensor, T: float) -> torch.Tensor:
    return F.log_softmax(logits / T, dim=-1)


def ref_kl(log_p_: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per position via F.kl_div (input is log q, target is log p)."""
    return F.kl_div(log_q, log_p_, log_target=True, reduction="none").sum(dim=-1)


def ref_entropy(logits: torch.Tensor, T: float) -> torch.Tensor:
    p = torch.softmax(logits / T, dim=-1)
    return -(p * torch.log(p)).sum(dim=-1)


def with_mask(loss, case: Case, **kwargs):
    return loss(case.student, case.teacher, mask=case.mask, **kwargs)


# Every loss that takes a student/teacher pair and a mask, with its knobs.
MASKED_LOSSES = {
    "kd_kl_loss": (kd_kl_loss, {"T": 2.0}),
    "soft_cross_entropy": (soft_cross_entropy, {"T": 3.0}),
    "logit_mse_loss": (logit_mse_loss, {}),
    "jsd_beta0": (generalized_jsd_loss, {"beta": 0.0, "T": 1.5}),
    "jsd_beta0.3": (generalized_jsd_loss, {"beta": 0.3, "T": 1.5}),
    "jsd_beta1": (generalized_jsd_loss, {"beta": 1.0, "T": 0.7}),
}
masked_losses = pytest.mark.parametrize(
    "loss, knobs", list(MASKED_LOSSES.values()), ids=list(MASKED_LOSSES)
)


# --------------------------------------------------------------------------- mask_from_labels


def test_mask_from_labels_marks_real_tokens():
    labels = torch.tensor([[5, 2, IGNORE], [IGNORE, IGNORE, 0]])
    expected = torch.tensor([[True, True, False], [False, False, True]])
    mask = mask_from_labels(labels)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)


def test_mask_from_labels_custom_ignore_index():
    labels = torch.tensor([0, -1, 3, -1])
    assert torch.equal(mask_from_labels(labels, ignore_index=-1), labels != -1)
    assert torch.equal(mask_from_labels(labels, ignore_index=0), labels != 0)


@FAST
@given(cases())
def test_mask_from_labels_recovers_mask(case):
    assert torch.equal(mask_from_labels(case.labels), case.mask)


def test_mask_from_labels_rejects_non_tensor():
    with pytest.raises(ValueError, match="labels must be a torch.Tensor"):
        mask_from_labels([1, 2, IGNORE])


# --------------------------------------------------------------------------- soft_targets


@FAST
@given(cases(), TEMPS)
def test_soft_targets_is_softened_softmax(case, T):
    p = soft_targets(case.student, T)
    assert p.shape == case.student.shape
    torch.testing.assert_close(p, torch.softmax(case.student / T, dim=-1), rtol=0, atol=1e-14)
    torch.testing.assert_close(p.sum(dim=-1), torch.ones(p.shape[:-1], dtype=F64))
    assert bool((p >= 0).all())


def test_soft_targets_default_T_is_plain_softmax():
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    torch.testing.assert_close(soft_targets(z), torch.softmax(z, dim=-1))


# --------------------------------------------------------------------------- kd_kl_loss


@FAST
@given(raw_logit_pairs(), TEMPS)
def test_kd_kl_is_nonnegative(pair, T):
    s, t = pair
    for reduction in REDUCTIONS:
        value = kd_kl_loss(s, t, T=T, reduction=reduction)
        assert bool((value >= -1e-12 * T**2).all()), (reduction, value)


@FAST
@given(cases(), TEMPS)
def test_kd_kl_is_zero_for_identical_logits(case, T):
    for reduction in REDUCTIONS:
        value = kd_kl_loss(case.student, case.student.clone(), T=T, reduction=reduction)
        assert bool((value.abs() <= 1e-12).all()), (reduction, value)
        value = kd_kl_loss(case.student, case.student, T=T, mask=case.mask, reduction=reduction)
        assert bool((value.abs() <= 1e-12).all()), (reduction, value)


def test_kd_kl_is_positive_for_different_distributions():
    s = torch.tensor([[2.0, 0.0, -1.0]], dtype=F64)
    t = torch.tensor([[-1.0, 0.0, 2.0]], dtype=F64)
    assert kd_kl_loss(s, t, T=2.0) > 0.1


@FAST
@given(cases(shapes=st.tuples(st.integers(1, 6), st.integers(2, 9))), TEMPS)
def test_kd_kl_matches_f_kl_div_batchmean(case, T):
    s, t = case.student, case.teacher  # (B, V)
    expected = T**2 * F.kl_div(
        F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean"
    )
    torch.testing.assert_close(kd_kl_loss(s, t, T), expected, rtol=1e-10, atol=1e-12)


@FAST
@given(cases(), TEMPS)
def test_kd_kl_none_is_T_squared_forward_kl_per_position(case, T):
    expected = T**2 * ref_kl(log_p(case.teacher, T), log_p(case.student, T))
    value = kd_kl_loss(case.student, case.teacher, T=T, reduction="none")
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)


def test_kd_kl_is_not_symmetric():
    """Forward KL(p_tea ‖ p_stu): swapping the arguments gives a different number."""
    s = torch.tensor([[3.0, 0.0, 0.0, 0.0]], dtype=F64)
    t = torch.tensor([[0.0, 1.0, 0.5, 0.0]], dtype=F64)
    expected = ref_kl(log_p(t, 1.0), log_p(s, 1.0)).mean()
    torch.testing.assert_close(kd_kl_loss(s, t), expected)
    assert not torch.allclose(kd_kl_loss(s, t), kd_kl_loss(t, s))


# --------------------------------------------------------------------------- soft CE vs KL


@FAST
@given(cases(), TEMPS)
def test_soft_ce_minus_kl_is_T_squared_teacher_entropy(case, T):
    s, t = case.student, case.teacher
    diff = soft_cross_entropy(s, t, T=T) - kd_kl_loss(s, t, T=T)
    expected = T**2 * ref_entropy(t, T).mean()
    torch.testing.assert_close(diff, expected, rtol=1e-10, atol=1e-10)
    # per position, and with a mask
    diff = soft_cross_entropy(s, t, T=T, reduction="none") - kd_kl_loss(s, t, T=T, reduction="none")
    torch.testing.assert_close(diff, T**2 * ref_entropy(t, T), rtol=1e-10, atol=1e-10)
    diff = with_mask(soft_cross_entropy, case, T=T) - with_mask(kd_kl_loss, case, T=T)
    count = max(int(case.mask.sum()), 1)
    expected = T**2 * (ref_entropy(t, T) * case.mask).sum() / count
    torch.testing.assert_close(diff, expected, rtol=1e-10, atol=1e-10)


@FAST
@given(cases(), TEMPS)
def test_soft_ce_and_kl_have_the_same_student_gradient(case, T):
    s = case.student.clone().requires_grad_(True)
    (g_ce,) = torch.autograd.grad(soft_cross_entropy(s, case.teacher, T=T, mask=case.mask), s)
    (g_kl,) = torch.autograd.grad(kd_kl_loss(s, case.teacher, T=T, mask=case.mask), s)
    torch.testing.assert_close(g_ce, g_kl, rtol=1e-9, atol=1e-12)


def test_soft_ce_does_not_vanish_when_student_matches_teacher():
    z = torch.tensor([[1.0, 0.0, -1.0]], dtype=F64)
    assert kd_kl_loss(z, z, T=2.0) == 0
    torch.testing.assert_close(soft_cross_entropy(z, z, T=2.0), 4.0 * ref_entropy(z, 2.0).mean())


# --------------------------------------------------------------------------- gradients


@FAST
@given(cases(shapes=st.tuples(st.integers(1, 6), st.integers(2, 9))), TEMPS)
def test_kd_kl_gradient_is_T_times_prob_difference_over_N(case, T):
    s = case.student.clone().requires_grad_(True)  # (B, V)
    (grad,) = torch.autograd.grad(kd_kl_loss(s, case.teacher, T=T), s)
    p_s = torch.softmax(case.student / T, -1)
    p_t = torch.softmax(case.teacher / T, -1)
    N = s.shape[0]
    torch.testing.assert_close(grad, T * (p_s - p_t) / N, rtol=1e-9, atol=1e-12)


@FAST
@given(cases(shapes=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(2, 7))), TEMPS)
def test_kd_kl_masked_gradient_counts_only_counted_positions(case, T):
    s = case.student.clone().requires_grad_(True)  # (B, L, V)
    (grad,) = torch.autograd.grad(kd_kl_loss(s, case.teacher, T=T, mask=case.mask), s)
    p_s = torch.softmax(case.student / T, -1)
    p_t = torch.softmax(case.teacher / T, -1)
    N = max(int(case.mask.sum()), 1)
    expected = T * (p_s - p_t) / N * case.mask.unsqueeze(-1)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    assert bool((grad[~case.mask] == 0).all())


def test_kd_kl_gradient_denominator_is_the_count_not_the_size():
    s = torch.zeros(2, 4, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.0], dtype=F64).expand(2, 4, 3)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, 0] = mask[1, 2] = True  # 2 counted positions out of 8
    (grad,) = torch.autograd.grad(kd_kl_loss(s, t, T=1.0, mask=mask), s)
    p_t = torch.softmax(t[0, 0], -1)
    expected = (torch.full((3,), 1 / 3, dtype=F64) - p_t) / 2
    torch.testing.assert_close(grad[0, 0], expected)
    torch.testing.assert_close(grad[1, 2], expected)


# --------------------------------------------------------------------------- masks, reductions


@masked_losses
@FAST
@given(case=cases(), junk_seed=st.integers(0, 2**31 - 1), junk_scale=st.floats(1e-3, 1e6))
def test_masked_positions_never_change_the_result(loss, knobs, case, junk_seed, junk_scale):
    gen = torch.Generator().manual_seed(junk_seed)
    junk_s = torch.randn(case.student.shape, generator=gen, dtype=F64) * junk_scale
    junk_t = torch.randn(case.teacher.shape, generator=gen, dtype=F64) * junk_scale
    keep = case.mask.unsqueeze(-1)  # (..., 1)
    s2 = torch.where(keep, case.student, junk_s)
    t2 = torch.where(keep, case.teacher, junk_t)
    for reduction in REDUCTIONS:
        a = case.student.clone().requires_grad_(True)
        b = s2.clone().requires_grad_(True)
        va = loss(a, case.teacher, mask=case.mask, reduction=reduction, **knobs)
        vb = loss(b, t2, mask=case.mask, reduction=reduction, **knobs)
        assert torch.equal(va, vb), reduction
        (ga,) = torch.autograd.grad(va.sum(), a)
        (gb,) = torch.autograd.grad(vb.sum(), b)
        assert torch.equal(ga[case.mask], gb[case.mask]), reduction
        assert bool((gb[~case.mask] == 0).all()), reduction


def test_masked_positions_with_extreme_logits_do_not_leak():
    """Huge finite logits at masked positions overflow inside the loss; nothing may escape."""
    s = torch.randn(2, 3, 5, dtype=F64)
    t = torch.randn(2, 3, 5, dtype=F64)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    s2, t2 = s.clone(), t.clone()
    s2[~mask] = torch.tensor([1e300, -1e300, 0.0, 5.0, 1.0], dtype=F64)
    t2[~mask] = torch.tensor([-1e300, 1e300, 0.0, 5.0, 1.0], dtype=F64)
    for loss, knobs in MASKED_LOSSES.values():
        a = s.clone().requires_grad_(True)
        b = s2.clone().requires_grad_(True)
        va = loss(a, t, mask=mask, **knobs)
        vb = loss(b, t2, mask=mask, **knobs)
        assert torch.equal(va, vb), loss.__name__
        (ga,) = torch.autograd.grad(va, a)
        (gb,) = torch.autograd.grad(vb, b)
        assert torch.equal(ga[mask], gb[mask]), loss.__name__
        assert bool(torch.isfinite(gb).all()), loss.__name__


@masked_losses
@FAST
@given(case=cases())
def test_reductions_are_consistent(loss, knobs, case):
    none = with_mask(loss, case, reduction="none", **knobs)
    assert none.shape == case.student.shape[:-1]
    assert bool((none[~case.mask] == 0).all())
    total = with_mask(loss, case, reduction="sum", **knobs)
    mean = with_mask(loss, case, reduction="mean", **knobs)
    assert total.dim() == 0 and mean.dim() == 0
    torch.testing.assert_close(total, none.sum(), rtol=1e-12, atol=1e-12)
    count = int(case.mask.sum())
    torch.testing.assert_close(mean, total / max(count, 1), rtol=1e-12, atol=1e-12)
    # without a mask every position counts; the default reduction is the mean
    unmasked = loss(case.student, case.teacher, reduction="none", **knobs)
    torch.testing.assert_close(
        loss(case.student, case.teacher, **knobs), unmasked.mean(), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        loss(case.student, case.teacher, reduction="sum", **knobs),
        unmasked.sum(),
        rtol=1e-12,
        atol=1e-12,
    )
    torch.testing.assert_close(none, unmasked * case.mask, rtol=0, atol=0)


def test_all_true_mask_equals_no_mask():
    s, t = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 3, 4, dtype=F64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    for loss, knobs in MASKED_LOSSES.values():
        for reduction in REDUCTIONS:
            torch.testing.assert_close(
                loss(s, t, mask=mask, reduction=reduction, **knobs),
                loss(s, t, reduction=reduction, **knobs),
            )


# --------------------------------------------------------------------------- empty means


def _assert_zero_and_backprops(value: torch.Tensor, *leaves: torch.Tensor) -> None:
    assert value.dim() == 0
    assert not torch.isnan(value)
    assert value.item() == 0.0
    assert value.requires_grad
    value.backward()
    for leaf in leaves:
        assert leaf.grad is not None
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))


@masked_losses
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduction_over_no_counted_positions_is_zero_and_backprops(loss, knobs, shape, reduction):
    s = torch.randn(shape, dtype=F64, requires_grad=True)
    t = torch.randn(shape, dtype=F64)
    mask = torch.zeros(shape[:-1], dtype=torch.bool)
    _assert_zero_and_backprops(loss(s, t, mask=mask, reduction=reduction, **knobs), s)


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hard_ce_with_only_ignored_labels_is_zero_and_backprops(shape, reduction):
    s = torch.randn(shape, dtype=F64, requires_grad=True)
    labels = torch.full(shape[:-1], IGNORE)
    _assert_zero_and_backprops(hard_cross_entropy(s, labels, reduction=reduction), s)


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5)])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_distillation_loss_with_only_ignored_labels_is_zero_and_backprops(shape, alpha):
    s = torch.randn(shape, dtype=F64, requires_grad=True)
    t = torch.randn(shape, dtype=F64, requires_grad=True)
    labels = torch.full(shape[:-1], IGNORE)
    _assert_zero_and_backprops(distillation_loss(s, t, labels, T=2.0, alpha=alpha), s, t)


# --------------------------------------------------------------------------- hard CE


@st.composite
def labelled_cases(draw, shapes=SHAPES) -> Case:
    """A case with at least one counted label (F.cross_entropy's mean is NaN otherwise)."""
    case = draw(cases(shapes=shapes))
    if not bool(case.mask.any()):
        flat_mask, flat_labels = case.mask.flatten(), case.labels.flatten()
        flat_mask[0], flat_labels[0] = True, draw(st.integers(0, case.V - 1))
        case = Case(
            case.student,
            case.teacher,
            flat_mask.reshape(case.mask.shape),
            flat_labels.reshape(case.labels.shape),
        )
    return case


def _f_cross_entropy(logits, labels, ignore_index=IGNORE, reduction="mean"):
    """F.cross_entropy on (..., V) logits: move the class dimension to position 1."""
    if logits.dim() == 3:
        logits = logits.transpose(1, 2)  # (B, V, L)
    return F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction=reduction)


@FAST
@given(labelled_cases())
def test_hard_ce_matches_f_cross_entropy(case):
    s, labels = case.student, case.labels
    torch.testing.assert_close(
        hard_cross_entropy(s, labels), _f_cross_entropy(s, labels), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        hard_cross_entropy(s, labels, reduction="sum"),
        _f_cross_entropy(s, labels, reduction="sum"),
        rtol=1e-12,
        atol=1e-12,
    )
    none = hard_cross_entropy(s, labels, reduction="none")
    assert none.shape == labels.shape
    torch.testing.assert_close(
        none, _f_cross_entropy(s, labels, reduction="none"), rtol=1e-12, atol=1e-12
    )
    # flattened form: (B*L, V) against (B*L,)
    flat = F.cross_entropy(s.reshape(-1, case.V), labels.reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(hard_cross_entropy(s, labels), flat, rtol=1e-12, atol=1e-12)


@FAST
@given(labelled_cases())
def test_hard_ce_gradient_matches_f_cross_entropy(case):
    a = case.student.clone().requires_grad_(True)
    b = case.student.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(hard_cross_entropy(a, case.labels), a)
    (gb,) = torch.autograd.grad(_f_cross_entropy(b, case.labels), b)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-13)


def test_hard_ce_custom_ignore_index():
    s = torch.randn(4, 6, 3, dtype=F64)
    labels = torch.tensor([[0, 1, -1, 2, -1, 0]] * 4)
    torch.testing.assert_close(
        hard_cross_entropy(s, labels, ignore_index=-1),
        _f_cross_entropy(s, labels, ignore_index=-1),
    )
    # with a custom ignore_index, -100 is an ordinary (invalid) label
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        hard_cross_entropy(s, torch.full((4, 6), IGNORE), ignore_index=-1)


def test_hard_ce_ignored_positions_do_not_matter():
    s = torch.randn(2, 4, 5, dtype=F64)
    labels = torch.tensor([[1, IGNORE, 3, IGNORE], [IGNORE, 0, 4, 2]])
    s2 = s.clone()
    s2[labels == IGNORE] = 1e4
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            hard_cross_entropy(s, labels, reduction=reduction),
            hard_cross_entropy(s2, labels, reduction=reduction),
            rtol=0,
            atol=0,
        )


# --------------------------------------------------------------------------- distillation_loss


@FAST
@given(case=labelled_cases(), T=TEMPS, alpha=st.floats(0.0, 1.0))
def test_distillation_loss_is_the_alpha_mix(case, T, alpha):
    s, t, labels = case.student, case.teacher, case.labels
    expected = (1 - alpha) * hard_cross_entropy(s, labels) + alpha * kd_kl_loss(
        s, t, T=T, mask=mask_from_labels(labels)
    )
    value = distillation_loss(s, t, labels, T=T, alpha=alpha)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    # against torch's own functions, independently of kdkit
    keep = labels != IGNORE
    kl = T**2 * ref_kl(log_p(t, T), log_p(s, T))
    reference = (1 - alpha) * _f_cross_entropy(s, labels) + alpha * kl[keep].mean()
    torch.testing.assert_close(value, reference, rtol=1e-10, atol=1e-12)


@FAST
@given(case=labelled_cases(), T=TEMPS)
def test_distillation_loss_endpoints(case, T):
    s, t, labels = case.student, case.teacher, case.labels
    torch.testing.assert_close(
        distillation_loss(s, t, labels, T=T, alpha=0.0), hard_cross_entropy(s, labels)
    )
    torch.testing.assert_close(
        distillation_loss(s, t, labels, T=T, alpha=1.0),
        kd_kl_loss(s, t, T=T, mask=labels != IGNORE),
    )


def test_distillation_loss_defaults_are_T1_alpha_half():
    s, t = torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    labels = torch.tensor([0, 3, IGNORE])
    expected = 0.5 * hard_cross_entropy(s, labels) + 0.5 * kd_kl_loss(
        s, t, T=1.0, mask=mask_from_labels(labels)
    )
    torch.testing.assert_close(distillation_loss(s, t, labels), expected)


@FAST
@given(case=labelled_cases(), T=TEMPS, alpha=st.floats(0.0, 1.0), junk=st.floats(-1e4, 1e4))
def test_distillation_loss_ignores_both_terms_at_ignored_positions(case, T, alpha, junk):
    s, t, labels = case.student, case.teacher, case.labels
    ignored = (labels == IGNORE).unsqueeze(-1)  # (..., 1)
    s2 = torch.where(ignored, torch.full_like(s, junk) + torch.arange(case.V), s)
    t2 = torch.where(ignored, torch.full_like(t, -junk) - torch.arange(case.V), t)
    a, b = s.clone().requires_grad_(True), s2.clone().requires_grad_(True)
    va = distillation_loss(a, t, labels, T=T, alpha=alpha)
    vb = distillation_loss(b, t2, labels, T=T, alpha=alpha)
    assert torch.equal(va, vb)
    (ga,) = torch.autograd.grad(va, a)
    (gb,) = torch.autograd.grad(vb, b)
    keep = labels != IGNORE
    assert torch.equal(ga[keep], gb[keep])
    assert bool((gb[~keep] == 0).all())


def test_distillation_loss_custom_ignore_index():
    s, t = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 3, 4, dtype=F64)
    labels = torch.tensor([[0, -1, 2], [3, 3, -1]])
    expected = 0.7 * hard_cross_entropy(s, labels, ignore_index=-1) + 0.3 * kd_kl_loss(
        s, t, T=2.0, mask=labels != -1
    )
    torch.testing.assert_close(
        distillation_loss(s, t, labels, T=2.0, alpha=0.3, ignore_index=-1), expected
    )


# --------------------------------------------------------------------------- logit MSE


@FAST
@given(cases(shapes=st.tuples(st.integers(1, 6), st.integers(1, 9))))
def test_logit_mse_matches_f_mse_loss_for_classifiers(case):
    torch.testing.assert_close(
        logit_mse_loss(case.student, case.teacher),
        F.mse_loss(case.student, case.teacher),
        rtol=1e-12,
        atol=1e-12,
    )


@FAST
@given(cases())
def test_logit_mse_is_per_position_mean_over_vocabulary(case):
    expected = ((case.student - case.teacher) ** 2).mean(dim=-1)  # (...)
    torch.testing.assert_close(
        logit_mse_loss(case.student, case.teacher, reduction="none"),
        expected,
        rtol=1e-12,
        atol=1e-12,
    )
    count = max(int(case.mask.sum()), 1)
    torch.testing.assert_close(
        with_mask(logit_mse_loss, case),
        (expected * case.mask).sum() / count,
        rtol=1e-12,
        atol=1e-12,
    )


# --------------------------------------------------------------------------- generalized JSD


@FAST
@given(cases(), TEMPS)
def test_jsd_beta0_is_forward_kl(case, T):
    s, t = case.student, case.teacher
    value = generalized_jsd_loss(s, t, beta=0.0, T=T, reduction="none")
    torch.testing.assert_close(value, ref_kl(log_p(t, T), log_p(s, T)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        generalized_jsd_loss(s, t, beta=0.0, T=T), kd_kl_loss(s, t, T=T) / T**2
    )


@FAST
@given(cases(), TEMPS)
def test_jsd_beta1_is_reverse_kl(case, T):
    s, t = case.student, case.teacher
    value = generalized_jsd_loss(s, t, beta=1.0, T=T, reduction="none")
    torch.testing.assert_close(value, ref_kl(log_p(s, T), log_p(t, T)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        generalized_jsd_loss(s, t, beta=1.0, T=T), kd_kl_loss(t, s, T=T) / T**2
    )


@FAST
@given(cases(max_scale=3.0), TEMPS, UNIT_OPEN)
def test_jsd_matches_mixture_formula(case, T, beta):
    p_s = torch.softmax(case.student / T, -1)
    p_t = torch.softmax(case.teacher / T, -1)
    m = beta * p_t + (1 - beta) * p_s
    expected = beta * (p_t * (p_t / m).log()).sum(-1) + (1 - beta) * (p_s * (p_s / m).log()).sum(-1)
    value = generalized_jsd_loss(case.student, case.teacher, beta=beta, T=T, reduction="none")
    torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-12)


@FAST
@given(cases(), TEMPS)
def test_jsd_half_is_symmetric(case, T):
    s, t = case.student, case.teacher
    torch.testing.assert_close(
        generalized_jsd_loss(s, t, beta=0.5, T=T, reduction="none"),
        generalized_jsd_loss(t, s, beta=0.5, T=T, reduction="none"),
        rtol=1e-10,
        atol=1e-13,
    )


@FAST
@given(case=cases(), T=TEMPS, beta=UNIT_OPEN)
def test_jsd_general_beta_swaps_to_one_minus_beta(case, T, beta):
    s, t = case.student, case.teacher
    torch.testing.assert_close(
        generalized_jsd_loss(s, t, beta=beta, T=T, reduction="none"),
        generalized_jsd_loss(t, s, beta=1 - beta, T=T, reduction="none"),
        rtol=1e-9,
        atol=1e-12,
    )


def _binary_entropy(beta: float) -> float:
    return -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)


@FAST
@given(raw_logit_pairs(), st.floats(0.05, 20.0), UNIT_OPEN)
def test_jsd_is_bounded_by_binary_entropy(pair, T, beta):
    s, t = pair
    value = generalized_jsd_loss(s, t, beta=beta, T=T, reduction="none")
    assert bool((value >= -1e-12).all()), value
    assert bool((value <= _binary_entropy(beta) + 1e-12).all()), value
    half = generalized_jsd_loss(s, t, beta=0.5, T=T, reduction="none")
    assert bool((half >= -1e-12).all()) and bool((half <= math.log(2) + 1e-12).all()), half


def test_jsd_reaches_its_bound_for_disjoint_supports():
    s = torch.tensor([[50.0, -50.0]], dtype=F64)
    t = torch.tensor([[-50.0, 50.0]], dtype=F64)
    torch.testing.assert_close(generalized_jsd_loss(s, t), torch.tensor(math.log(2), dtype=F64))
    for beta in (0.1, 0.3, 0.9):
        torch.testing.assert_close(
            generalized_jsd_loss(s, t, beta=beta), torch.tensor(_binary_entropy(beta), dtype=F64)
        )


@FAST
@given(cases(max_scale=1.0), st.floats(1.0, 5.0))
def test_jsd_over_beta_tends_to_forward_kl_as_beta_tends_to_zero(case, T):
    s, t = case.student, case.teacher
    forward = ref_kl(log_p(t, T), log_p(s, T))
    beta = 1e-6
    value = generalized_jsd_loss(s, t, beta=beta, T=T, reduction="none") / beta
    torch.testing.assert_close(value, forward, rtol=1e-2, atol=1e-8)


def test_jsd_over_beta_converges_to_forward_kl():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(4, 10, generator=gen, dtype=F64)
    t = torch.randn(4, 10, generator=gen, dtype=F64)
    forward = ref_kl(log_p(t, 1.0), log_p(s, 1.0)).mean()
    errors = [
        abs(float(generalized_jsd_loss(s, t, beta=beta) / beta - forward) / float(forward))
        for beta in (1e-2, 1e-3, 1e-4)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-2


@FAST
@given(cases(), TEMPS, st.floats(0.0, 1.0))
def test_jsd_is_zero_for_identical_logits(case, T, beta):
    value = generalized_jsd_loss(case.student, case.student, beta=beta, T=T, reduction="none")
    assert bool((value.abs() <= 1e-12).all()), value


# --------------------------------------------------------------------------- high-T limit


def _logit_matching_limit(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    dz = s - t  # (..., V)
    centred = dz - dz.mean(dim=-1, keepdim=True)
    return (centred**2).sum(dim=-1) / (2 * s.shape[-1])  # (...)


def test_high_temperature_limit_is_centred_logit_matching():
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(3, 10, generator=gen, dtype=F64) * 2
    t = torch.randn(3, 10, generator=gen, dtype=F64) * 2 + 1.5  # different means on purpose
    limit = _logit_matching_limit(s, t)  # (3,)
    errors = []
    for T in (10.0, 100.0, 1e3, 1e4):
        value = kd_kl_loss(s, t, T=T, reduction="none")  # T² · KL(p_tea ‖ p_stu)
        errors.append(float(((value - limit).abs() / limit).max()))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[2] < 1e-2, errors
    assert errors[3] < 1e-3, errors


def test_high_temperature_limit_is_half_logit_mse_for_zero_mean_logits():
    gen = torch.Generator().manual_seed(2)
    s = torch.randn(5, 8, generator=gen, dtype=F64)
    t = torch.randn(5, 8, generator=gen, dtype=F64)
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    torch.testing.assert_close(kd_kl_loss(s, t, T=1e4), logit_mse_loss(s, t) / 2, rtol=1e-3, atol=0)


# --------------------------------------------------------------------------- validation

BAD_TEMPERATURES = [0, 0.0, -1.0, -1e-9, float("nan"), float("inf"), float("-inf")]
T_MESSAGE = r"T \(temperature\) must be .*> 0"


def _pair(shape=(2, 5)):
    return torch.randn(shape, dtype=F64), torch.randn(shape, dtype=F64)


def _labels_for(logits):
    return torch.zeros(logits.shape[:-1], dtype=torch.long)


# Every function that takes T, as a callable of T.
TAKES_T = {
    "soft_targets": lambda T: soft_targets(_pair()[0], T),
    "kd_kl_loss": lambda T: kd_kl_loss(*_pair(), T=T),
    "soft_cross_entropy": lambda T: soft_cross_entropy(*_pair(), T=T),
    "distillation_loss": lambda T: distillation_loss(*_pair(), torch.tensor([0, 1]), T=T),
    "generalized_jsd_loss": lambda T: generalized_jsd_loss(*_pair(), T=T),
    "generalized_jsd_loss_beta0": lambda T: generalized_jsd_loss(*_pair(), beta=0.0, T=T),
}


@pytest.mark.parametrize("call", list(TAKES_T.values()), ids=list(TAKES_T))
@pytest.mark.parametrize("T", BAD_TEMPERATURES, ids=repr)
def test_bad_temperature_raises(call, T):
    with pytest.raises(ValueError, match=T_MESSAGE):
        call(T)


@pytest.mark.parametrize("alpha", [-0.1, 1.1, 2.0, float("nan"), float("inf")], ids=repr)
def test_alpha_outside_unit_interval_raises(alpha):
    s, t = _pair()
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        distillation_loss(s, t, torch.tensor([0, 1]), alpha=alpha)


@pytest.mark.parametrize("beta", [-0.1, -1e-12, 1.0001, 5.0, float("nan"), float("inf")], ids=repr)
def test_beta_outside_unit_interval_raises(beta):
    s, t = _pair()
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\]"):
        generalized_jsd_loss(s, t, beta=beta)


# Every function that takes a student/teacher pair, as a callable of the pair.
TAKES_PAIR = {
    "kd_kl_loss": lambda s, t: kd_kl_loss(s, t),
    "soft_cross_entropy": lambda s, t: soft_cross_entropy(s, t, T=2.0),
    "distillation_loss": lambda s, t: distillation_loss(s, t, _labels_for(s)),
    "logit_mse_loss": lambda s, t: logit_mse_loss(s, t),
    "generalized_jsd_loss": lambda s, t: generalized_jsd_loss(s, t),
}
pair_losses = pytest.mark.parametrize("call", list(TAKES_PAIR.values()), ids=list(TAKES_PAIR))


@pair_losses
@pytest.mark.parametrize("student_V, teacher_V", [(32128, 32100), (32100, 32128)])
def test_vocabulary_mismatch_names_both_sizes_and_the_t5_cause(call, student_V, teacher_V):
    s = torch.zeros(2, student_V)
    t = torch.zeros(2, teacher_V)
    with pytest.raises(ValueError, match=r"[Vv]ocabulary mismatch") as info:
        call(s, t)
    message = str(info.value)
    assert "32128" in message and "32100" in message
    assert "T5" in message
    # the sizes are attributed to the right model
    assert message.index(str(student_V)) < message.index(str(teacher_V))


@pair_losses
@pytest.mark.parametrize(
    "student_shape, teacher_shape",
    [((2, 5), (3, 5)), ((2, 4, 5), (2, 3, 5)), ((2, 4, 5), (3, 4, 5)), ((2, 5), (2, 1, 5))],
)
def test_batch_shape_mismatch_raises(call, student_shape, teacher_shape):
    s, t = torch.zeros(student_shape), torch.zeros(teacher_shape)
    with pytest.raises(ValueError, match=r"must have the same shape") as info:
        call(s, t)
    assert str(tuple(student_shape)) in str(info.value)
    assert str(tuple(teacher_shape)) in str(info.value)


@pair_losses
@pytest.mark.parametrize("which", ["student_logits", "teacher_logits"])
def test_integer_logits_raise(call, which):
    s, t = torch.zeros(2, 5), torch.zeros(2, 5)
    args = {"student_logits": s, "teacher_logits": t}
    args[which] = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"{which} must be floating point"):
        call(args["student_logits"], args["teacher_logits"])


@pair_losses
@pytest.mark.parametrize("which", ["student_logits", "teacher_logits"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_non_finite_logits_raise(call, which, bad):
    args = {"student_logits": torch.zeros(2, 3, 5), "teacher_logits": torch.zeros(2, 3, 5)}
    args[which][1, 2, 3] = bad
    with pytest.raises(ValueError, match=rf"{which} contains NaN or inf"):
        call(args["student_logits"], args["teacher_logits"])


def test_single_function_logit_checks():
    with pytest.raises(ValueError, match=r"logits must be floating point"):
        soft_targets(torch.arange(5), T=1.0)
    with pytest.raises(ValueError, match=r"logits contains NaN or inf"):
        soft_targets(torch.tensor([0.0, float("nan")]), T=1.0)
    with pytest.raises(ValueError, match=r"student_logits must be floating point"):
        hard_cross_entropy(torch.zeros(2, 5, dtype=torch.int32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"student_logits contains NaN or inf"):
        hard_cross_entropy(torch.tensor([[0.0, float("inf")]]), torch.tensor([0]))


# Every function that takes a mask, as a callable of (student, teacher, mask).
TAKES_MASK = {
    "kd_kl_loss": lambda s, t, m: kd_kl_loss(s, t, mask=m),
    "soft_cross_entropy": lambda s, t, m: soft_cross_entropy(s, t, mask=m),
    "logit_mse_loss": lambda s, t, m: logit_mse_loss(s, t, mask=m),
    "generalized_jsd_loss": lambda s, t, m: generalized_jsd_loss(s, t, mask=m),
}
mask_losses = pytest.mark.parametrize("call", list(TAKES_MASK.values()), ids=list(TAKES_MASK))


@mask_losses
@pytest.mark.parametrize(
    "mask_shape", [(2,), (2, 4), (3, 2), (2, 3, 5), (6,)], ids=lambda shape: str(shape)
)
def test_mask_of_wrong_shape_raises(call, mask_shape):
    s, t = _pair((2, 3, 5))
    with pytest.raises(ValueError, match=r"mask has shape .* must have .*\(2, 3\)"):
        call(s, t, torch.ones(mask_shape, dtype=torch.bool))


@mask_losses
@pytest.mark.parametrize("dtype", [torch.float32, torch.long, torch.uint8, torch.int32])
def test_non_bool_mask_raises(call, dtype):
    s, t = _pair((2, 3, 5))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor"):
        call(s, t, torch.ones(2, 3, dtype=dtype))


@mask_losses
def test_non_tensor_mask_raises(call):
    s, t = _pair((2, 3))
    with pytest.raises(ValueError, match=r"mask must be a bool"):
        call(s, t, [True, False])


# Every function that takes labels, as a callable of (student, labels).
TAKES_LABELS = {
    "hard_cross_entropy": lambda s, y: hard_cross_entropy(s, y),
    "distillation_loss": lambda s, y: distillation_loss(s, s.clone(), y),
}
label_losses = pytest.mark.parametrize("call", list(TAKES_LABELS.values()), ids=list(TAKES_LABELS))


@label_losses
@pytest.mark.parametrize("labels_shape", [(2,), (3, 2), (2, 3, 1), (6,)], ids=str)
def test_labels_of_wrong_shape_raise(call, labels_shape):
    s = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"labels have shape .* must have .*\(2, 3\)"):
        call(s, torch.zeros(labels_shape, dtype=torch.long))


@label_losses
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_non_integer_labels_raise(call, dtype):
    s = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"labels must hold integer class indices"):
        call(s, torch.zeros(2, 3, dtype=dtype))


@label_losses
@pytest.mark.parametrize("bad", [5, 7, -1, -5, -101])
def test_labels_out_of_range_raise(call, bad):
    s = torch.randn(2, 3, 5)
    labels = torch.tensor([[0, 1, IGNORE], [4, bad, 2]])
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, 4\].*found {bad}"):
        call(s, labels)


@label_losses
def test_labels_of_every_integer_dtype_are_accepted(call):
    s = torch.randn(2, 3, 5, dtype=F64)
    labels = torch.tensor([[0, 1, IGNORE], [4, 3, 2]])
    expected = call(s, labels)
    for dtype in (torch.int32, torch.int16):
        torch.testing.assert_close(call(s, labels.to(dtype)), expected)


REDUCTION_CALLS = {
    "kd_kl_loss": lambda r: kd_kl_loss(*_pair(), reduction=r),
    "soft_cross_entropy": lambda r: soft_cross_entropy(*_pair(), reduction=r),
    "hard_cross_entropy": lambda r: hard_cross_entropy(
        _pair()[0], torch.tensor([0, 1]), reduction=r
    ),
    "logit_mse_loss": lambda r: logit_mse_loss(*_pair(), reduction=r),
    "generalized_jsd_loss": lambda r: generalized_jsd_loss(*_pair(), reduction=r),
}


@pytest.mark.parametrize("call", list(REDUCTION_CALLS.values()), ids=list(REDUCTION_CALLS))
@pytest.mark.parametrize("reduction", ["avg", "batchmean", "Mean", "", "elementwise_mean"])
def test_unknown_reduction_raises(call, reduction):
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\)"):
        call(reduction)
