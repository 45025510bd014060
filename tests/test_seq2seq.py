"""T5 distillation (kdkit.seq2seq): the word-level KD loss against a hand computation,
gradient accumulation by token count, atomic checkpoints, exact resume, generation, metrics,
and the `smoke` preset end to end through the command line."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from reference_metrics import rouge_l_f1

import kdkit.checkpoints
import kdkit.seq2seq
from kdkit.checkpoints import save_checkpoint
from kdkit.cli import main
from kdkit.config import ARMS, T5Size, TrainConfig, get_preset
from kdkit.data.batching import Seq2SeqCollator, encode_pairs
from kdkit.data.text_tasks import build_word_tokenizer, make_text_tasks, task_vocabulary_texts
from kdkit.features import identity_projection
from kdkit.losses import distillation_loss
from kdkit.metrics import bleu_score, compute_metric, exact_match, rouge_scores
from kdkit.pipeline import MODEL_NAMES, load_splits
from kdkit.schedules import warmup_decay_factor
from kdkit.seq2seq import (
    Seq2SeqObjective,
    backward_accumulated,
    evaluate_seq2seq,
    generate_texts,
    teacher_outputs,
    train_seq2seq,
)
from kdkit.t5 import build_t5, load_t5

TASKS = ("date", "number", "time")


@pytest.fixture(scope="module")
def splits():
    return make_text_tasks(TASKS, num_train=40, num_val=0, num_test=12, seed=1)


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(task_vocabulary_texts(TASKS))


@pytest.fixture(scope="module")
def features(splits, tokenizer):
    return encode_pairs(tokenizer, splits.train, max_source_len=24, max_target_len=12)


def _t5(tokenizer, seed: int, dropout: float = 0.0, d_model: int = 16, layers: int = 1):
    torch.manual_seed(seed)
    size = T5Size(d_model=d_model, d_ff=32, num_layers=layers, num_decoder_layers=layers,
                  num_heads=2, d_kv=8, dropout_rate=dropout)
    return build_t5(len(tokenizer), **vars(size))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- the KD loss


def test_distillation_loss_on_sequences_equals_the_hand_computation_and_ignores_padding():
    torch.manual_seed(0)
    B, L, V, T, alpha = 2, 4, 5, 2.0, 0.3
    s, t = torch.randn(B, L, V), torch.randn(B, L, V)
    labels = torch.tensor([[1, 4, 0, -100], [2, -100, -100, -100]])  # 4 real tokens
    ce_terms, kl_terms = [], []
    for b in range(B):
        for i in range(L):
            if labels[b, i] == -100:
                continue
            p_s = [math.exp(x) for x in s[b, i].tolist()]
            p_s = [x / sum(p_s) for x in p_s]
            ce_terms.append(-math.log(p_s[labels[b, i]]))
            q_s = [math.exp(x / T) for x in s[b, i].tolist()]
            q_t = [math.exp(x / T) for x in t[b, i].tolist()]
            q_s, q_t = [x / sum(q_s) for x in q_s], [x / sum(q_t) for x in q_t]
            kl = sum(pt * math.log(pt / ps) for pt, ps in zip(q_t, q_s, strict=True))
            kl_terms.append(T**2 * kl)
    hand_sum = (1 - alpha) * sum(ce_terms) + alpha * sum(kl_terms)
    got_sum = distillation_loss(s, t, labels, T=T, alpha=alpha, reduction="sum")
    got_mean = distillation_loss(s, t, labels, T=T, alpha=alpha)
    per_token = distillation_loss(s, t, labels, T=T, alpha=alpha, reduction="none")  # (B, L)
    assert got_sum.item() == pytest.approx(hand_sum, rel=1e-5)
    assert got_mean.item() == pytest.approx(hand_sum / 4, rel=1e-5)
    assert per_token.shape == (B, L) and bool((per_token[labels == -100] == 0).all())
    assert per_token.sum().item() == pytest.approx(hand_sum, rel=1e-5)
    # padding doesn't count: garbage logits at padded positions change nothing
    s2, t2 = s.clone(), t.clone()
    s2[labels == -100] = 100.0
    t2[labels == -100] = -50.0
    assert torch.allclose(distillation_loss(s2, t2, labels, T=T, alpha=alpha), got_mean)
    with pytest.raises(ValueError, match="reduction"):
        distillation_loss(s, t, labels, reduction="max")


def test_chunked_objective_equals_the_plain_one(features, tokenizer):
    teacher, student = _t5(tokenizer, 0, layers=2, d_model=24).eval(), _t5(tokenizer, 1)
    batch = Seq2SeqCollator()(features[:6])
    results = []
    for chunked in (False, True):
        student.zero_grad(set_to_none=True)
        objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.4, chunked=chunked)
        parts = objective(student, batch)
        parts["target"].backward()
        grads = [p.grad.clone() for p in student.parameters()]
        results.append(({k: v.detach() for k, v in parts.items()}, grads))
    (plain, g_plain), (chunked, g_chunked) = results
    for key in ("target", "ce", "kd"):
        torch.testing.assert_close(chunked[key], plain[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(g_chunked, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_objective_on_t5_matches_the_loss_on_its_logits(features, tokenizer):
    teacher, student = _t5(tokenizer, 0, layers=2), _t5(tokenizer, 1)
    batch = Seq2SeqCollator()(features[:6])
    objective = Seq2SeqObjective(teacher=teacher.eval(), T=2.0, alpha=0.7)
    parts = objective(student.eval(), batch)
    with torch.no_grad():
        s_logits, t_logits = student(**batch).logits, teacher(**batch).logits
    n = int((batch["labels"] != -100).sum())
    expected = distillation_loss(s_logits, t_logits, batch["labels"], T=2.0, alpha=0.7)
    assert (parts["target"] / n).item() == pytest.approx(expected.item(), rel=1e-5)
    # CE-only: the same number Hugging Face's own loss reports (mean over real tokens)
    ce = Seq2SeqObjective()(student, batch)
    assert (ce["target"] / n).item() == pytest.approx(student(**batch).loss.item(), rel=1e-5)
    with pytest.raises(ValueError, match="projection"):
        Seq2SeqObjective(teacher=teacher, hidden_weight=1.0)
    for bad in ({"alpha": 1.5}, {"alpha": -0.1}, {"T": 0.0}, {"hidden_weight": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Seq2SeqObjective(teacher=teacher, **bad)


# --------------------------------------------------------------------------- accumulation


@pytest.mark.parametrize("kd", [False, True])
def test_accumulation_by_token_count_equals_the_full_batch(features, tokenizer, kd):
    teacher = _t5(tokenizer, 0, layers=2, d_model=24).eval()
    student = _t5(tokenizer, 1)
    objective = Seq2SeqObjective()
    if kd:
        objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.5, hidden_weight=0.5,
                                     projection=identity_projection(
                                         student.config.d_model, teacher.config.d_model))
    collate = Seq2SeqCollator()
    # micro-batches of very different token counts: a mean of means would weight them wrongly
    short = sorted(features[:12], key=lambda f: len(f["labels"]))
    micro = [collate(short[:3]), collate(short[3:12])]
    full = collate(short)

    def grads(batches):
        student.zero_grad()
        if objective.projection is not None:
            objective.projection.zero_grad()
        sums = backward_accumulated(student, batches, objective)
        return sums, [p.grad.clone() for p in student.parameters()]

    acc_sums, acc_grads = grads(micro)
    full_sums, full_grads = grads([full])
    assert acc_sums["loss"] == pytest.approx(full_sums["loss"], rel=1e-5)
    for a, b in zip(acc_grads, full_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    if not kd:  # the loss of the accumulated step is the loss over all its tokens
        with torch.no_grad():
            assert acc_sums["loss"] == pytest.approx(student(**full).loss.item(), rel=1e-5)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "checkpoint.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes of a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(kdkit.checkpoints.torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temp file left
    state = kdkit.checkpoints.load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    fresh = tmp_path / "other" / "checkpoint.pt"
    monkeypatch.setattr(kdkit.checkpoints.torch, "save", broken_save)
    with pytest.raises(RuntimeError):
        save_checkpoint({"step": 1}, fresh)
    assert list(fresh.parent.iterdir()) == []  # no partial file where there was none


def test_interrupted_run_resumes_to_exactly_the_same_weights(tmp_path, features, tokenizer):
    teacher = _t5(tokenizer, 0, layers=2, d_model=24).eval()
    # 40 examples, 16 per step: the run crosses epoch boundaries
    config = TrainConfig(
        max_steps=7, batch_size=8, grad_accum_steps=2, lr=3e-3, warmup_steps=2,
        schedule="cosine", checkpoint_every=2, seed=3,
    )

    def objective(student):
        return Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.5, hidden_weight=0.1,
                                projection=identity_projection(
                                         student.config.d_model, teacher.config.d_model))

    full = _t5(tokenizer, 1, dropout=0.1)  # dropout: the RNG state must be restored too
    full_objective = objective(full)
    full_history = train_seq2seq(full, features, config, objective=full_objective,
                                 checkpoint_dir=tmp_path / "full", progress=False)

    first = _t5(tokenizer, 1, dropout=0.1)
    history = train_seq2seq(first, features, config, objective=objective(first),
                            checkpoint_dir=tmp_path / "run", stop_after=5,
                            progress=False)
    assert len(history["step"]) == 5  # interrupted after step 5; the checkpoint is from step 4
    torch.manual_seed(12345)  # the global RNG is elsewhere now, as in a new process
    resumed = _t5(tokenizer, 99, dropout=0.1)  # different weights until the checkpoint loads
    resumed_objective = objective(resumed)
    history = train_seq2seq(resumed, features, config, objective=resumed_objective,
                            checkpoint_dir=tmp_path / "run", resume=True,
                            progress=False)
    assert _states_equal(resumed, full)
    assert _states_equal(resumed_objective.projection, full_objective.projection)
    assert history == full_history
    assert history["step"] == list(range(1, 8))
    with pytest.raises(ValueError, match="different TrainConfig"):
        train_seq2seq(resumed, features, replace(config, lr=1e-3),
                      checkpoint_dir=tmp_path / "run", resume=True, progress=False)


def test_schedule_warms_up_then_decays():
    f = [warmup_decay_factor(s, warmup_steps=2, total_steps=6, schedule="linear") for s in range(7)]
    assert f == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    c = [warmup_decay_factor(s, warmup_steps=0, total_steps=4, schedule="cosine") for s in range(5)]
    assert c == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5,
                               0.5 - 0.5 * math.cos(math.pi / 4), 0.0])
    assert warmup_decay_factor(9, warmup_steps=1, total_steps=4, schedule="constant") == 1.0


def test_training_lowers_the_loss(features, tokenizer):
    model = _t5(tokenizer, 0)
    config = TrainConfig(max_steps=25, batch_size=20, lr=1e-2, warmup_steps=0)
    history = train_seq2seq(model, features, config, progress=False)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["lr"][0] == pytest.approx(1e-2) and history["kd"] == [0.0] * 25


@pytest.mark.slow
def test_compiled_step_trains_to_the_same_weights(features, tokenizer, monkeypatch):
    """TrainConfig(compile=True) runs every step through torch.compile, same arithmetic."""
    teacher = _t5(tokenizer, 0, layers=2, d_model=24).eval()
    calls, real_compile = [], torch.compile

    def spy_compile(fn, **kwargs):
        compiled = real_compile(fn, **kwargs)

        def counted(*args):
            calls.append(1)
            return compiled(*args)

        return counted

    monkeypatch.setattr(torch, "compile", spy_compile)
    students = []
    for compile_ in (False, True):
        student = _t5(tokenizer, 1)
        config = TrainConfig(max_steps=2, batch_size=8, lr=1e-2, compile=compile_)
        objective = Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.5)
        train_seq2seq(student, features, config, objective=objective, progress=False)
        students.append(student.state_dict())
    assert len(calls) == 2  # one compiled call per (single-micro-batch) step
    for key, eager in students[0].items():
        torch.testing.assert_close(students[1][key], eager, rtol=1e-5, atol=1e-6)


def test_validation_during_training_records_a_curve_and_changes_nothing(features, tokenizer):
    """eval_every: the model is scored in eval() mode, then training resumes in train() mode
    exactly as without validation (dropout on, same batches, same weights)."""
    config = TrainConfig(max_steps=4, batch_size=8, lr=1e-2, eval_every=2)
    plain, watched = _t5(tokenizer, 0, dropout=0.2), _t5(tokenizer, 0, dropout=0.2)
    train_seq2seq(plain, features, config, progress=False)
    modes = []

    def validate(model):
        modes.append(model.training)
        return 10.0 * len(modes)

    history = train_seq2seq(watched, features, config, validate=validate, progress=False)
    assert history["val_step"] == [2, 4] and history["val_score"] == [10.0, 20.0]
    assert modes == [False, False]
    assert _states_equal(plain, watched)


def test_sequence_log_probs_are_the_product_of_the_step_probabilities(splits, tokenizer):
    model = _t5(tokenizer, 3).eval()
    pairs = splits.test[:3] + [(splits.test[0][0], splits.test[1][1])]  # one source, two targets
    got = kdkit.seq2seq.sequence_log_probs(model, encode_pairs(tokenizer, pairs, 24, 12))
    for (source, target), value in zip(pairs, got.tolist(), strict=True):
        probs, _ = kdkit.seq2seq.step_distributions(model, tokenizer, source, target)
        ids = tokenizer(target).input_ids  # the target's tokens, end-of-sequence included
        expected = sum(math.log(probs[t, i]) for t, i in enumerate(ids))
        assert value == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- generation


def test_generation_keeps_input_order_and_seqkd_pairs(splits, tokenizer):
    model = _t5(tokenizer, 0).eval()
    sources = [s for s, _ in splits.test]
    batched = generate_texts(model, tokenizer, sources, batch_size=5, max_new_tokens=6)
    alone = [generate_texts(model, tokenizer, [s], max_new_tokens=6)[0] for s in sources[:4]]
    assert batched[:4] == alone and len(batched) == len(sources)
    pairs = teacher_outputs(model, tokenizer, splits.test[:3], max_new_tokens=6, num_beams=2)
    assert [s for s, _ in pairs] == sources[:3] and all(isinstance(t, str) for _, t in pairs)


def test_metrics():
    assert exact_match(["a", "b ", "c"], ["a", "b", "d"]) == pytest.approx(200 / 3)
    assert exact_match([], []) == 0.0
    with pytest.raises(ValueError, match="2 predictions but 1"):
        exact_match(["a", "b"], ["a"])
    rouge = rouge_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert rouge == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert 0 < compute_metric("rougeL", ["a cat sat"], ["the cat sat down"]) < 100
    assert bleu_score(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metric("accuracy", ["a"], ["a"])


def test_evaluate_seq2seq_scores_the_models_own_predictions(splits, tokenizer, monkeypatch):
    pairs = splits.test[:6]
    # a stand-in decoder: right on the first four sources, half right on the fifth, wrong after
    answers = {s: t for s, t in pairs[:4]}
    answers[pairs[4][0]] = pairs[4][1].split()[0] + " xyz"
    answers[pairs[5][0]] = "xyz"
    decoded = []

    def fake_generate(model, tok, sources, **kwargs):
        decoded.append(kwargs)
        return [answers[s] for s in sources]

    monkeypatch.setattr(kdkit.seq2seq, "generate_texts", fake_generate)
    model = _t5(tokenizer, 0)
    result = evaluate_seq2seq(model, tokenizer, pairs, metric="exact_match", max_new_tokens=7)
    assert result["score"] == pytest.approx(100 * 4 / 6) and result["num_examples"] == 6
    assert all(kwargs["max_new_tokens"] == 7 for kwargs in decoded)
    rouge = evaluate_seq2seq(model, tokenizer, pairs, metric="rougeL")["score"]
    expected = 100 * sum(rouge_l_f1(answers[s], t) for s, t in pairs) / len(pairs)
    assert rouge == pytest.approx(expected) and 4 / 6 * 100 < rouge < 100


# --------------------------------------------------------------------------- command line


@pytest.mark.slow
def test_smoke_preset_end_to_end_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill-t5", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(MODEL_NAMES)
    smoke = get_preset("smoke")
    test_pairs = load_splits(smoke).test
    for name, m in metrics.items():
        assert {"params", "metric", "score", "latency_ms", "throughput"} <= set(m), name
        assert (out / name / "model.safetensors").exists()
        # the score is the exact match of the saved model's outputs on the test split
        saved, saved_tok = load_t5(out / name)
        predictions = generate_texts(
            saved, saved_tok, [s for s, _ in test_pairs], max_source_len=smoke.max_source_len,
            max_new_tokens=smoke.max_new_tokens, num_beams=smoke.num_beams,
        )
        references = [t for _, t in test_pairs]
        hits = sum(p.strip() == t.strip() for p, t in zip(predictions, references, strict=True))
        assert m["metric"] == "exact_match" and m["num_examples"] == len(test_pairs) == 24
        assert m["score"] == pytest.approx(100 * hits / len(test_pairs)), name
        assert [x["prediction"] for x in m["samples"]] == predictions[: len(m["samples"])]
        assert m["params"] == sum(p.numel() for p in saved.parameters())
    assert metrics["teacher"]["params"] > metrics["student_word_kd"]["params"]
    assert len({metrics[f"student_{arm}"]["params"] for arm in ARMS}) == 1  # one student shape
    history = json.loads((out / "history.json").read_text())
    for arm in ("word_kd", "seq_word_kd"):  # the smoke preset uses every term
        h = history[f"student_{arm}"]
        assert len(h["loss"]) == 6 and max(h["kd"]) > 0 and max(h["hidden"]) > 0
    for arm in ("ce", "seq_kd"):  # cross-entropy alone
        assert max(history[f"student_{arm}"]["kd"]) == 0
    assert max(history["student_on_policy"]["kd"]) > 0  # JSD on samples and teacher outputs
    assert max(history["student_on_policy"]["ce"]) > 0  # logged, though alpha = 1 leaves it out
    for arm in ARMS:  # learning curves: validation exact match every 3 steps
        h = history[f"student_{arm}"]
        assert h["val_step"] == [3, 6] and all(0 <= v <= 100 for v in h["val_score"])
    # half the training pairs are unlabelled for the students: the teacher labels all inputs
    outputs = json.loads((out / "teacher_outputs_train.json").read_text())
    assert len(outputs) == 192 and all(len(pair) == 2 for pair in outputs)
    assert "student_ce" in capsys.readouterr().out

    # --resume reuses the finished models: same scores
    assert main(["distill-t5", "--preset", "smoke", "--out", str(out), "--quiet", "--resume"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert {k: v["score"] for k, v in again.items()} == {k: v["score"] for k, v in metrics.items()}

    with pytest.raises(SystemExit):  # a different config cannot resume this run
        main(["distill-t5", "--preset", "smoke", "--out", str(out), "--quiet", "--resume",
              "--seed", "5"])
    assert "different config" in capsys.readouterr().err

    # the saved teacher directory as --teacher: the pretrained (name-or-directory) path
    model, tok = load_t5(out / "teacher")
    assert len(tok) == model.config.vocab_size
    out2 = tmp_path / "from_dir"
    argv = ["distill-t5", "--preset", "smoke", "--out", str(out2), "--quiet",
            "--teacher", str(out / "teacher"), "--teacher-steps", "0", "--arms", "ce,word_kd",
            "--num-labelled", "all"]
    assert main(argv) == 0
    metrics2 = json.loads((out2 / "metrics.json").read_text())
    assert set(metrics2) == {"teacher", "student_ce", "student_word_kd"}
    assert not (out2 / "teacher_outputs_train.json").exists()  # no sequence-level arm
    assert metrics2["teacher"]["score"] == metrics["teacher"]["score"]

    # --teacher-outputs: the first run's outputs reused, no generation; the same student
    out3 = tmp_path / "reused"
    argv = ["distill-t5", "--preset", "smoke", "--out", str(out3), "--quiet",
            "--teacher", str(out / "teacher"), "--teacher-steps", "0", "--arms", "seq_kd",
            "--teacher-outputs", str(out / "teacher_outputs_train.json")]
    assert main(argv) == 0
    metrics3 = json.loads((out3 / "metrics.json").read_text())
    assert metrics3["student_seq_kd"]["score"] == metrics["student_seq_kd"]["score"]
    assert not (out3 / "teacher_outputs_train.json").exists()
    assert "outputs_seconds" not in json.loads((out3 / "history.json").read_text())["teacher"]


@pytest.mark.slow
def test_real_size_g2p_path_runs_on_a_cpu(tmp_path):
    """T5's published shapes (t5-base teacher, t5-small student, 32,128 logits), random init,
    the locally built tokenizer and the G2P data: the path a GPU run takes, two steps each."""
    out = tmp_path / "real"
    argv = ["distill-t5", "--preset", "cpu", "--out", str(out), "--quiet",
            "--teacher-size", "t5-base", "--student-size", "t5-small", "--vocab-size", "32128",
            "--teacher-steps", "2", "--student-steps", "2", "--batch-size", "2",
            "--num-train", "6", "--num-test", "3", "--num-labelled", "3"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(MODEL_NAMES)
    assert 222e6 < metrics["teacher"]["params"] < 224e6  # t5-base's 222.9M
    for arm in ARMS:
        m = metrics[f"student_{arm}"]
        assert 60e6 < m["params"] < 61e6 and m["num_examples"] == 3  # t5-small's 60.5M
        assert set(m["scores"]) == {"word_accuracy", "phoneme_error_rate"}
    history = json.loads((out / "history.json").read_text())
    assert len(history["teacher"]["loss"]) == 2 and len(history["student_seq_word_kd"]["kd"]) == 2
    model, tok = load_t5(out / "student_word_kd")
    assert model.config.vocab_size == 32128 and len(tok) == 98  # letters, phonemes, specials


def test_command_line_offline_error(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as info:
        main(["distill-t5", "--preset", "smoke", "--out", str(tmp_path), "--quiet",
              "--teacher", "made-up-org/no-such-t5-kdkit"])
    assert info.value.code == 2
    assert not (tmp_path / "config.json").exists()  # refused before anything ran
    err = capsys.readouterr().err
    assert "made-up-org/no-such-t5-kdkit" in err and "--preset cpu" in err


def test_command_line_compile_flag_reaches_every_training_run():
    from kdkit.cli import build_parser, distill_t5_config

    args = build_parser().parse_args(
        ["distill-t5", "--preset", "smoke", "--out", "x", "--teacher-steps", "7", "--compile"]
    )
    config, _ = distill_t5_config(args)
    assert config.teacher_train.compile and config.student_train.compile
    assert config.teacher_train.max_steps == 7  # the other flags' changes are kept
    plain_args = build_parser().parse_args(["distill-t5", "--preset", "smoke", "--out", "x"])
    plain, _ = distill_t5_config(plain_args)
    assert not plain.teacher_train.compile and not plain.student_train.compile


def test_command_line_on_policy_flags_reach_the_config(capsys):
    from kdkit.cli import build_parser, distill_t5_config

    args = build_parser().parse_args(
        ["distill-t5", "--preset", "smoke", "--out", "x", "--arms", "on_policy", "--beta", "1",
         "--on-policy-fraction", "0.25", "--sample-temperature", "0.7", "--on-policy-start", "3",
         "--teacher-outputs", "runs/a/teacher_outputs_train.json"]
    )
    config, _ = distill_t5_config(args)
    assert config.arms == ("on_policy",) and config.on_policy_beta == 1.0
    assert config.on_policy_fraction == 0.25 and config.sample_temperature == 0.7
    assert config.on_policy_start == 3
    assert config.teacher_outputs == "runs/a/teacher_outputs_train.json"
    with pytest.raises(SystemExit) as info:  # the smoke preset's students train for 6 steps
        main(["distill-t5", "--preset", "smoke", "--out", "x", "--on-policy-start", "6"])
    assert info.value.code == 2 and "never sample" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["distill-t5", "--preset", "smoke", "--out", "x", "--beta", "2"])
    assert info.value.code == 2 and "on_policy_beta" in capsys.readouterr().err


def test_command_line_rejects_unknown_presets(capsys):
    with pytest.raises(SystemExit):
        main(["distill-t5", "--preset", "huge", "--out", "x"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_preset_with_the_chunked_loss(tmp_path):
    out = tmp_path / "run"
    assert main(["distill-t5", "--preset", "smoke", "--out", str(out), "--quiet",
                 "--chunked-loss"]) == 0
    config = json.loads((out / "config.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert config["chunked_loss"] is True
    assert max(history["student_word_kd"]["kd"]) > 0
    assert max(history["student_seq_word_kd"]["hidden"]) > 0



def test_reused_teacher_outputs_must_cover_the_same_inputs(tmp_path):
    from kdkit.pipeline import reused_teacher_outputs

    train = [("a b", "x"), ("c d", "y"), ("e f", "z")]
    path = tmp_path / "teacher_outputs_train.json"
    path.write_text(json.dumps([["a b", "X"], ["c d", "Y"], ["e f", "Z"]]))
    assert reused_teacher_outputs(path, train) == [("a b", "X"), ("c d", "Y"), ("e f", "Z")]
    with pytest.raises(ValueError, match="first difference at input 1"):
        reused_teacher_outputs(path, [("a b", "x"), ("c e", "y"), ("e f", "z")])
    with pytest.raises(ValueError, match="2 training inputs"):  # fewer inputs this time
        reused_teacher_outputs(path, train[:2])
    with pytest.raises(FileNotFoundError, match="is not a file"):
        reused_teacher_outputs(tmp_path / "missing.json", train)


@pytest.mark.slow
def test_the_on_policy_warm_start_is_shared_with_the_sequence_level_arm(tmp_path):
    """With on_policy_start S, a run that trains seq_kd too hands it the step-S state instead
    of training those S steps again: the same on-policy student, bit for bit."""
    from kdkit.pipeline import distill_t5

    smoke = replace(get_preset("smoke"), on_policy_start=3, on_policy_fraction=1.0)
    logs = []
    both = distill_t5(replace(smoke, arms=("seq_kd", "on_policy")), tmp_path / "both",
                      progress=False, log=logs.append)
    assert "student_on_policy: continuing from the shared warm start" in logs
    alone = distill_t5(replace(smoke, arms=("on_policy",)), tmp_path / "alone",
                       progress=False, log=lambda _: None)
    shared, _ = load_t5(tmp_path / "both" / "student_on_policy", with_tokenizer=False)
    own, _ = load_t5(tmp_path / "alone" / "student_on_policy", with_tokenizer=False)
    assert all(torch.equal(a, b) for a, b in zip(shared.state_dict().values(),
                                                 own.state_dict().values(), strict=True))
    assert both["student_on_policy"]["score"] == alone["student_on_policy"]["score"]
    history = json.loads((tmp_path / "both" / "history.json").read_text())
    seq, gkd = history["student_seq_kd"], history["student_on_policy"]
    assert gkd["loss"][:3] == seq["loss"][:3] and gkd["kd"][3:] != seq["kd"][3:]


@pytest.mark.parametrize("from_teacher", [False, True])
def test_build_student_gives_the_initialisation_distill_t5_starts_from(tmp_path, monkeypatch,
                                                                       from_teacher):
    """Notebook 06 rebuilds the students' starting weights with build_student: the very
    weights distill_t5 hands its student loop."""
    import kdkit.pipeline
    from kdkit.pipeline import build_student, distill_t5

    started = {}

    def recording(model, *args, desc="train", **kwargs):
        started[desc] = {k: v.clone() for k, v in model.state_dict().items()}
        return train_seq2seq(model, *args, desc=desc, **kwargs)

    monkeypatch.setattr(kdkit.pipeline, "train_seq2seq", recording)
    smoke = get_preset("smoke")
    config = replace(smoke, arms=("ce",), student_from_teacher=from_teacher)
    distill_t5(config, tmp_path, progress=False, log=lambda _: None)
    teacher, tokenizer = load_t5(tmp_path / "teacher")
    rebuilt = build_student(config, teacher, tokenizer).state_dict()
    assert started["student_ce"].keys() == rebuilt.keys()
    assert all(torch.equal(v, rebuilt[k]) for k, v in started["student_ce"].items())
