"""Notebook 02's exercises (temperature): checks and worked solutions."""

from __future__ import annotations

import math

import torch

from kdkit import distributions
from kdkit.exercises.core import call, exercise


def stable_softened_solution():
    """softmax(z/T) without overflow: subtract the largest logit first (the ratios are equal)."""

    def softened(z: torch.Tensor, T: float) -> torch.Tensor:
        scaled = z / T  # (..., V)
        e = torch.exp(scaled - scaled.max(dim=-1, keepdim=True).values)
        return e / e.sum(dim=-1, keepdim=True)

    return softened


def _overflowing_softened():
    return lambda z, T: torch.exp(z / T) / torch.exp(z / T).sum(-1, keepdim=True)


@exercise("02.1", "a softmax with temperature that does not overflow",
          solution=stable_softened_solution, wrong=_overflowing_softened)
def _stable_softened(answer) -> str:
    gen = torch.Generator().manual_seed(0)
    cases = [(torch.tensor([9.0, 5.0, 3.5, -2.0]), 1.0),
             (torch.randn(4, 10, generator=gen) * 4, 3.0),
             (torch.tensor([1000.0, 0.0, -1000.0]), 0.5),
             (torch.tensor([-800.0, -801.0]), 1.0)]
    for z, T in cases:
        got = torch.as_tensor(call(answer, z, T))
        assert torch.isfinite(got).all(), (
            f"NaN or inf for logits {z.flatten()[:3].tolist()}... at T = {T:g}: exp overflows "
            "(or every term underflows). Subtract the largest logit before exp.")
        assert torch.allclose(got, distributions.softened(z, T), atol=1e-6), (
            f"differs from distributions.softened at T = {T:g}.")
    return "equals distributions.softened, also for logits of ±1000."


def ratio_solution():
    """p_i/p_j = exp((z_i − z_j)/T) = (ratio at T = 1)^(1/T)."""

    def ratio_at(ratio_at_1: float, T: float) -> float:
        return ratio_at_1 ** (1 / T)

    return ratio_at


@exercise("02.2", "a probability ratio at temperature T",
          solution=ratio_solution, wrong=lambda: lambda r, T: r / T)
def _ratio(answer) -> str:
    z = torch.tensor([9.0, 5.0, 3.5, -2.0])
    for T in (0.5, 2.0, 4.0, 8.0):
        r1 = float(distributions.softened(z, 1.0)[1] / distributions.softened(z, 1.0)[0])
        rT = float(distributions.softened(z, T)[1] / distributions.softened(z, T)[0])
        got = float(call(answer, r1, T))
        assert math.isclose(got, rT, rel_tol=1e-4), (
            f"the ratio {r1:.2e} at T = 1 becomes {rT:.2e} at T = {T:g}, you gave {got:.2e}. "
            "Write the ratio with logits first.")
    return "the ratio at T is the ratio at T = 1 to the power 1/T."


def half_entropy_solution(logits: torch.Tensor) -> float:
    """Bisect on log T: the entropy of softmax(z/T) rises monotonically from 0 to log V."""
    target = 0.5 * math.log(logits.numel())
    lo, hi = -5.0, 5.0  # log T
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(distributions.entropy(distributions.softened(logits, math.exp(mid)))) < target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def _hand_logits() -> dict:
    return {"logits": torch.tensor([-1.0, 0.5, 9.0, 5.0, -2.0, 0.0, -1.5, 3.5, 1.0, -0.5])}


@exercise("02.3", "the temperature where the entropy is half of log V",
          solution=half_entropy_solution, wrong=lambda logits: 1.0, example_context=_hand_logits)
def _half_entropy(answer: float, logits: torch.Tensor) -> str:
    target = 0.5 * math.log(logits.numel())
    H = float(distributions.entropy(distributions.softened(logits, float(answer))))
    assert abs(H - target) < 0.01, (
        f"at T = {float(answer):.3g} the entropy is {H:.3f} nats; the target is "
        f"{target:.3f}. It rises with T: search for the crossing (bisection on log T).")
    return f"at T = {float(answer):.3f} the entropy is {H:.3f} nats = log({logits.numel()})/2."
