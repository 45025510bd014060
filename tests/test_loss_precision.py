"""The losses in every dtype and at real scale: float32 arithmetic for bf16/fp16 logits, values
and gradients against a float64 computation of the same inputs (V = 32,128, student ≈ teacher,
one-hot-like teachers, ±1e4 logits), no overflow, scalar knobs of any kind, no value reads on
an accelerator by default, and torch.compile(fullgraph=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdkit import losses

V = 32_128
HALF = [torch.bfloat16, torch.float16]


@pytest.fixture(autouse=True)
def exact_arithmetic():
    """The exact path for every dtype here ("auto" takes it for bf16/fp16 only)."""
    previous = losses.set_exact_arithmetic(True)
    yield
    losses.set_exact_arithmetic(previous)


def test_auto_takes_the_exact_path_for_half_logits_and_the_textbook_for_float32():
    losses.set_exact_arithmetic("auto")
    s, t = _pair("close", torch.float32, n=2)
    log_s, log_t = F.log_softmax(s / 2.0, -1), F.log_softmax(t / 2.0, -1)
    fp32_textbook = 4.0 * (log_t.exp() * (log_t - log_s)).sum(-1)
    assert torch.equal(losses.kd_kl_loss(s, t, T=2.0, reduction="none"), fp32_textbook)
    half = losses.kd_kl_loss(s.bfloat16(), t.bfloat16(), T=2.0, reduction="none")
    exact = _reference("kd_kl_loss", s.bfloat16(), t.bfloat16(), 2.0)
    torch.testing.assert_close(half.double(), exact, rtol=1e-3, atol=1e-9)
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        losses.set_exact_arithmetic("always")


def _reference(name: str, s: torch.Tensor, t: torch.Tensor, T: float, beta: float = 0.5):
    """The textbook formulas in float64 on the same values (exact enough to be the truth)."""
    s, t = s.double(), t.double()
    log_s, log_t = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)

    def kl(log_p, log_q):
        return (log_p.exp() * (log_p - log_q)).sum(-1)

    if name == "kd_kl_loss":
        return T**2 * kl(log_t, log_s)
    if name == "soft_cross_entropy":
        return -(T**2) * (log_t.exp() * log_s).sum(-1)
    if name == "logit_mse_loss":
        return (s - t).pow(2).mean(-1)
    mix = torch.stack([log_t + np.log(beta), log_s + np.log1p(-beta)])
    log_m = torch.logsumexp(mix, dim=0)
    return beta * kl(log_t, log_m) + (1 - beta) * kl(log_s, log_m)


LOSSES = {
    "kd_kl_loss": lambda s, t, T: losses.kd_kl_loss(s, t, T=T, reduction="none"),
    "soft_cross_entropy": lambda s, t, T: losses.soft_cross_entropy(s, t, T=T, reduction="none"),
    "logit_mse_loss": lambda s, t, T: losses.logit_mse_loss(s, t, reduction="none"),
    "generalized_jsd_loss": lambda s, t, T: losses.generalized_jsd_loss(
        s, t, beta=0.5, T=T, reduction="none"
    ),
}


def _pair(kind: str, dtype: torch.dtype, n: int = 8, seed: int = 0):
    """Student and teacher logits ``(n, V)`` of one hard kind, rounded to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    t = 3.0 * torch.randn(n, V, generator=g)
    if kind == "close":  # late in training: the student is almost the teacher
        s = t + 0.02 * torch.randn(n, V, generator=g)
    elif kind == "one_hot":  # a confident teacher: one logit far above the rest
        t[:, 7] += 40.0
        s = t + 0.5 * torch.randn(n, V, generator=g)
    else:  # "huge": logits of ±1e4
        t = 1e4 * torch.randn(n, V, generator=g).clamp(-1, 1)
        s = t + torch.randn(n, V, generator=g)
    return s.to(dtype), t.to(dtype)


