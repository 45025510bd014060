"""What notebook 06 relies on beyond the pipeline: parallel runs that equal serial ones, the
gpu preset's code path on a CPU (pretrained directories, a local summarisation dataset,
ROUGE, beam search, accumulation, clipping, the bf16 switch), the XSum loading fallback,
teacher-forced per-step distributions, fidelity measures, parameter breakdowns and plots."""

from __future__ import annotations

import json
from dataclasses import replace

import matplotlib.pyplot as plt
import pytest
import torch
from reference_metrics import rouge_l_f1
from safetensors.torch import load_file

from kdkit import plotting
from kdkit.config import get_preset
from kdkit.data.batching import encode_pairs
from kdkit.data.loading import load_text_pairs
from kdkit.data.text_tasks import (
    build_word_tokenizer,
    make_text_tasks,
    task_vocabulary_texts,
)
from kdkit.distributions import entropy
from kdkit.losses import distillation_loss, kd_kl_loss
from kdkit.pipeline import MODEL_NAMES, distill_t5, distill_t5_jobs
from kdkit.seq2seq import (
    generate_texts,
    step_distributions,
    teacher_forced_logits,
    token_fidelity,
)
from kdkit.t5 import (
    build_t5,
    load_t5,
    save_t5,
    t5_param_breakdown,
    t5_student_from_teacher,
)

TINY = dict(d_model=16, d_ff=32, num_heads=2, d_kv=8)


@pytest.fixture(scope="module")
def splits():
    return make_text_tasks(("date",), num_train=40, num_val=4, num_test=12, seed=0)


@pytest.fixture(scope="module")
def tokenizer(splits):
    return build_word_tokenizer(task_vocabulary_texts(("date",)))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return build_t5(len(tokenizer), num_layers=2, num_decoder_layers=2, **TINY).eval()


# --------------------------------------------------------------------------- parallel runs


