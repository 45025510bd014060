"""The chunked loss from hidden states equals the plain losses on the full logits (values and
gradients w.r.t. the hidden states and the output weight), and a T5's own logits are what it
computes from the decoder's last hidden state."""

from __future__ import annotations

import pytest
import torch

from kdkit import losses

N_B, N_L, D, V = 3, 7, 16, 41


def _inputs(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N_B, N_L, D, generator=g, dtype=dtype)
    w = torch.randn(V, D, generator=g, dtype=dtype) / 4
    t = torch.randn(N_B, N_L, V, generator=g, dtype=dtype) * 2
    y = torch.randint(0, V, (N_B, N_L), generator=g)
    y[0, 5:] = -100
    y[2, 1:] = -100
    return h, w, t, y


def _plain(h, w, t, y, divergence, T, alpha, beta, scale, reduction):
    z = scale * h @ w.T  # (B, L, V)
    mask = losses.mask_from_labels(y)
    ce = losses.hard_cross_entropy(z, y, reduction=reduction)
    if divergence == "kl":
        div = losses.kd_kl_loss(z, t, T=T, mask=mask, reduction=reduction)
    elif divergence == "soft_ce":
        div = losses.soft_cross_entropy(z, t, T=T, mask=mask, reduction=reduction)
    else:
        div = losses.generalized_jsd_loss(z, t, beta=beta, T=T, mask=mask, reduction=reduction)
    return losses.alpha_mix(ce, div, alpha)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("divergence", "beta"), [("kl", 0.5), ("soft_ce", 0.5), ("jsd", 0.3),
                                                   ("jsd", 0.0), ("jsd", 1.0)])
@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_chunked_equals_plain_values_and_gradients(divergence, beta, reduction, chunk_size):
    h, w, t, y = _inputs()
    knobs = dict(T=2.0, alpha=0.3, divergence=divergence, beta=beta, reduction=reduction)
    h1, w1 = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    plain = _plain(h1, w1, t, y, divergence, 2.0, 0.3, beta, 0.5, reduction)
    plain.backward()
    h2, w2 = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    chunked = losses.chunked_distillation_loss(
        h2, w2, y, teacher_logits=t, logit_scale=0.5, chunk_size=chunk_size, **knobs
    )
    chunked.backward()
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(h2.grad, h1.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(w2.grad, w1.grad, rtol=1e-5, atol=1e-7)


def test_teacher_from_hidden_states_equals_teacher_logits():
    h, w, _, y = _inputs()
    g = torch.Generator().manual_seed(5)
    t_h, t_w = torch.randn(N_B, N_L, 24, generator=g), torch.randn(V, 24, generator=g)
    a = losses.chunked_distillation_loss(h, w, y, teacher_logits=0.7 * t_h @ t_w.T, T=1.5)
    b = losses.chunked_distillation_loss(
        h, w, y, teacher_hidden=t_h, teacher_weight=t_w, teacher_logit_scale=0.7, T=1.5,
        chunk_size=5,
    )
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_parts_and_clear_errors():
    h, w, t, y = _inputs()
    loss, (ce, kd) = losses.chunked_distillation_loss(
        h, w, y, teacher_logits=t, T=2.0, alpha=0.25, return_parts=True
    )
    torch.testing.assert_close(loss, 0.75 * ce + 0.25 * kd)
    with pytest.raises(ValueError, match="not both and not neither"):
        losses.chunked_distillation_loss(h, w, y)
    with pytest.raises(ValueError, match="transpose"):
        losses.chunked_distillation_loss(h, w.T, y, teacher_logits=t)
    with pytest.raises(ValueError, match="32100"):
        losses.chunked_distillation_loss(h, w, y, teacher_logits=t[..., :-1])
    with pytest.raises(ValueError, match="divergence"):
        losses.chunked_distillation_loss(h, w, y, teacher_logits=t, divergence="tvd")


def test_t5_logits_are_the_scaled_decoder_state_times_lm_head():
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(vocab_size=V, d_model=D, d_ff=32, num_layers=1,
                                   num_decoder_layers=1, num_heads=2, d_kv=8,
                                   decoder_start_token_id=0)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    ids = torch.randint(3, V, (2, 5))
    labels = torch.randint(3, V, (2, 4))
    out = model(input_ids=ids, labels=labels, output_hidden_states=True)
    h = out.decoder_hidden_states[-1]  # (B, L, D), after the final layer norm
    scale = losses.t5_logit_scale(model)
    assert scale == pytest.approx(D**-0.5)  # tied embeddings: the original T5
    logits = scale * h @ model.lm_head.weight.T
    torch.testing.assert_close(logits, out.logits, rtol=1e-5, atol=1e-6)
    t = torch.randn(2, 4, V)
    chunked = losses.chunked_distillation_loss(
        h, model.lm_head.weight, labels, teacher_logits=t, logit_scale=scale, chunk_size=3
    )
    plain = losses.distillation_loss(out.logits, t, labels)
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)