@pytest.mark.parametrize("dtype", [*HALF, torch.float32], ids=str)
@pytest.mark.parametrize("kind", ["close", "one_hot", "huge"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_values_match_float64_of_the_same_inputs(name, kind, dtype):
    s, t = _pair(kind, dtype)
    T = 2.0
    value = LOSSES[name](s, t, T)
    assert value.dtype == torch.float32
    expected = _reference(name, s, t, T)
    # relative 1e-3; the absolute floor only matters where the divergence is ~0
    torch.testing.assert_close(value.double(), expected, rtol=1e-3, atol=1e-9)
    if name != "soft_cross_entropy":
        assert bool((value >= 0).all()), "a divergence came out negative"


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("kind", ["close", "one_hot", "huge"])
@pytest.mark.parametrize("name", ["kd_kl_loss", "generalized_jsd_loss", "soft_cross_entropy"])
def test_gradients_match_float64_of_the_same_inputs(name, kind, dtype):
    s, t = _pair(kind, dtype)
    T = 2.0
    # computed in float32: compare before the final rounding to the input's dtype ...
    s32 = s.float().requires_grad_(True)
    LOSSES[name](s32, t, T).sum().backward()
    s64 = s.double().requires_grad_(True)
    _reference(name, s64, t, T).sum().backward()
    # per position, relative 1e-3 of the gradient's norm; the absolute floor is float32's
    # resolution of probabilities near 1 (one-hot rows whose gradient is ~0)
    err = (s32.grad.double() - s64.grad).norm(dim=-1)
    assert bool((err <= 1e-3 * s64.grad.norm(dim=-1) + 1e-7).all()), err
    # ... and the gradient a half-precision leaf receives is that value, rounded once
    s_half = s.clone().requires_grad_(True)
    LOSSES[name](s_half, t, T).sum().backward()
    assert s_half.grad.dtype == dtype
    torch.testing.assert_close(s_half.grad, s32.grad.to(dtype), rtol=0, atol=0)


def test_a_learnable_teacher_gets_the_float64_gradient_too():
    s, t = _pair("close", torch.float32, n=4)
    for beta in (0.0, 0.3, 1.0):
        t32 = t.clone().requires_grad_(True)
        losses.generalized_jsd_loss(s, t32, beta=beta, T=1.5, reduction="sum").backward()
        t64 = t.double().requires_grad_(True)
        ref = _reference("generalized_jsd_loss", s, t64, 1.5, beta=max(min(beta, 1 - 1e-12), 1e-12))
        if beta in (0.0, 1.0):
            log_s, log_t = F.log_softmax(s.double() / 1.5, -1), F.log_softmax(t64 / 1.5, -1)
            p, q = (log_t, log_s) if beta == 0.0 else (log_s, log_t)
            ref = (p.exp() * (p - q)).sum(-1)
        ref.sum().backward()
        err = (t32.grad.double() - t64.grad).norm(dim=-1)
        assert bool((err <= 1e-3 * t64.grad.norm(dim=-1) + 1e-7).all()), (beta, err)


def test_fp16_logits_that_overflow_when_divided_by_T_give_the_right_value():
    s = torch.tensor([[4.0e4, 0.0, 0.0]], dtype=torch.float16)
    t = torch.tensor([[0.0, 4.0e4, 0.0]], dtype=torch.float16)
    value = losses.kd_kl_loss(s, t, T=0.5)
    # p_tea is one-hot on class 1, log p_stu[1] = -(4e4 - 0) / 0.5: KL = 8e4, times T² = 2e4
    assert torch.isfinite(value) and float(value) == pytest.approx(2.0e4, rel=1e-6)
    assert float(losses.generalized_jsd_loss(s, t, beta=0.5, T=0.5)) == pytest.approx(
        np.log(2), rel=1e-6
    )


@pytest.mark.parametrize("T", [np.float32(2.0), np.int64(2), np.float64(2.0), torch.tensor(2.0), 2])
def test_temperature_may_be_any_real_scalar(T):
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    expected = losses.kd_kl_loss(s, t, T=2.0)
    assert torch.equal(losses.kd_kl_loss(s, t, T=T), expected)
    assert losses.check_unit_interval("alpha", np.float32(0.25)) == 0.25


def test_a_temperature_that_requires_grad_is_refused_with_the_reason():
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    with pytest.raises(ValueError, match="learnable temperature"):
        losses.kd_kl_loss(s, t, T=torch.tensor(2.0, requires_grad=True))


def test_values_are_never_read_from_an_accelerator_by_default():
    # "meta" tensors have no values: reading one (as a NaN check would) raises. By default the
    # checks run on CPU tensors only, so a loss on another device never waits for its values.
    s = torch.empty(2, 3, 7, device="meta")
    labels = torch.zeros(2, 3, dtype=torch.long, device="meta")
    assert losses.distillation_loss(s, s, labels, T=2.0).device.type == "meta"
    assert losses.generalized_jsd_loss(s, s, beta=0.5).device.type == "meta"
    previous = losses.set_value_checks(True)
    try:
        with pytest.raises(RuntimeError, match="meta"):  # forced on: the value is read
            losses.kd_kl_loss(s, s)
    finally:
        losses.set_value_checks(previous)


def test_the_clear_nan_error_is_one_switch_away():
    s, t = torch.randn(2, 5), torch.randn(2, 5)
    s[0, 1] = float("nan")
    with pytest.raises(ValueError, match="student_logits contains NaN"):
        losses.kd_kl_loss(s, t)  # CPU: checked by default
    previous = losses.set_value_checks(False)
    try:
        assert torch.isnan(losses.kd_kl_loss(s, t))  # off: no check, NaN flows through
    finally:
        assert losses.set_value_checks(previous) is False
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        losses.set_value_checks("sometimes")


COMPILED = {
    "soft_targets": lambda s, t, y: losses.soft_targets(s, T=2.0),
    "kd_kl_loss": lambda s, t, y: losses.kd_kl_loss(s, t, T=2.0),
    "soft_cross_entropy": lambda s, t, y: losses.soft_cross_entropy(s, t, T=2.0),
    "hard_cross_entropy": lambda s, t, y: losses.hard_cross_entropy(s, y),
    "distillation_loss": lambda s, t, y: losses.distillation_loss(s, t, y, T=2.0, alpha=0.3),
    "logit_mse_loss": lambda s, t, y: losses.logit_mse_loss(s, t),
    "generalized_jsd_loss": lambda s, t, y: losses.generalized_jsd_loss(s, t, beta=0.4, T=2.0),
}


@pytest.mark.parametrize("name", list(COMPILED))
def test_every_loss_compiles_as_one_graph(name):
    torch._dynamo.reset()
    fn = COMPILED[name]
    s = torch.randn(2, 3, 11, requires_grad=True)
    t = torch.randn(2, 3, 11)
    y = torch.randint(0, 11, (2, 3))
    y[0, 2] = -100
    compiled = torch.compile(fn, fullgraph=True, backend="eager")  # a graph break would raise
    eager = fn(s, t, y)
    torch.testing.assert_close(compiled(s, t, y), eager)
    if s.grad is None and eager.requires_grad:
        (g_eager,) = torch.autograd.grad(eager.sum(), s)
        (g_compiled,) = torch.autograd.grad(compiled(s, t, y).sum(), s)
        torch.testing.assert_close(g_compiled, g_eager)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_piecewise_evaluation_gives_the_same_values_and_gradients(monkeypatch, beta):
    # Large inputs are evaluated a piece of rows at a time (bounded temporaries): the pieces
    # must not show. 7 classes and pieces of 21 elements: 3 rows a piece, the last one short.
    s = torch.randn(4, 5, 7, requires_grad=True)
    t = torch.randn(4, 5, 7, requires_grad=True)

    def run():
        value = losses.generalized_jsd_loss(s, t, beta=beta, T=1.7, reduction="none")
        grads = torch.autograd.grad((value * torch.arange(20.0).reshape(4, 5)).sum(), (s, t))
        return value, grads

    whole = run()
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 21)
    assert losses._row_chunks(20, 7)[-1] == (18, 20)
    pieces = run()
    # equal up to the last bit of a vectorised sum (row lengths change the SIMD split)
    torch.testing.assert_close(pieces[0], whole[0], rtol=1e-6, atol=1e-7)
    for a, b in zip(pieces[1], whole[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