@pytest.mark.slow
def test_parallel_runs_give_the_same_models_as_serial_runs(tmp_path):
    smoke = get_preset("smoke")
    jobs = {f"seed{s}": replace(smoke, seed=s, arms=("ce", "word_kd")) for s in (0, 1)}
    parallel = distill_t5_jobs(jobs, tmp_path / "par", workers=2, progress=False)
    serial = distill_t5_jobs(jobs, tmp_path / "ser", workers=1, progress=False)
    assert list(parallel) == ["seed0", "seed1"]  # the order of jobs, not of completion
    for name in jobs:
        assert {k: v["score"] for k, v in parallel[name].items()} == {
            k: v["score"] for k, v in serial[name].items()
        }
        a = load_file(tmp_path / "par" / name / "student_word_kd" / "model.safetensors")
        b = load_file(tmp_path / "ser" / name / "student_word_kd" / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert (tmp_path / "par" / name / "log.txt").read_text().count("student_word_kd") >= 1
    # different seeds are different runs
    a = load_file(tmp_path / "ser" / "seed0" / "student_word_kd" / "model.safetensors")
    b = load_file(tmp_path / "ser" / "seed1" / "student_word_kd" / "model.safetensors")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_parallel_runs_reject_bad_jobs(tmp_path):
    smoke = get_preset("smoke")
    with pytest.raises(ValueError, match="empty"):
        distill_t5_jobs({}, tmp_path)
    with pytest.raises(ValueError, match="plain directory name"):
        distill_t5_jobs({"a/b": smoke}, tmp_path)
    with pytest.raises(ValueError, match="T5DistillConfig"):
        distill_t5_jobs({"a": {"preset": "smoke"}}, tmp_path)
    with pytest.raises(ValueError, match="workers"):
        distill_t5_jobs({"a": smoke}, tmp_path, workers=0)


# --------------------------------------------------------------------------- the gpu code path


def _write_summaries(directory, sizes):
    directory.mkdir()
    words = "the council said on monday that new rules for river boats start next year".split()
    for split, n in sizes.items():
        rows = []
        for i in range(n):
            doc = " ".join(words[(i + j) % len(words)] for j in range(12))
            rows.append({"document": doc, "summary": " ".join(doc.split()[:4]), "id": str(i)})
        (directory / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def test_gpu_preset_code_path_runs_on_a_cpu_with_local_models_and_data(tmp_path):
    """The gpu preset, shrunk: pretrained teacher and student from directories (the
    from_pretrained path), a local XSum-shaped dataset, teacher fine-tuning, ROUGE-L, beam
    search, accumulation, clipping, weight decay and bf16=True (autocast only on CUDA)."""
    data = tmp_path / "xsum_like"
    _write_summaries(data, {"train": 48, "validation": 4, "test": 8})
    pairs = load_text_pairs(str(data))  # document/summary found without naming them
    texts = [t for split in (pairs.train, pairs.validation, pairs.test) for p in split for t in p]
    tokenizer = build_word_tokenizer(texts)
    torch.manual_seed(0)
    teacher = build_t5(len(tokenizer), num_layers=2, num_decoder_layers=2, **TINY)
    save_t5(teacher, tokenizer, tmp_path / "teacher")
    save_t5(t5_student_from_teacher(teacher, 1, 1), tokenizer, tmp_path / "student")

    gpu = get_preset("gpu")
    small_run = dict(max_steps=4, batch_size=8, warmup_steps=1, checkpoint_every=2)
    config = replace(
        gpu,
        dataset=str(data),
        teacher=str(tmp_path / "teacher"),
        student=str(tmp_path / "student"),
        num_train=48, num_val=4, num_test=8, max_source_len=24, max_target_len=8,
        teacher_train=replace(gpu.teacher_train, **small_run),
        student_train=replace(gpu.student_train, **small_run),
        max_new_tokens=6, eval_batch_size=4, device="cpu",
    )
    assert config.student_train.bf16 and config.student_train.grad_accum_steps == 2
    assert config.metric == "rougeL" and config.num_beams == 4 and config.seqkd_num_beams == 4
    metrics = distill_t5(config, tmp_path / "run", progress=False, log=lambda _: None)
    assert set(metrics) == set(MODEL_NAMES)
    sources = [s for s, _ in pairs.test]
    for name, m in metrics.items():
        assert m["metric"] == "rougeL" and m["num_examples"] == 8
        # the score is the mean ROUGE-L F1 of the saved model's beam-search outputs
        saved, saved_tok = load_t5(tmp_path / "run" / name)
        predictions = generate_texts(
            saved, saved_tok, sources, max_source_len=24, max_new_tokens=6, num_beams=4
        )
        expected = 100 * sum(
            rouge_l_f1(p, t) for p, (_, t) in zip(predictions, pairs.test, strict=True)
        ) / len(sources)
        assert m["score"] == pytest.approx(expected), name
    assert metrics["teacher"]["params"] > metrics["student_word_kd"]["params"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["teacher"]["loss"]) == 4  # the pretrained teacher was fine-tuned
    assert max(history["student_word_kd"]["kd"]) > 0
    assert (tmp_path / "run" / "checkpoints" / "student_word_kd" / "checkpoint.pt").exists()


# --------------------------------------------------------------------------- XSum loading


def test_a_script_dataset_is_read_from_the_parquet_export(monkeypatch):
    import datasets

    import kdkit.data.loading as data_module

    calls = []

    def fake_load_dataset(name, config_name=None, **kwargs):
        calls.append((name, config_name, kwargs))
        if "revision" not in kwargs:
            raise RuntimeError("Dataset scripts are no longer supported, but found xsum.py")
        split = datasets.Dataset.from_dict({"document": ["a long text"], "summary": ["short"]})
        return datasets.DatasetDict(train=split, validation=split, test=split)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(data_module, "require_hub", lambda *a: None)
    pairs = load_text_pairs("EdinburghNLP/xsum")
    assert pairs.train == [("summarize: a long text", "short")]
    assert calls[1] == ("EdinburghNLP/xsum", "default", {"revision": "refs/convert/parquet"})


def test_local_data_needs_known_columns(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}))
    with pytest.raises(ValueError, match="source_field="):
        load_text_pairs(str(data))
    pairs = load_text_pairs(str(data), source_field="question", target_field="answer")
    assert pairs.test == [("q", "a")]


