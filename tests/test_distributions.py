"""Unit and property tests of kdkit.distributions: what temperature does to a distribution."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdkit.distributions import (
    effective_classes,
    entropy,
    mass_outside_top,
    softened,
    temperature_sweep,
    wrong_class_ratios,
)

FAST = settings(max_examples=60, deadline=None)
F64 = torch.float64
TEMPS = st.floats(0.25, 20.0)



@st.composite
def logits(draw, shapes=None, max_scale: float = 5.0) -> torch.Tensor:
    """Random float64 logits of shape (V,), (B, V) or (B, L, V)."""
    if shapes is None:
        shapes = st.one_of(
            st.tuples(st.integers(2, 8)),
            st.tuples(st.integers(1, 4), st.integers(2, 8)),
            st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 8)),
        )
    shape = draw(shapes)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.floats(0.1, max_scale))
    return torch.randn(shape, generator=gen, dtype=F64) * scale


def non_constant_vector(max_scale: float = 5.0):
    """A logit vector (V,) whose entries are not all equal (well separated from constant)."""
    return logits(st.tuples(st.integers(2, 8)), max_scale).filter(
        lambda z: float(z.max() - z.min()) > 1e-2
    )


# --------------------------------------------------------------------------- softened


@FAST
@given(logits(), TEMPS)
def test_softened_is_softmax_over_T_and_sums_to_one(z, T):
    p = softened(z, T)
    assert p.shape == z.shape and p.dtype == F64
    torch.testing.assert_close(p, torch.softmax(z / T, dim=-1), rtol=0, atol=1e-15)
    torch.testing.assert_close(p.sum(-1), torch.ones(z.shape[:-1], dtype=F64))
    assert bool((p >= 0).all())


def test_softened_accepts_lists_and_integer_logits():
    expected = torch.softmax(torch.tensor([1.0, 2.0, 4.0]) / 2.0, dim=-1)
    torch.testing.assert_close(softened([1, 2, 4], T=2.0), expected)
    torch.testing.assert_close(softened(torch.tensor([1, 2, 4]), T=2.0), expected)


def test_softened_limits():
    z = torch.tensor([1.0, 3.0, 2.0], dtype=F64)
    torch.testing.assert_close(softened(z, 1e-3), torch.tensor([0.0, 1.0, 0.0], dtype=F64))
    torch.testing.assert_close(softened(z, 1e9), torch.full((3,), 1 / 3, dtype=F64))


@pytest.mark.parametrize("T", [0, 0.0, -1.0, -1e-9, float("nan"), float("inf"), float("-inf")])
def test_softened_rejects_bad_temperature(T):
    with pytest.raises(ValueError, match=r"T \(temperature\) must be a finite number > 0"):
        softened(torch.zeros(3), T)


def test_scalar_logits_raise():
    with pytest.raises(ValueError, match=r"at least one dimension"):
        softened(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"at least one dimension"):
        entropy(torch.tensor(1.0))


# --------------------------------------------------------------------------- entropy


@FAST
@given(logits(), TEMPS)
def test_entropy_lies_between_zero_and_log_V(z, T):
    p = softened(z, T)
    H = entropy(p)
    assert H.shape == z.shape[:-1]
    reference = -(p * p.log()).sum(-1)
    torch.testing.assert_close(H, reference, rtol=1e-12, atol=1e-12)
    assert bool((H >= 0).all())
    assert bool((H <= math.log(z.shape[-1]) + 1e-12).all())


@pytest.mark.parametrize("V", [1, 2, 5, 100])
def test_entropy_extremes(V):
    uniform = torch.full((V,), 1 / V, dtype=F64)
    torch.testing.assert_close(entropy(uniform), torch.tensor(math.log(V), dtype=F64))
    one_hot = torch.zeros(V, dtype=F64)
    one_hot[V // 2] = 1.0
    assert entropy(one_hot).item() == 0.0  # 0 log 0 = 0, not NaN


@FAST
@given(non_constant_vector())
def test_entropy_increases_with_temperature(z):
    temps = torch.logspace(-0.5, 1.5, 25, dtype=F64).tolist()  # 0.32 .. 32
    H = torch.stack([entropy(softened(z, T)) for T in temps])  # (K,)
    steps = H[1:] - H[:-1]
    assert bool((steps >= -1e-12).all()), H
    assert float(H[-1] - H[0]) > 0, H
    assert float(H[-1]) <= math.log(z.shape[-1]) + 1e-12


def test_entropy_increases_strictly_with_temperature():
    z = torch.tensor([2.0, -1.0, 0.5, 0.0, 3.0], dtype=F64)
    H = torch.stack([entropy(softened(z, T)) for T in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)])
    assert bool((H[1:] > H[:-1]).all()), H
    assert float(H[-1]) < math.log(5)


@FAST
@given(non_constant_vector(), st.floats(0.3, 10.0))
def test_entropy_temperature_derivative_is_logit_variance_over_T_cubed(z, T):
    """dH/dT = Var_p(z) / T³ > 0: the reason entropy grows with T (notebook 02)."""
    h = 1e-5 * T
    dH_dT = (entropy(softened(z, T + h)) - entropy(softened(z, T - h))) / (2 * h)
    p = softened(z, T)
    variance = (p * z**2).sum() - (p * z).sum() ** 2
    torch.testing.assert_close(dH_dT, variance / T**3, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("V", [2, 7])
def test_entropy_of_constant_logits_is_log_V_at_every_T(V):
    z = torch.full((V,), 3.0, dtype=F64)
    for T in (0.1, 1.0, 10.0):
        torch.testing.assert_close(entropy(softened(z, T)), torch.tensor(math.log(V), dtype=F64))


# --------------------------------------------------------------------------- effective classes


@FAST
@given(logits(), TEMPS)
def test_effective_classes_is_exp_entropy(z, T):
    p = softened(z, T)
    n = effective_classes(p)
    torch.testing.assert_close(n, entropy(p).exp(), rtol=1e-14, atol=0)
    assert bool((n >= 1 - 1e-12).all()) and bool((n <= z.shape[-1] + 1e-9).all())


def test_effective_classes_extremes():
    torch.testing.assert_close(effective_classes(torch.full((4,), 0.25, dtype=F64)).item(), 4.0)
    assert effective_classes(torch.tensor([0.0, 1.0, 0.0], dtype=F64)).item() == 1.0
    # two equally likely classes and the rest impossible: exactly two effective classes
    torch.testing.assert_close(
        effective_classes(torch.tensor([0.5, 0.0, 0.5, 0.0], dtype=F64)).item(), 2.0
    )


# --------------------------------------------------------------------------- mass outside top


@pytest.mark.parametrize("V", [2, 5])
def test_mass_outside_top_is_zero_for_one_hot(V):
    one_hot = torch.eye(V, dtype=F64)  # (V, V), one row per class
    assert torch.equal(mass_outside_top(one_hot), torch.zeros(V, dtype=F64))
    labels = torch.arange(V)
    assert torch.equal(mass_outside_top(one_hot, labels), torch.zeros(V, dtype=F64))


@FAST
@given(logits(), TEMPS)
def test_mass_outside_top_is_one_minus_max_probability(z, T):
    p = softened(z, T)
    m = mass_outside_top(p)
    assert m.shape == z.shape[:-1]
    torch.testing.assert_close(m, 1 - p.max(dim=-1).values, rtol=0, atol=1e-15)
    assert bool((m >= 0).all()) and bool((m <= 1 - 1 / z.shape[-1] + 1e-12).all())


@FAST
@given(logits(), TEMPS, st.data())
def test_mass_outside_target_is_one_minus_target_probability(z, T, data):
    p = softened(z, T)
    V = z.shape[-1]
    target = data.draw(st.integers(0, V - 1))
    torch.testing.assert_close(mass_outside_top(p, target), 1 - p[..., target], rtol=0, atol=0)
    targets = torch.randint(V, z.shape[:-1], generator=torch.Generator().manual_seed(V))
    expected = 1 - p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(mass_outside_top(p, targets), expected, rtol=0, atol=0)


def test_mass_outside_top_worked_example():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=F64)
    torch.testing.assert_close(mass_outside_top(p), torch.tensor([0.3, 0.4], dtype=F64))
    torch.testing.assert_close(mass_outside_top(p, 1), torch.tensor([0.8, 0.7], dtype=F64))


# --------------------------------------------------------------------------- wrong-class ratios


@FAST
@given(logits(), TEMPS, st.data())
def test_wrong_class_ratios_are_probability_ratios(z, T, data):
    p = softened(z, T)
    V = z.shape[-1]
    target = data.draw(st.integers(0, V - 1))
    ratios = wrong_class_ratios(p, target)
    assert ratios.shape == p.shape
    assert bool(torch.isnan(ratios[..., target]).all())
    others = [j for j in range(V) if j != target]
    assert not bool(torch.isnan(ratios[..., others]).any())
    expected = p / p[..., target : target + 1]
    torch.testing.assert_close(ratios[..., others], expected[..., others], rtol=1e-12, atol=0)
    # p_j / p_target = exp((z_j - z_target) / T): the logits' differences, divided by T
    from_logits = torch.exp((z - z[..., target : target + 1]) / T)
    torch.testing.assert_close(ratios[..., others], from_logits[..., others], rtol=1e-10, atol=0)


def test_wrong_class_ratios_per_row_targets():
    z = torch.tensor([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]], dtype=F64)
    ratios = wrong_class_ratios(softened(z, 2.0), torch.tensor([2, 0]))
    assert torch.isnan(ratios[0, 2]) and torch.isnan(ratios[1, 0])
    torch.testing.assert_close(ratios[0, :2], torch.exp(torch.tensor([-2.0, -1.0], dtype=F64) / 2))
    torch.testing.assert_close(ratios[1, 1:], torch.exp(torch.tensor([-2.0, -3.0], dtype=F64) / 2))


def test_wrong_class_ratios_rise_towards_one_with_T():
    z = torch.tensor([5.0, 1.0, -2.0, 0.0], dtype=F64)
    low = wrong_class_ratios(softened(z, 1.0), 0)[1:]
    high = wrong_class_ratios(softened(z, 10.0), 0)[1:]
    assert bool((low < high).all()) and bool((high < 1).all())


# --------------------------------------------------------------------------- temperature sweep


@FAST
@given(non_constant_vector(), st.lists(st.floats(0.3, 30.0), min_size=1, max_size=8))
def test_temperature_sweep_shapes_and_values(z, temps):
    sweep = temperature_sweep(z, temps)
    K, V = len(temps), z.shape[0]
    assert set(sweep) == {"temperatures", "probs", "entropy", "mass_outside_top"}
    assert sweep["temperatures"].shape == (K,)
    assert sweep["probs"].shape == (K, V)
    assert sweep["entropy"].shape == (K,)
    assert sweep["mass_outside_top"].shape == (K,)
    torch.testing.assert_close(sweep["temperatures"], torch.tensor(temps, dtype=F64))
    for k, T in enumerate(temps):
        torch.testing.assert_close(sweep["probs"][k], softened(z, T), rtol=0, atol=1e-15)
        torch.testing.assert_close(sweep["entropy"][k], entropy(softened(z, T)))
        top = int(z.argmax())
        torch.testing.assert_close(sweep["mass_outside_top"][k], 1 - softened(z, T)[top])


@FAST
@given(non_constant_vector())
def test_temperature_sweep_entropy_and_mass_grow_with_T(z):
    temps = [0.3, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    sweep = temperature_sweep(z, temps)
    for key in ("entropy", "mass_outside_top"):
        steps = sweep[key][1:] - sweep[key][:-1]
        assert bool((steps >= -1e-12).all()), (key, sweep[key])
        assert float(sweep[key][-1] - sweep[key][0]) > 0, (key, sweep[key])


def test_temperature_sweep_mass_is_outside_the_logits_argmax():
    z = torch.tensor([0.0, 2.0, 1.0], dtype=F64)
    sweep = temperature_sweep(z, [1.0, 100.0])
    torch.testing.assert_close(sweep["mass_outside_top"], 1 - sweep["probs"][:, 1])


def test_temperature_sweep_rejects_batches_and_bad_temperatures():
    with pytest.raises(ValueError, match=r"one logit vector \(V,\), got shape \(2, 3\)"):
        temperature_sweep(torch.zeros(2, 3), [1.0])
    for bad in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"T \(temperature\) must be a finite number > 0"):
            temperature_sweep(torch.tensor([1.0, 2.0]), [1.0, bad])
