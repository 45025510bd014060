"""T5 builders (kdkit.t5): the name-or-directory loading path without network, students
from teachers, vocabulary checks, and the offline error."""

from __future__ import annotations

import pytest
import torch

from kdkit.data.text_tasks import build_word_tokenizer, task_vocabulary_texts
from kdkit.t5 import (
    build_t5,
    check_t5_vocab,
    load_t5,
    save_t5,
    t5_student_from_teacher,
    t5_vocab_size,
)

TINY = dict(d_model=16, d_ff=32, num_heads=2, d_kv=8)


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(task_vocabulary_texts(("number",)))


@pytest.fixture(scope="module")
def teacher(tokenizer):
    torch.manual_seed(0)
    return build_t5(len(tokenizer), num_layers=4, num_decoder_layers=3, **TINY)


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretrained_path_loads_a_saved_model_and_tokenizer_from_a_directory(
    tmp_path, teacher, tokenizer
):
    save_t5(teacher, tokenizer, tmp_path / "t5")
    model, loaded_tokenizer = load_t5(tmp_path / "t5")  # the from_pretrained code path
    assert _states_equal(model, teacher)
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert loaded_tokenizer.decode(loaded_tokenizer("number: 347")["input_ids"],
                                   skip_special_tokens=True) == "number: 347"
    batch = tokenizer(["number: 12", "number: 9999"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = teacher.eval().generate(**batch, max_new_tokens=4, do_sample=False)
        b = model.eval().generate(**batch, max_new_tokens=4, do_sample=False)
    assert torch.equal(a, b)
    model_only, none = load_t5(str(tmp_path / "t5"), with_tokenizer=False)
    assert none is None and _states_equal(model_only, teacher)


def test_a_directory_without_a_model_says_so(tmp_path):
    with pytest.raises(OSError, match="save_pretrained"):
        load_t5(tmp_path)


def test_offline_hub_name_fails_fast_with_what_to_do(monkeypatch, network_calls):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError) as info:
        load_t5("made-up-org/no-such-t5-kdkit")
    assert not network_calls  # no retries against an unreachable Hub: it fails at once
    message = str(info.value)
    assert "made-up-org/no-such-t5-kdkit" in message and "HF_HUB_OFFLINE=1" in message
    assert "--preset cpu" in message and "local directory" in message


def test_unreachable_hub_fails_fast_without_offline_mode(monkeypatch, network_calls):
    import kdkit.t5

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(kdkit.t5, "hub_offline", lambda: False)
    monkeypatch.setattr(kdkit.t5, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(OSError, match="unreachable"):
        load_t5("made-up-org/no-such-t5-kdkit")
    assert not network_calls  # no retries against an unreachable Hub: it fails at once


def test_student_from_teacher_copies_every_other_block(teacher):
    student = t5_student_from_teacher(teacher, num_layers=2, num_decoder_layers=2)
    assert (student.config.num_layers, student.config.num_decoder_layers) == (2, 2)
    assert torch.equal(student.shared.weight, teacher.shared.weight)
    for stack, layers in (("encoder", [0, 2]), ("decoder", [0, 2])):
        s, t = getattr(student, stack), getattr(teacher, stack)
        for i, j in enumerate(layers):
            assert _states_equal(s.block[i], t.block[j])
        assert _states_equal(s.final_layer_norm, t.final_layer_norm)
    default = t5_student_from_teacher(teacher)  # half, rounded up: 2 of 4 and 2 of 3
    assert (default.config.num_layers, default.config.num_decoder_layers) == (2, 2)
    with torch.no_grad():
        ids = torch.tensor([[5, 6, 7, 1]])
        out = student(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, 4, t5_vocab_size(teacher))


def test_student_block_zero_always_gets_the_relative_position_bias(teacher):
    student = t5_student_from_teacher(teacher, encoder_layers=[1, 3], decoder_layers=[2])
    key = "layer.0.SelfAttention.relative_attention_bias.weight"
    bias = teacher.encoder.block[0].state_dict()[key]
    assert torch.equal(student.encoder.block[0].state_dict()[key], bias)
    assert key not in student.encoder.block[1].state_dict()
    w = "layer.1.DenseReluDense.wi.weight"
    assert torch.equal(
        student.encoder.block[0].state_dict()[w], teacher.encoder.block[1].state_dict()[w]
    )


def test_student_from_teacher_errors(teacher):
    with pytest.raises(ValueError, match="1 to 4 blocks"):
        t5_student_from_teacher(teacher, num_layers=5)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        t5_student_from_teacher(teacher, decoder_layers=[0, 3])


def test_vocabulary_checks(teacher, tokenizer):
    V = t5_vocab_size(teacher)
    student = build_t5(V, num_layers=1, num_decoder_layers=1, **TINY)
    assert check_t5_vocab(teacher, student, tokenizer) == V
    # a padded embedding (more logits than tokenizer entries, like T5's 32128 vs 32100) is fine
    padded_t = build_t5(V + 13, num_layers=1, num_decoder_layers=1, **TINY)
    padded_s = build_t5(V + 13, num_layers=1, num_decoder_layers=1, **TINY)
    assert check_t5_vocab(padded_t, padded_s, tokenizer) == V + 13
    with pytest.raises(ValueError, match=rf"teacher has {V + 13} .* student {V}\b.*resize"):
        check_t5_vocab(padded_t, student)
    small_t = build_t5(V - 5, num_layers=1, num_decoder_layers=1, **TINY)
    small_s = build_t5(V - 5, num_layers=1, num_decoder_layers=1, **TINY)
    with pytest.raises(ValueError, match=rf"tokenizer has {V} entries .* only {V - 5} logits"):
        check_t5_vocab(small_t, small_s, tokenizer)


def test_vocabulary_check_catches_a_tokenizer_from_elsewhere(teacher):
    other = build_word_tokenizer(task_vocabulary_texts(("number",)))
    other.pad_token = "</s>"  # saved with another convention: pad id 1 instead of T5's 0
    with pytest.raises(ValueError, match="pad_token_id"):
        check_t5_vocab(teacher, teacher, other)
