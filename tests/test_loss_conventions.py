"""kdkit's losses against the formulas of the implementations readers come from (written out
here from their published definitions), once the conventions are mapped as the README's
table says: the PyTorch KD tutorial, the Keras KD example, TRL's GKD loss, Liger-Kernel's JSD
and ``F.kl_div``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdkit import losses

torch.manual_seed(0)
B, L, V, T = 4, 6, 13, 2.5
S2, T2 = torch.randn(B, V, dtype=torch.float64), torch.randn(B, V, dtype=torch.float64)
Y2 = torch.randint(0, V, (B,))
S3, T3 = torch.randn(B, L, V, dtype=torch.float64), torch.randn(B, L, V, dtype=torch.float64)
Y3 = torch.randint(0, V, (B, L))
Y3[0, 4:] = -100
Y3[2, 1:] = -100


def test_pytorch_tutorial_weights_map_to_alpha():
    w_soft, w_ce = 0.25, 0.75  # the tutorial's soft_target_loss_weight and ce_loss_weight
    soft_targets = F.softmax(T2 / T, dim=-1)
    soft_prob = F.log_softmax(S2 / T, dim=-1)
    soft_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / B * T**2
    tutorial = w_soft * soft_loss + w_ce * F.cross_entropy(S2, Y2)
    alpha = w_soft / (w_soft + w_ce)
    ours = (w_soft + w_ce) * losses.distillation_loss(S2, T2, Y2, T=T, alpha=alpha)
    torch.testing.assert_close(ours, tutorial)


def test_keras_alpha_weighs_the_hard_term():
    alpha_keras = 0.1
    p_t, p_s = F.softmax(T2 / T, dim=1), F.softmax(S2 / T, dim=1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1).mean()  # keras.losses.KLDivergence, batch mean
    keras = alpha_keras * F.cross_entropy(S2, Y2) + (1 - alpha_keras) * kl * T**2
    ours = losses.distillation_loss(S2, T2, Y2, T=T, alpha=1 - alpha_keras)
    torch.testing.assert_close(ours, keras)


def _trl_gkd(student, teacher, labels=None, beta=0.5, temperature=1.0):
    """TRL's GKDTrainer.generalized_jsd_loss with reduction="batchmean", from its definition."""
    s_log = F.log_softmax(student / temperature, dim=-1)
    t_log = F.log_softmax(teacher / temperature, dim=-1)
    if beta == 0:
        jsd = F.kl_div(s_log, t_log, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(t_log, s_log, reduction="none", log_target=True)
    else:
        mix = torch.logsumexp(
            torch.stack([s_log + math.log(1 - beta), t_log + math.log(beta)]), dim=0
        )
        kl_teacher = F.kl_div(mix, t_log, reduction="none", log_target=True)
        kl_student = F.kl_div(mix, s_log, reduction="none", log_target=True)
        jsd = beta * kl_teacher + (1 - beta) * kl_student
    if labels is not None:
        mask = labels != -100
        return jsd[mask].sum() / mask.sum()
    return jsd.sum() / jsd.size(0)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_trl_gkd_loss_is_generalized_jsd_without_t_squared(beta):
    with_labels = _trl_gkd(S3, T3, Y3, beta=beta, temperature=T)
    mask = losses.mask_from_labels(Y3)
    ours = losses.generalized_jsd_loss(S3, T3, beta=beta, T=T, mask=mask)
    torch.testing.assert_close(ours, with_labels)
    without = _trl_gkd(S3, T3, beta=beta, temperature=T)  # sum over tokens / batch size
    ours_sum = losses.generalized_jsd_loss(S3, T3, beta=beta, T=T, reduction="sum") / B
    torch.testing.assert_close(ours_sum, without)


def _liger_jsd(log_q, log_p, beta):
    """Liger-Kernel's LigerJSD(beta)(log_q, log_p): q the student, p the teacher, token mean."""
    p, q = log_p.exp(), log_q.exp()
    m = beta * p + (1 - beta) * q
    jsd = beta * (p * (log_p - m.log())).sum(-1) + (1 - beta) * (q * (log_q - m.log())).sum(-1)
    return jsd.mean()


def test_liger_jsd_takes_the_student_first_in_log_space():
    beta = 0.3
    liger = _liger_jsd(F.log_softmax(S2, -1), F.log_softmax(T2, -1), beta)
    torch.testing.assert_close(losses.generalized_jsd_loss(S2, T2, beta=beta), liger)


def test_kl_div_batchmean_grows_with_sequence_length_and_ours_does_not():
    kl_div = T**2 * F.kl_div(
        F.log_softmax(S3 / T, -1), F.log_softmax(T3 / T, -1), log_target=True,
        reduction="batchmean",
    )
    ours_mean = losses.kd_kl_loss(S3, T3, T=T)  # per position
    torch.testing.assert_close(kl_div, ours_mean * L)  # batchmean divides (B, L, V) by B only
    flat = T**2 * F.kl_div(
        F.log_softmax(S2 / T, -1), F.log_softmax(T2 / T, -1), log_target=True,
        reduction="batchmean",
    )
    torch.testing.assert_close(losses.kd_kl_loss(S2, T2, T=T), flat)
