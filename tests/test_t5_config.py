"""Configs of the T5 pipeline (kdkit.config): presets and range checks."""

from __future__ import annotations

import ast
import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

import kdkit.config
from kdkit.config import ARMS, PRESETS, T5DistillConfig, T5Size, TrainConfig, get_preset


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_valid_and_serialisable(name):
    config = get_preset(name)
    assert config.preset == name
    assert json.loads(json.dumps(config.to_dict()))["preset"] == name
    assert get_preset(name) == config and get_preset(name) is not config


def test_preset_choices_follow_the_design():
    smoke, dates, cpu, gpu = (get_preset(n) for n in PRESETS)
    # smoke touches every code path: accumulation, checkpoints, hidden MSE, seq-KD with beams
    assert smoke.teacher_train.grad_accum_steps > 1 and smoke.student_train.checkpoint_every
    assert smoke.hidden_weight > 0 and smoke.arms == ARMS and smoke.seqkd_num_beams > 1
    assert smoke.student_from_teacher and smoke.num_labelled < smoke.num_train
    assert dates.dataset == "synthetic" and dates.tasks == ("date",) and dates.teacher is None
    # cpu: real data, students with references for a tenth of the training words
    assert cpu.dataset == "cmudict" and cpu.metric == "word_accuracy" and cpu.arms == ARMS
    assert cpu.num_labelled * 10 == cpu.num_train and cpu.teacher is None
    assert cpu.teacher_train.max_grad_norm == 1.0  # the probes' sane teacher configuration
    assert gpu.teacher.endswith("t5-base") and gpu.student.endswith("t5-small")
    assert gpu.dataset.endswith("xsum") and gpu.metric == "rougeL"
    assert gpu.teacher_train.bf16 and gpu.student_train.bf16


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(T=0), "T .temperature. must be"),
        (dict(alpha=1.5), r"alpha must be a number in \[0, 1\]"),
        (dict(hidden_weight=-1), "hidden_weight"),
        (dict(tasks=("date", "dates")), "unknown synthetic task"),
        (dict(tasks=()), "at least one"),
        (dict(num_train=0), "num_train must be an int >= 1"),
        (dict(num_test=None), "applies to a hub dataset"),
        (dict(num_labelled=7000), "cannot exceed num_train"),
        (dict(arms=("ce", "token_kd")), "arms must be distinct names from"),
        (dict(arms=("ce", "ce")), "arms must be distinct"),
        (dict(vocab_size=0), "vocab_size must be an int >= 1"),
        (dict(on_policy_fraction=1.5), "on_policy_fraction"),
        (dict(on_policy_start=-1), "on_policy_start must be an int >= 0"),
        (dict(on_policy_start=10**6), "would never sample"),
        (dict(sample_temperature=0), r"sample_temperature \(temperature\) must be"),
        (dict(also_metrics=("per",)), "metric must be one of"),
        (dict(num_labelled=0), "num_labelled must be an int >= 1"),
        (dict(metric="accuracy"), "metric must be one of"),
        (dict(device="tpu"), "device must be"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(student="some/dir", student_from_teacher=True), "student_from_teacher"),
        (dict(teacher_train=TrainConfig(max_steps=0)), "must be trained"),
        (dict(student_train=TrainConfig(max_steps=0)), "students are trained"),
        (dict(teacher_size={"d_model": 8}), "teacher_size must be a T5Size"),
        (dict(dataset=""), "dataset must be"),
    ],
)
def test_distill_config_range_checks(change, message):
    with pytest.raises(ValueError, match=message):
        replace(get_preset("dates"), **change)


def test_cmudict_may_train_on_every_remaining_word_but_needs_sized_test_splits():
    cpu = get_preset("cpu")
    assert replace(cpu, num_train=None, num_labelled=None).num_train is None
    with pytest.raises(ValueError, match="applies to a hub dataset"):
        replace(cpu, num_test=None)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lr=0), "lr must be"),
        (dict(batch_size=0), "batch_size must be an int >= 1"),
        (dict(grad_accum_steps=0), "grad_accum_steps"),
        (dict(max_steps=-1), "max_steps must be an int >= 0"),
        (dict(warmup_steps=200, max_steps=100), "must not exceed max_steps"),
        (dict(schedule="step"), "schedule must be one of"),
        (dict(max_grad_norm=0), "max_grad_norm"),
        (dict(weight_decay=2), "weight_decay"),
        (dict(bf16="fp16"), "no fp16 option"),
        (dict(checkpoint_every=-5), "checkpoint_every"),
        (dict(compile="yes"), "compile must be True or False"),
    ],
)
def test_train_config_range_checks(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(d_model=0), "d_model"),
        (dict(dropout_rate=1.0), r"dropout_rate must be a number in \[0, 1\)"),
        (dict(feed_forward_proj="swiglu"), "feed_forward_proj"),
    ],
)
def test_t5_size_range_checks(change, message):
    with pytest.raises(ValueError, match=message):
        T5Size(**change)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")


def test_a_hub_dataset_may_use_whole_splits():
    config = replace(get_preset("gpu"), num_train=None, num_val=None, num_test=None)
    assert config.num_train is None


def test_every_config_field_has_a_comment():
    source = Path(kdkit.config.__file__).read_text()
    lines = source.splitlines()
    classes = {
        node.name: node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)
    }
    for cls in (T5Size, TrainConfig, T5DistillConfig):
        # each field's own line, inside its own class (several classes have a `seed:` field)
        own = {
            node.target.id: lines[node.lineno - 1]
            for node in classes[cls.__name__].body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        }
        for f in fields(cls):
            assert "#" in own[f.name], f"{cls.__name__}.{f.name} has no comment"
