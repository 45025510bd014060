"""Notebook 03's exercises (the losses): checks and worked solutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdkit import losses
from kdkit.exercises.core import call, exercise


def _pairs(gen: torch.Generator):
    for shape, T in (((4, 10), 1.0), ((3, 7), 4.0), ((2, 5, 12), 2.0)):
        yield torch.randn(*shape, generator=gen) * 3, torch.randn(*shape, generator=gen) * 3, T


def kd_loss_solution():
    """T²·KL(p^tea ‖ p^stu), mean over positions: T² Σ_i p^tea_i (log p^tea_i − log p^stu_i)."""

    def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float):
        log_p_stu = F.log_softmax(student_logits / T, dim=-1)  # (..., V)
        log_p_tea = F.log_softmax(teacher_logits / T, dim=-1)  # (..., V)
        kl = (log_p_tea.exp() * (log_p_tea - log_p_stu)).sum(-1)  # (...)
        return T**2 * kl.mean()

    return kd_loss


def _soft_ce():
    return lambda s, t, T: losses.soft_cross_entropy(s, t, T=T)


@exercise("03.1", "the KD loss from its formula", solution=kd_loss_solution, wrong=_soft_ce)
def _kd_loss(answer) -> str:
    for s, t, T in _pairs(torch.Generator().manual_seed(1)):
        want = losses.kd_kl_loss(s, t, T=T)
        got = torch.as_tensor(call(answer, s, t, T))
        assert got.dim() == 0, f"return one number (the mean), got shape {tuple(got.shape)}."
        extra = float(got - want)
        assert torch.allclose(got, want, atol=1e-5), (
            f"shape {tuple(s.shape)}, T = {T:g}: {float(got):.4f} vs kd_kl_loss's "
            f"{float(want):.4f} ({extra:+.4f}). Is the difference T² times the teacher's "
            "entropy? Then you wrote soft cross-entropy; subtract it (KL = H(p,q) − H(p)).")
    same = call(answer, s, s, T)
    assert abs(float(same)) < 1e-6, "a student equal to its teacher must give 0."
    return "equals losses.kd_kl_loss on three shapes and temperatures, 0 for identical inputs."


def reverse_kl_solution():
    """KL(p^stu ‖ p^tea) = Σ_i p^stu_i (log p^stu_i − log p^tea_i), mean over positions."""

    def reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor):
        log_p_stu = F.log_softmax(student_logits, dim=-1)
        log_p_tea = F.log_softmax(teacher_logits, dim=-1)
        return (log_p_stu.exp() * (log_p_stu - log_p_tea)).sum(-1).mean()

    return reverse_kl


def _forward_kl():
    return lambda s, t: losses.kd_kl_loss(s, t, T=1.0)


@exercise("03.2", "reverse KL, the β = 1 end of the GKD family",
          solution=reverse_kl_solution, wrong=_forward_kl)
def _reverse_kl(answer) -> str:
    for s, t, _ in _pairs(torch.Generator().manual_seed(2)):
        want = losses.generalized_jsd_loss(s, t, beta=1.0)
        got = torch.as_tensor(call(answer, s, t))
        assert torch.allclose(got, want, atol=1e-5), (
            f"{float(got):.4f} vs generalized_jsd_loss(beta=1)'s {float(want):.4f}. Reverse KL "
            "weights the log-ratio by the student's probabilities, not the teacher's.")
    return "equals losses.generalized_jsd_loss(beta=1) on three shapes."


def masked_kd_solution():
    """Mean of T²·KL over the positions whose label is not -100: Σ_counted / #counted."""

    def masked_kd(student_logits, teacher_logits, labels, T):
        log_p_stu = F.log_softmax(student_logits / T, dim=-1)  # (B, L, V)
        log_p_tea = F.log_softmax(teacher_logits / T, dim=-1)
        kl = (log_p_tea.exp() * (log_p_tea - log_p_stu)).sum(-1)  # (B, L)
        counted = labels != -100  # (B, L)
        return T**2 * (kl * counted).sum() / counted.sum().clamp(min=1)

    return masked_kd


def _padding_counted():
    return lambda s, t, labels, T: losses.kd_kl_loss(s, t, T=T)


@exercise("03.3", "a sequence KD loss that ignores padding",
          solution=masked_kd_solution, wrong=_padding_counted)
def _masked_kd(answer) -> str:
    gen = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 6, 9, generator=gen) * 2, torch.randn(3, 6, 9, generator=gen) * 2
    labels = torch.randint(0, 9, (3, 6), generator=gen)
    labels[0, 2:], labels[2, 4:] = -100, -100  # two padded sequences
    want = losses.kd_kl_loss(s, t, T=2.0, mask=losses.mask_from_labels(labels))
    got = torch.as_tensor(call(answer, s, t, labels, 2.0))
    assert torch.allclose(got, want, atol=1e-5), (
        f"{float(got):.4f} vs kd_kl_loss with the mask's {float(want):.4f}. Padding positions "
        "(label -100) must not count, in the sum or in the number you divide by.")
    none = torch.as_tensor(call(answer, s, t, torch.full_like(labels, -100), 2.0))
    assert float(none) == 0.0, f"a batch of padding only must give 0, got {float(none)}."
    return "equals kd_kl_loss(mask=mask_from_labels(labels)), and 0 for a batch of padding."