# --------------------------------------------------------------------------- per-step views


def test_teacher_forced_logits_match_the_models_own_forward_pass(model, tokenizer, splits):
    features = encode_pairs(tokenizer, splits.test, 32, 16)
    logits, labels = teacher_forced_logits(model, features, batch_size=5)  # uneven batches
    assert logits.shape[:2] == labels.shape and logits.shape[-1] == model.config.vocab_size
    for i in (0, 7, 11):
        n = len(features[i]["labels"])
        assert (labels[i, :n] == torch.tensor(features[i]["labels"])).all()
        assert (labels[i, n:] == -100).all()
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor([features[i]["input_ids"]]),
                labels=torch.tensor([features[i]["labels"]]),
            )
        torch.testing.assert_close(logits[i, :n], out.logits[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="features is empty"):
        teacher_forced_logits(model, [])


def test_step_distributions_are_softened_softmaxes(model, tokenizer, splits):
    source, target = splits.test[0]
    p1, tokens = step_distributions(model, tokenizer, source, target, T=1.0)
    p4, _ = step_distributions(model, tokenizer, source, target, T=4.0)
    assert tokens[-1] == "</s>" and p1.shape == (len(tokens), model.config.vocab_size)
    torch.testing.assert_close(p1.sum(-1), torch.ones(len(tokens)))
    assert (entropy(p4) > entropy(p1)).all()  # a higher T flattens every step
    with pytest.raises(ValueError, match="finite number > 0"):
        step_distributions(model, tokenizer, source, target, T=0.0)


def test_token_fidelity(model, tokenizer, splits):
    features = encode_pairs(tokenizer, splits.test, 32, 16)
    t_logits, labels = teacher_forced_logits(model, features)
    same = token_fidelity(t_logits, t_logits, labels)
    assert same["kl"] == 0.0 and same["agreement"] == 100.0
    assert same["student_accuracy"] == same["teacher_accuracy"]
    torch.manual_seed(1)
    s_logits = t_logits + torch.randn_like(t_logits)
    labels = labels.clone()
    labels[::2, :4] = -100  # ignored tokens (like padding): they must not count
    fid = token_fidelity(s_logits, t_logits, labels, T=2.0)
    mask = labels != -100
    expected = kd_kl_loss(s_logits, t_logits, T=2.0, mask=mask) / 4.0  # mean over real tokens
    assert fid["kl"] == pytest.approx(float(expected), rel=1e-5)
    # percentages over real tokens only, counted here one token at a time
    s_top, t_top = s_logits.argmax(-1), t_logits.argmax(-1)
    real = [(i, j) for i in range(labels.shape[0]) for j in range(labels.shape[1]) if mask[i, j]]
    same_top = sum(int(s_top[i, j] == t_top[i, j]) for i, j in real)
    s_right = sum(int(s_top[i, j] == labels[i, j]) for i, j in real)
    t_right = sum(int(t_top[i, j] == labels[i, j]) for i, j in real)
    assert 0 < same_top < len(real)  # the noise changed some top tokens, not all
    assert fid["agreement"] == pytest.approx(100 * same_top / len(real))
    assert fid["student_accuracy"] == pytest.approx(100 * s_right / len(real))
    assert fid["teacher_accuracy"] == pytest.approx(100 * t_right / len(real))
    with pytest.raises(ValueError, match="shapes differ"):
        token_fidelity(s_logits[:, :-1], t_logits, labels)
    with pytest.raises(ValueError, match="no real token"):
        token_fidelity(s_logits, t_logits, torch.full_like(labels, -100))


def test_distillation_loss_checks_alpha_for_sums():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, -100], [0, -100, -100]])
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits, logits, labels, alpha=1.5, reduction="sum")


