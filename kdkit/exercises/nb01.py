"""Notebook 01's exercises (soft vs hard labels): checks and worked solutions."""

from __future__ import annotations

import torch

from kdkit import distributions, losses
from kdkit.exercises.core import call, exercise


def mass_limit_solution(num_classes: int = 10) -> float:
    """At T → ∞ every class gets 1/V, so the mass outside the top class is (V − 1)/V."""
    return (num_classes - 1) / num_classes


@exercise("01.1", "the mass outside the top class at very high T",
          solution=mass_limit_solution, wrong=lambda num_classes=10: 1.0,
          example_context=lambda: {"num_classes": 10})
def _mass_limit(answer: float, num_classes: int = 10) -> str:
    gen = torch.Generator().manual_seed(0)  # not the global RNG: the notebook's runs stay put
    z = torch.randn(1000, num_classes, generator=gen) * 5  # (N, V) arbitrary logits
    measured = float(distributions.mass_outside_top(distributions.softened(z, 1e6)).mean())
    assert abs(float(answer) - measured) < 1e-3, (
        f"you said {float(answer):.3f}; softening {num_classes} classes at T = 10^6 leaves "
        "one share in the top class. How large is one share?")
    return (f"{measured:.4f} of the mass is outside the top class at T = 10^6 "
            f"({num_classes} classes).")


def soft_gradient_solution():
    """∂/∂s of T²·KL(p^tea ‖ softmax(s/T)) = T·(p^stu − p^tea), row by row."""

    def soft_gradient(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float):
        p_stu = torch.softmax(student_logits / T, dim=-1)  # (N, V)
        p_tea = torch.softmax(teacher_logits / T, dim=-1)  # (N, V)
        return T * (p_stu - p_tea)

    return soft_gradient


def _soft_gradient_without_T():
    return lambda s, t, T: torch.softmax(s / T, -1) - torch.softmax(t / T, -1)


@exercise("01.2", "the gradient of the distillation loss, by hand",
          solution=soft_gradient_solution, wrong=_soft_gradient_without_T)
def _soft_gradient(answer) -> str:
    gen = torch.Generator().manual_seed(0)
    for T in (1.0, 2.0, 5.0):
        s, t = torch.randn(6, 10, generator=gen) * 3, torch.randn(6, 10, generator=gen) * 3
        zs = s.clone().requires_grad_()
        losses.kd_kl_loss(zs, t, T=T, reduction="sum").backward()  # one row's loss per row
        got = torch.as_tensor(call(answer, s, t, T))
        assert got.shape == s.shape, f"expected shape {tuple(s.shape)}, got {tuple(got.shape)}."
        ratio = float(got.norm() / zs.grad.norm())
        assert torch.allclose(got, zs.grad, atol=1e-5), (
            f"at T = {T:g} your gradient is {ratio:.3f}× autograd's (norms). Differentiate "
            "T²·KL through the 1/T inside the softmax.")
    return "matches autograd through losses.kd_kl_loss at T = 1, 2 and 5."


def pushed_up_solution(teacher_logits: torch.Tensor, T: float) -> set[int]:
    """From equal student logits q = 1/V, −grad = T·(p^tea − 1/V) > 0 where p^tea > 1/V."""
    p_tea = distributions.softened(teacher_logits, T)  # (V,)
    return {int(i) for i in torch.nonzero(p_tea > 1 / p_tea.numel()).flatten()}


def _example_teacher() -> dict:
    return {"teacher_logits": torch.tensor([0.0, 1.0, 6.0, 4.5, -1.0, 0.0, 0.5, 4.0, 1.0, 0.0]),
            "T": 2.0}


@exercise("01.3", "which classes does the first soft-target step push up?",
          solution=pushed_up_solution,
          wrong=lambda teacher_logits, T: {int(teacher_logits.argmax())},
          example_context=_example_teacher)
def _pushed_up(answer, teacher_logits: torch.Tensor, T: float) -> str:
    s = torch.zeros(1, teacher_logits.numel(), requires_grad=True)  # q = 1/V everywhere
    losses.kd_kl_loss(s, teacher_logits[None], T=T).backward()
    up = {int(i) for i in torch.nonzero(s.grad[0] < 0).flatten()}  # descent raises these
    assert {int(c) for c in answer} == up, (
        f"you said {sorted(int(c) for c in answer)}. A class goes up where the teacher gives it "
        "more than the student's current 1/V — not only the top class.")
    return f"classes {sorted(up)} go up: their p^tea exceeds 1/{teacher_logits.numel()}."


