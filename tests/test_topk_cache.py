"""The offline top-k teacher cache: the sparse KD loss against dense references of both tail
treatments (k = V is kd_kl_loss), and the cache a T5 teacher writes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdkit import losses

B, L, V = 3, 4, 11


def _case(k, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    t = 2 * torch.randn(B, L, V, generator=g, dtype=torch.float64)
    values, indices = t.topk(k, dim=-1)
    return s, t, values, indices


def _dense_reference(s, t, indices, T, tail):
    """p̃_tea written out over all V classes, then T²·KL(p̃ ‖ p_stu)."""
    p = F.softmax(t / T, dim=-1)
    keep = torch.zeros_like(p, dtype=torch.bool).scatter(-1, indices, True)
    if tail == "renormalise":
        p_tilde = torch.where(keep, p, 0.0)
        p_tilde = p_tilde / p_tilde.sum(-1, keepdim=True)
    else:
        k = indices.shape[-1]
        rest = 1 - torch.where(keep, p, 0.0).sum(-1, keepdim=True)
        p_tilde = torch.where(keep, p, rest / (V - k)) if k < V else p
    log_q = F.log_softmax(s / T, dim=-1)
    terms = torch.where(p_tilde > 0, p_tilde * (p_tilde.log() - log_q), 0.0)
    return T**2 * terms.sum(-1)


@pytest.mark.parametrize("tail", ["renormalise", "uniform"])
@pytest.mark.parametrize("k", [1, 3, 10, V])
def test_sparse_loss_equals_the_dense_reference(k, tail):
    s, t, values, indices = _case(k)
    T = 1.7
    lse = torch.logsumexp(t / T, dim=-1)
    s1 = s.clone().requires_grad_(True)
    ours = losses.sparse_kd_loss(s1, values, indices, lse, T=T, tail=tail, reduction="none")
    s2 = s.clone().requires_grad_(True)
    ref = _dense_reference(s2, t, indices, T, tail)
    torch.testing.assert_close(ours, ref)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    if k == V:  # nothing cut off: the plain KD loss
        torch.testing.assert_close(ours, losses.kd_kl_loss(s, t, T=T, reduction="none"))


def test_fp16_cache_values_and_masks():
    s, t, values, indices = _case(4)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 2:] = False
    full = losses.sparse_kd_loss(s.float(), values.half(), indices.int(), T=2.0, mask=mask)
    exact = losses.sparse_kd_loss(s, values, indices, T=2.0, mask=mask)
    assert full.dtype == torch.float32
    torch.testing.assert_close(full.double(), exact, rtol=2e-3, atol=1e-6)  # fp16 storage


def test_sparse_loss_errors_say_what_to_pass():
    s, t, values, indices = _case(3)
    with pytest.raises(ValueError, match="teacher_lse"):
        losses.sparse_kd_loss(s, values, indices, tail="uniform")
    with pytest.raises(ValueError, match="tail"):
        losses.sparse_kd_loss(s, values, indices, tail="drop")
    with pytest.raises(ValueError, match=r"\(\*positions, k\)"):
        losses.sparse_kd_loss(s, values, indices[..., :2])


def test_a_t5_teacher_cache_holds_its_topk_and_lse():
    transformers = pytest.importorskip("transformers")
    from kdkit.seq2seq import teacher_forced_logits, teacher_topk

    config = transformers.T5Config(vocab_size=37, d_model=16, d_ff=32, num_layers=1,
                                   num_decoder_layers=1, num_heads=2, d_kv=8,
                                   decoder_start_token_id=0)
    torch.manual_seed(0)
    teacher = transformers.T5ForConditionalGeneration(config).eval()
    features = [{"input_ids": [5, 6, 7, 1], "labels": [8, 9, 1]},
                {"input_ids": [5, 1], "labels": [10, 11, 12, 13, 1]},
                {"input_ids": [4, 4, 1], "labels": [14, 1]}]
    cache = teacher_topk(teacher, features, k=5, T=2.0, batch_size=2)
    logits, labels = teacher_forced_logits(teacher, features)
    assert cache["topk_logits"].shape == (3, 5, 5) and cache["topk_logits"].dtype == torch.float16
    assert cache["topk_indices"].dtype == torch.int32 and torch.equal(cache["labels"], labels)
    real = labels != -100
    values, indices = logits.topk(5, dim=-1)
    torch.testing.assert_close(cache["topk_logits"].float()[real], values[real], rtol=1e-3,
                               atol=1e-3)
    assert torch.equal(cache["topk_indices"].long()[real], indices[real])
    torch.testing.assert_close(cache["lse"][real], torch.logsumexp(logits / 2.0, -1)[real])
    bytes_per_position = sum(cache[n][0, 0].nbytes for n in ("topk_logits", "topk_indices", "lse"))
    assert bytes_per_position == 6 * 5 + 4 < 4 * 37
    assert math.isclose(float(cache["T"]), 2.0)


def _tiny_t5(seed, vocab=29, layers=1):
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(vocab_size=vocab, d_model=16, d_ff=32, num_layers=layers,
                                   num_decoder_layers=layers, num_heads=2, d_kv=8,
                                   decoder_start_token_id=0, dropout_rate=0.0)
    torch.manual_seed(seed)
    return transformers.T5ForConditionalGeneration(config)


@pytest.mark.parametrize("tail", ["renormalise", "uniform"])
def test_a_student_from_the_full_cache_sees_what_the_live_teacher_gives(tail):
    from kdkit.data.batching import Seq2SeqCollator
    from kdkit.seq2seq import Seq2SeqObjective, attach_teacher_topk, teacher_topk

    teacher, student = _tiny_t5(0, layers=2).eval(), _tiny_t5(1)
    g = torch.Generator().manual_seed(3)
    features = [
        {"input_ids": torch.randint(3, 29, (n,), generator=g).tolist() + [1],
         "labels": torch.randint(3, 29, (m,), generator=g).tolist() + [1]}
        for n, m in ((4, 2), (6, 5), (2, 3), (5, 1))
    ]
    cache = teacher_topk(teacher, features, k=29, T=2.0)  # k = V: nothing cut off
    batch = Seq2SeqCollator()(attach_teacher_topk(features, cache))
    assert batch["topk_logits"].shape == (4, 6, 29)
    live = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.4)(student, batch)
    cached = Seq2SeqObjective(T=2.0, alpha=0.4, cached=True, cache_tail=tail)(student, batch)
    for key in ("target", "ce", "kd"):
        torch.testing.assert_close(cached[key], live[key], rtol=2e-3, atol=1e-4)  # fp16 cache
    with pytest.raises(ValueError, match="no teacher cache"):
        Seq2SeqObjective(T=2.0, cached=True)(student, Seq2SeqCollator()(features))
    with pytest.raises(ValueError, match="give no teacher"):
        Seq2SeqObjective(teacher=teacher, cached=True)


@pytest.mark.slow
def test_the_smoke_preset_trains_its_kd_student_from_the_cache(tmp_path):
    import json

    from kdkit.cli import main

    out = tmp_path / "run"
    assert main(["distill-t5", "--preset", "smoke", "--out", str(out), "--quiet",
                 "--teacher-topk", "4", "--arms", "word_kd,seq_word_kd"]) == 0
    history = json.loads((out / "history.json").read_text())
    for name in ("student_word_kd", "student_seq_word_kd"):  # one cache per KD arm
        topk = history["teacher"]["topk"][name]
        assert topk["k"] == 4 and topk["bytes_per_position"] == 6 * 4 + 4
        assert max(history[name]["kd"]) > 0
        assert (out / f"teacher_topk_{name}.pt").exists()
        assert (out / name / "model.safetensors").exists()