def test_param_breakdown_adds_up_and_shows_where_a_student_is_smaller(model):
    parts = t5_param_breakdown(model)
    assert parts["total"] == sum(p.numel() for p in model.parameters())
    assert parts["embeddings"] == model.shared.weight.numel()
    decoder_only = t5_param_breakdown(t5_student_from_teacher(model, 2, 1))
    assert decoder_only["encoder"] == parts["encoder"]
    assert decoder_only["decoder"] < parts["decoder"]


# --------------------------------------------------------------------------- plots


def test_notebook_06_plots_return_figures(model, tokenizer, splits):
    import numpy as np

    source, target = splits.test[0]
    probs, tokens = step_distributions(model, tokenizer, source, target)
    fig = plotting.plot_encoder_decoder(tokenizer.tokenize(source), tokens)
    assert fig.axes[0].get_title().startswith("T5")
    fig = plotting.plot_encoder_decoder(
        ["▁a", "▁b", "c"], ["x", "y", "</s>"], step_probs=[0.2, 0.5, 1.0]
    )
    texts = fig.axes[0].texts
    # the input row, left to right: the source tokens, then <pad> and the target shifted right
    inputs = sorted((t.get_position(), t.get_text()) for t in texts if t.get_position()[1] == 0.3)
    assert [text for _, text in inputs] == ["▁a", "▁b", "c", "<pad>", "x", "y"]
    assert [t.get_text() for t in texts if t.get_fontweight() == "bold"] == ["x", "y", "</s>"]
    filled = [p for p in fig.axes[0].patches if p.get_alpha() == 0.8]  # the step bars
    np.testing.assert_allclose([p.get_height() for p in filled], [1.2 * 0.2, 1.2 * 0.5, 1.2])
    with pytest.raises(ValueError, match="one value per target token"):
        plotting.plot_encoder_decoder(["a"], ["b", "c"], step_probs=[0.5])
    vocab = tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size)))
    grid = {T: {"teacher": probs, "student": probs.flip(-1)} for T in (1, 2)}
    fig2 = plotting.plot_decoder_steps(grid, vocab, tokens, [0, 3], top_k=4)
    assert len(fig2.axes) == 4
    for r, T in enumerate(grid):
        for c, t in enumerate([0, 3]):
            ax = fig2.axes[2 * r + c]  # rows: temperatures, columns: steps
            assert ax.get_title() == (f"step {t}: next is {tokens[t]!r}" if r == 0 else "")
            order = np.argsort(-probs[t].numpy())[:4]  # the teacher's top 4 tokens at step t
            teacher_bars, student_bars = ax.containers  # one bar per token, top ranked on top
            assert len(teacher_bars) == len(student_bars) == 4
            np.testing.assert_allclose(
                [b.get_width() for b in teacher_bars], probs[t, order].numpy(), rtol=1e-6
            )
            np.testing.assert_allclose(
                [b.get_width() for b in student_bars], probs.flip(-1)[t, order].numpy(), rtol=1e-6
            )
            labels = [vocab[j] + (" ←" if vocab[j] == tokens[t] else "") for j in order]
            ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), reverse=True)
            assert [label.get_text() for _, label in ticks] == labels
        assert fig2.axes[2 * r].get_ylabel() == f"T = {T:g}"
    with pytest.raises(ValueError, match="outside the target"):
        plotting.plot_decoder_steps(grid, vocab, tokens, [len(tokens)])
    with pytest.raises(ValueError, match="reference"):
        plotting.plot_decoder_steps(grid, vocab, tokens, [0], reference="nobody")
    plt.close("all")



