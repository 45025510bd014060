"""kdkit.hf: word-level KD inside Hugging Face's Seq2SeqTrainer, on tiny T5s built from config
(no download). The loss is kdkit's; gradient accumulation gives the full batch's weights; the
teacher stays frozen; CE and KD are logged; mismatched vocabularies are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")
datasets = pytest.importorskip("datasets")

from transformers import DataCollatorForSeq2Seq  # noqa: E402

from kdkit import losses  # noqa: E402
from kdkit.data.text_tasks import (  # noqa: E402
    build_word_tokenizer,
    make_text_tasks,
    task_vocabulary_texts,
)
from kdkit.hf import (  # noqa: E402
    DistillationArguments,
    DistillationSeq2SeqTrainer,
    label_with_teacher,
)
from kdkit.t5 import build_t5  # noqa: E402

TINY = dict(d_model=16, d_ff=32, num_heads=2, d_kv=8, num_layers=1, num_decoder_layers=1)


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(task_vocabulary_texts(("number",)))


@pytest.fixture(scope="module")
def train_set(tokenizer):
    pairs = make_text_tasks(("number",), num_train=48, num_val=8, num_test=8, seed=0).train
    data = datasets.Dataset.from_dict({"source": [s for s, _ in pairs],
                                       "target": [t for _, t in pairs]})
    return data.map(lambda b: tokenizer(b["source"], text_target=b["target"]), batched=True,
                    remove_columns=["source", "target"])


def _models(tokenizer, vocab=None):
    torch.manual_seed(0)
    teacher = build_t5(len(tokenizer), **{**TINY, "num_layers": 2, "num_decoder_layers": 2})
    student = build_t5(vocab or len(tokenizer), **TINY)
    return teacher, student


def _trainer(tmp_path, tokenizer, train_set, teacher, student, **overrides):
    options = dict(output_dir=str(tmp_path / "out"), max_steps=3, learning_rate=3e-3,
                   per_device_train_batch_size=8, gradient_accumulation_steps=1,
                   temperature=2.0, alpha=0.5, logging_steps=1, save_strategy="no",
                   report_to="none", use_cpu=True, seed=0, disable_tqdm=True)
    args = DistillationArguments(**{**options, **overrides})
    return DistillationSeq2SeqTrainer(
        model=student, teacher=teacher, args=args, train_dataset=train_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=student),
        processing_class=tokenizer)


def test_the_loss_is_kdkits_distillation_loss(tmp_path, tokenizer, train_set):
    teacher, student = _models(tokenizer)
    trainer = _trainer(tmp_path, tokenizer, train_set, teacher, student)
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(student, batch)
    with torch.no_grad():
        t = teacher(**batch).logits
    expected = losses.distillation_loss(student(**batch).logits, t, batch["labels"], T=2.0,
                                        alpha=0.5)
    assert torch.allclose(loss, expected, atol=1e-6)


def _final_weights(tmp_path, tokenizer, train_set, **overrides):
    teacher, student = _models(tokenizer)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = _trainer(tmp_path, tokenizer, train_set, teacher, student, **overrides)
    trainer.train()
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    return student.state_dict(), trainer


def test_gradient_accumulation_gives_the_full_batchs_weights(tmp_path, tokenizer, train_set):
    full, trainer = _final_weights(tmp_path / "a", tokenizer, train_set)
    accumulated, _ = _final_weights(tmp_path / "b", tokenizer, train_set,
                                    per_device_train_batch_size=2, gradient_accumulation_steps=4)
    initial = _models(tokenizer)[1].state_dict()
    moved = max((full[k] - v).abs().max().item() for k, v in initial.items())
    assert moved > 1e-3  # the steps did train the student
    for k, v in full.items():
        assert torch.allclose(v, accumulated[k], atol=1e-5), k
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3 and all(e["ce"] > 0 and e["kd"] > 0 for e in logged)


def test_mismatched_vocabularies_are_refused(tmp_path, tokenizer, train_set):
    teacher, student = _models(tokenizer, vocab=len(tokenizer) + 5)
    with pytest.raises(ValueError, match="vocabularies differ"):
        _trainer(tmp_path, tokenizer, train_set, teacher, student)


def test_arguments_check_their_knobs(tmp_path):
    with pytest.raises(ValueError, match="alpha"):
        DistillationArguments(output_dir=str(tmp_path), alpha=1.5, report_to="none")


def test_label_with_teacher_returns_one_output_per_source(tokenizer):
    teacher, _ = _models(tokenizer)
    sources = ["number: 12", "number: 7", "number: 345"]
    outputs = label_with_teacher(teacher, tokenizer, sources, batch_size=2, max_new_tokens=5)
    assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)


def test_the_readme_example_trains_a_student(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("<!-- readme-example:hf -->\n```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README example", "exec"), namespace)  # noqa: S102
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 20 and (tmp_path / "runs" / "hf_kd").exists()
    batch = next(iter(trainer.get_train_dataloader()))
    untrained = namespace["t5_student_from_teacher"](namespace["teacher"])
    with torch.no_grad():
        trained_loss = trainer.compute_loss(trainer.model.eval(), batch)
        untrained_loss = trainer.compute_loss(untrained.eval(), batch)
    assert trained_loss < 0.9 * untrained_loss  # the student learned from its teacher
