"""On-policy distillation (kdkit.on_policy, GKD): the student's samples as targets, masked after
end-of-sequence; the step schedule; the step itself is a supervised step on the samples, exact
under gradient accumulation; an on-policy run resumes to the same weights; the JSD endpoints."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import kdkit.on_policy
from kdkit.config import TrainConfig
from kdkit.data.batching import Seq2SeqCollator, encode_pairs
from kdkit.data.text_tasks import build_word_tokenizer, make_text_tasks, task_vocabulary_texts
from kdkit.losses import kd_kl_loss, mask_from_labels
from kdkit.on_policy import OnPolicy, sample_targets
from kdkit.seq2seq import Seq2SeqObjective, backward_accumulated, train_seq2seq
from kdkit.t5 import build_t5

TASKS = ("date", "number")


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(task_vocabulary_texts(TASKS))


@pytest.fixture(scope="module")
def features(tokenizer):
    splits = make_text_tasks(TASKS, num_train=24, num_val=0, num_test=1, seed=2)
    return encode_pairs(tokenizer, splits.train, max_source_len=24, max_target_len=12)


def _t5(tokenizer, seed: int, d_model: int = 16, layers: int = 1, dropout: float = 0.0):
    torch.manual_seed(seed)
    return build_t5(len(tokenizer), d_model=d_model, d_ff=32, num_layers=layers,
                    num_decoder_layers=layers, num_heads=2, d_kv=8, dropout_rate=dropout)


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


def test_samples_keep_the_first_end_of_sequence_and_mask_what_follows(tokenizer, monkeypatch):
    model = _t5(tokenizer, 0).train()
    eos, pad = model.config.eos_token_id, model.config.pad_token_id
    generated = torch.tensor([[pad, 5, 6, eos, pad, pad],  # ends, then generate's padding
                              [pad, 7, eos, 8, eos, pad],  # a token after the first eos
                              [pad, 4, 4, 4, 4, 4]])  # never ends: all kept
    seen = {}

    def fake_generate(**kwargs):
        seen.update(kwargs, training=model.training)
        return generated

    monkeypatch.setattr(model, "generate", fake_generate)
    labels = sample_targets(model, torch.ones(3, 4, dtype=torch.long),
                            torch.ones(3, 4, dtype=torch.long), temperature=0.7, max_new_tokens=5)
    assert labels.tolist() == [[5, 6, eos, -100, -100], [7, eos, -100, -100, -100],
                               [4, 4, 4, 4, 4]]
    assert seen["do_sample"] and seen["temperature"] == 0.7 and seen["top_k"] == 0
    assert seen["top_p"] == 1.0 and seen["max_new_tokens"] == 5
    assert seen["training"] is False and model.training  # sampled in eval(), back to train()


def test_real_samples_are_masked_after_their_end(tokenizer, features):
    model = _t5(tokenizer, 1)
    batch = Seq2SeqCollator()(features[:8])
    torch.manual_seed(0)
    labels = sample_targets(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=6)
    torch.manual_seed(0)
    again = sample_targets(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=6)
    assert torch.equal(labels, again)  # the global generator decides: checkpoints save it
    eos = model.config.eos_token_id
    for row in labels.tolist():
        real = [t for t in row if t != -100]
        assert real and row[: len(real)] == real  # real tokens first, then only padding
        assert eos not in real[:-1]  # an end-of-sequence can only be the last real token


@given(st.floats(0, 1), st.integers(1, 60))
def test_the_schedule_samples_on_an_even_share_of_the_steps(fraction, steps):
    chosen = [OnPolicy(fraction).samples_at(s) for s in range(steps)]
    assert sum(chosen) == int(steps * fraction + 1e-9) or sum(chosen) == int(steps * fraction)


def test_schedule_endpoints_and_bad_settings():
    assert [OnPolicy(0.5).samples_at(s) for s in range(4)] == [False, True, False, True]
    assert not any(OnPolicy(0.0).samples_at(s) for s in range(10))
    assert all(OnPolicy(1.0).samples_at(s) for s in range(10))
    with pytest.raises(ValueError, match="fraction"):
        OnPolicy(1.5)
    with pytest.raises(ValueError, match="temperature"):
        OnPolicy(0.5, temperature=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        OnPolicy(0.5, max_new_tokens=0)
    with pytest.raises(ValueError, match="live teacher"):
        Seq2SeqObjective(T=2.0, cached=True, beta=0.5)
    warm = OnPolicy(0.5, start=3, warmup=Seq2SeqObjective())  # lambda counts from the start on
    assert [warm.samples_at(s) for s in range(7)] == [False] * 4 + [True, False, True]
    assert [warm.warming_up(s) for s in range(5)] == [True] * 3 + [False] * 2
    with pytest.raises(ValueError, match="needs warmup"):
        OnPolicy(0.5, start=3)
    with pytest.raises(ValueError, match="start"):
        OnPolicy(0.5, start=-1)


def test_the_warm_start_is_the_supervised_run_until_it_ends(tokenizer, features, monkeypatch):
    calls = []
    monkeypatch.setattr(kdkit.on_policy, "sample_targets",
                        lambda *a, **k: calls.append(1) or _first_tokens(*a, **k))
    teacher = _t5(tokenizer, 0, d_model=24, layers=2).eval()
    config = TrainConfig(max_steps=5, batch_size=8, lr=1e-2, group_by_length=False)
    gkd = Seq2SeqObjective(teacher=teacher, T=1.0, alpha=1.0, beta=1.0)
    policy = OnPolicy(1.0, start=3, warmup=Seq2SeqObjective())  # 3 CE steps, then on-policy
    runs = {}
    for stop in (3, 5):
        warm, plain = _t5(tokenizer, 1), _t5(tokenizer, 1)
        train_seq2seq(warm, features, config, objective=gkd, on_policy=policy, stop_after=stop,
                      progress=False)
        train_seq2seq(plain, features, config, progress=False, stop_after=stop)  # CE throughout
        runs[stop] = _equal(warm, plain)
    assert runs == {3: True, 5: False}  # the same weights until the switch, then not
    assert len(calls) == 2  # steps 3 and 4 sampled, the warm start's none


def _first_tokens(model, input_ids, attention_mask, **_):
    """A deterministic stand-in sampler: the first three source tokens, then end-of-sequence."""
    eos = torch.full((input_ids.shape[0], 1), 1)
    return torch.cat([input_ids[:, :3], eos], dim=1)


def test_an_on_policy_step_is_a_supervised_step_on_the_samples(tokenizer, features, monkeypatch):
    monkeypatch.setattr(kdkit.on_policy, "sample_targets", _first_tokens)
    teacher = _t5(tokenizer, 0, d_model=24, layers=2).eval()
    config = TrainConfig(max_steps=3, batch_size=8, lr=1e-2, group_by_length=False)
    objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=1.0, beta=0.5)
    on_policy = _t5(tokenizer, 1)
    train_seq2seq(on_policy, features, config, objective=objective, on_policy=OnPolicy(1.0),
                  progress=False)
    # the same steps on features whose targets are what the sampler writes
    relabelled = [{**f, "labels": f["input_ids"][:3] + [1]} for f in features]
    supervised = _t5(tokenizer, 1)
    train_seq2seq(supervised, relabelled, config, objective=objective, progress=False)
    assert _equal(on_policy, supervised)
    never = _t5(tokenizer, 1)  # lambda = 0: exactly the supervised run on the features
    train_seq2seq(never, features, config, objective=objective, on_policy=OnPolicy(0.0),
                  progress=False)
    plain = _t5(tokenizer, 1)
    train_seq2seq(plain, features, config, objective=objective, progress=False)
    assert _equal(never, plain) and not _equal(never, on_policy)


def test_on_policy_accumulation_normalises_by_the_sampled_tokens(tokenizer, features,
                                                                 monkeypatch):
    monkeypatch.setattr(kdkit.on_policy, "sample_targets", _first_tokens)
    teacher = _t5(tokenizer, 0, d_model=24, layers=2).eval()
    student = _t5(tokenizer, 1)
    objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=1.0, beta=0.3)
    collate, policy = Seq2SeqCollator(), OnPolicy(1.0)
    micro = [policy.sample_batch(student, collate(features[:3])),
             policy.sample_batch(student, collate(features[3:12]))]
    full = policy.sample_batch(student, collate(features[:12]))

    def grads(batches):
        student.zero_grad()
        sums = backward_accumulated(student, batches, objective)
        return sums, [p.grad.clone() for p in student.parameters()]

    (acc, acc_grads), (whole, whole_grads) = grads(micro), grads([full])
    assert acc["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    for a, b in zip(acc_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_jsd_endpoints_are_the_two_kls(tokenizer, features):
    teacher, student = _t5(tokenizer, 0, d_model=24, layers=2).eval(), _t5(tokenizer, 1)
    batch = Seq2SeqCollator()(features[:6])
    T = 2.0
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "decoder_input_ids": student.prepare_decoder_input_ids_from_labels(
                  labels=batch["labels"])}
    with torch.no_grad():
        s, t = student(**inputs).logits, teacher(**inputs).logits
    mask = mask_from_labels(batch["labels"])
    forward = kd_kl_loss(s, t, T=T, mask=mask, reduction="sum") / T**2  # KL(p_tea || p_stu)
    reverse = kd_kl_loss(t, s, T=T, mask=mask, reduction="sum") / T**2  # KL(p_stu || p_tea)
    with torch.no_grad():
        kd = {beta: Seq2SeqObjective(teacher=teacher, T=T, beta=beta)(student, batch)["kd"]
              for beta in (0.0, 1.0)}
    torch.testing.assert_close(kd[0.0], forward, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kd[1.0], reverse, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("warm_start", [0, 3], ids=["from-step-0", "after-a-warm-start"])
def test_an_interrupted_on_policy_run_resumes_to_the_same_weights(tmp_path, tokenizer, features,
                                                                  warm_start):
    teacher = _t5(tokenizer, 0, d_model=24, layers=2).eval()
    config = TrainConfig(max_steps=6, batch_size=8, lr=3e-3, checkpoint_every=2, seed=4)
    objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=1.0, beta=0.5)
    policy = OnPolicy(0.5, temperature=1.5, max_new_tokens=6, start=warm_start,
                      warmup=Seq2SeqObjective() if warm_start else None)
    full = _t5(tokenizer, 1)
    train_seq2seq(full, features, config, objective=objective, on_policy=policy,
                  checkpoint_dir=tmp_path / "full", progress=False)
    first = _t5(tokenizer, 1)
    train_seq2seq(first, features, config, objective=objective, on_policy=policy,
                  checkpoint_dir=tmp_path / "run", stop_after=5, progress=False)
    torch.manual_seed(777)  # elsewhere, as in a new process: the checkpoint's RNG must win
    resumed = _t5(tokenizer, 9)
    train_seq2seq(resumed, features, config, objective=objective, on_policy=policy,
                  checkpoint_dir=tmp_path / "run", resume=True, progress=False)
    assert _equal(resumed, full)


def test_divergence_by_position_averages_real_targets_only():
    from kdkit.on_policy import divergence_by_position

    teacher = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]],
                                      [[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))  # (2, 3, 2)
    student = torch.log(torch.tensor([[[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]],
                                      [[0.25, 0.75], [0.9, 0.1], [0.1, 0.9]]]))
    labels = torch.tensor([[1, 1, 1], [1, 1, -100]])  # the second target is one shorter

    def kl(p, q):
        return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    got = divergence_by_position(student, teacher, labels)
    assert got["count"].tolist() == [2, 2, 1]
    expected = [(0 + kl([.5, .5], [.25, .75])) / 2, (kl([.9, .1], [.1, .9]) + 0) / 2,
                kl([.2, .8], [.3, .7])]  # the padded position of target 2 is left out
    assert got["kl"].tolist() == pytest.approx(expected, rel=1e-5)
    assert got["agreement"].tolist() == pytest.approx([50.0, 50.0, 100.0])  # 0.5/0.5 ties: argmax 0
    with pytest.raises(ValueError, match="teacher_forced_logits"):
        divergence_by_position(student, teacher[:, :2], labels)