def test_learning_curves_plot_each_arms_mean_and_seeds():
    import matplotlib.pyplot as plt
    import numpy as np

    def history(offset: float) -> dict:
        return {"loss": [3.0 - 0.01 * i + offset for i in range(100)],
                "val_step": [50, 100], "val_score": [10.0 + offset, 20.0 + offset]}

    histories = {"CE": [history(0.0), history(2.0)], "KD": [history(1.0)]}
    fig = plotting.plot_learning_curves(histories, metric="word accuracy (%)", smooth=10)
    ax_loss, ax_val = fig.axes
    loss_lines = {line.get_label(): line for line in ax_loss.lines}
    # CE: the mean of its two seeds' losses, then a running mean over 10 steps
    mean = np.array([3.0 - 0.01 * i + 1.0 for i in range(100)])
    np.testing.assert_allclose(loss_lines["CE"].get_ydata(),
                               np.convolve(mean, np.ones(10) / 10, mode="valid"))
    np.testing.assert_allclose(loss_lines["CE"].get_xdata(), np.arange(10, 101))
    bold = {line.get_label(): line for line in ax_val.lines if line.get_linewidth() == 2}
    np.testing.assert_allclose(bold["CE"].get_ydata(), [11.0, 21.0])  # mean of the seeds
    np.testing.assert_allclose(bold["KD"].get_ydata(), [11.0, 21.0])
    assert len(ax_val.lines) == 3 + 2  # one thin line per seed, one bold per arm
    assert ax_val.get_ylabel() == "word accuracy (%)"
    with pytest.raises(ValueError, match="eval_every"):
        plotting.plot_learning_curves({"CE": [{"loss": [1.0], "val_step": []}]})
    plt.close("all")


def test_loss_curves_plot_each_runs_values_and_running_mean():
    import numpy as np

    loop = {"step": [1, 2, 3, 4], "loss": [4.0, 3.0, 2.0, 1.0], "ce": [2.0, 1.5, 1.0, 0.5]}
    trainer = {"step": [1, 2, 3, 4], "loss": [5.0, 3.0, 3.0, 1.0], "ce": [1.0, 1.0, 1.0, 1.0]}
    fig = plotting.plot_loss_curves({"kdkit": loop, "Trainer": trainer}, keys=("loss", "ce"),
                                    labels={"loss": "the α-mix"}, smooth=2)
    ax_loss, ax_ce = fig.axes
    assert [ax_loss.get_title(), ax_ce.get_title()] == ["the α-mix", "ce"]
    bold = {line.get_label(): line for line in ax_loss.lines if line.get_linewidth() == 2}
    np.testing.assert_allclose(bold["Trainer"].get_ydata(), [4.0, 3.0, 2.0])  # mean of 2 steps
    np.testing.assert_allclose(bold["Trainer"].get_xdata(), [2, 3, 4])
    thin = [line for line in ax_ce.lines if line.get_linewidth() != 2]
    np.testing.assert_allclose(thin[0].get_ydata(), loop["ce"])  # every step's own value
    assert len(ax_loss.lines) == 4 and "mean of 2 steps" in ax_loss.get_ylabel()
    with pytest.raises(ValueError, match="no values for"):
        plotting.plot_loss_curves({"kdkit": loop}, keys=("kd",))
    with pytest.raises(ValueError, match="one value per step"):
        plotting.plot_loss_curves({"kdkit": {**loop, "loss": [1.0]}})
    with pytest.raises(ValueError, match="smooth"):
        plotting.plot_loss_curves({"kdkit": loop}, smooth=0)
    plt.close("all")


def test_divergence_by_position_plot_averages_seeds_where_enough_targets_reach():
    import matplotlib.pyplot as plt
    import numpy as np

    def run(kl: list[float], count: list[int]) -> dict:
        return {"kl": torch.tensor(kl), "count": torch.tensor(count)}

    views = {"student": {
        "references": [run([1.0, 2.0, 3.0], [9, 9, 2]), run([3.0, 4.0, 5.0], [9, 5, 9])],
        "own outputs": [run([2.0, 2.0], [9, 9]), run([2.0, 4.0], [9, 9])],
    }}
    fig = plotting.plot_divergence_by_position(views, min_count=5)
    solid, dashed = fig.axes[0].lines
    np.testing.assert_allclose(solid.get_xdata(), [1, 2])  # position 3 has 2 targets in seed 0
    np.testing.assert_allclose(solid.get_ydata(), [2.0, 3.0])  # the mean of the two seeds
    np.testing.assert_allclose(dashed.get_ydata(), [2.0, 3.0])
    assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
    with pytest.raises(ValueError, match="own outputs"):
        plotting.plot_divergence_by_position({"s": {"references": [run([1.0], [9])]}})
    plt.close("all")
