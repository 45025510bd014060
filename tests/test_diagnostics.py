"""kdkit.diagnostics: each classic distillation bug, planted, is reported with its fix; a
correct setup and a correct loss report nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdkit import losses
from kdkit.diagnostics import check_distillation_setup, check_kd_loss, report


def _mlp(out=10, dropout=0.0):
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, out))


def _correct_setup():
    torch.manual_seed(0)
    teacher, student = _mlp(dropout=0.3).eval().requires_grad_(False), _mlp()
    return teacher, student, torch.randn(8, 4), torch.optim.AdamW(student.parameters())


def _codes(findings):
    return [f.code for f in findings]


def test_a_correct_setup_reports_nothing(capsys):
    teacher, student, batch, opt = _correct_setup()
    findings = check_distillation_setup(teacher, student, batch, optimizer=opt)
    assert findings == []
    report(findings)
    assert capsys.readouterr().out == "no problems found\n"


def test_a_teacher_in_train_mode_is_caught_by_its_noisy_targets():
    teacher, student, batch, _ = _correct_setup()
    teacher.train()
    (finding,) = check_distillation_setup(teacher, student, batch)
    assert finding.code == "teacher-train-mode"
    assert "differ between two calls" in finding.message and "teacher.eval()" in finding.message


def test_the_check_leaves_the_random_state_alone():
    teacher, student, batch, _ = _correct_setup()
    teacher.train()
    state = torch.get_rng_state()
    check_distillation_setup(teacher, student, batch)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("plant", "code"),
    [
        (lambda t, s, o: (t.requires_grad_(True), s, o), "teacher-requires-grad"),
        (lambda t, s, o: (t, s.requires_grad_(False), None), "student-frozen"),
        (lambda t, s, o: (t, s, torch.optim.AdamW([*s.parameters(), *t.parameters()])),
         "optimizer-has-teacher"),
    ],
)
def test_parameter_mistakes_are_caught(plant, code):
    teacher, student, batch, opt = _correct_setup()
    teacher, student, opt = plant(teacher, student, opt)
    if code == "optimizer-has-teacher":
        teacher.requires_grad_(False)
    assert _codes(check_distillation_setup(teacher, student, batch, optimizer=opt)) == [code]


def test_the_same_model_as_teacher_and_student_is_caught():
    teacher, _, batch, _ = _correct_setup()
    assert "same-model" in _codes(check_distillation_setup(teacher, teacher, batch))


def test_a_vocabulary_mismatch_names_t5s_padding():
    teacher, _, batch, _ = _correct_setup()
    t5_like_teacher = _mlp(out=32128).eval().requires_grad_(False)
    (finding,) = check_distillation_setup(t5_like_teacher, _mlp(out=32100), batch)
    assert finding.code == "vocab-mismatch" and "32128 vs 32100" in finding.message


def test_half_precision_logits_are_caught():
    class HalfOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def forward(self, x):
            return self.net(x).bfloat16()

    teacher, student, batch, _ = _correct_setup()
    codes = _codes(check_distillation_setup(teacher, HalfOut(), batch))
    assert codes == ["half-precision-logits"]


def test_a_headless_transformer_is_caught_and_dict_batches_work():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    headless = transformers.BertModel(config).eval().requires_grad_(False)
    with_head = transformers.BertForSequenceClassification(config)
    batch = {"input_ids": torch.randint(0, 50, (2, 7))}
    assert _codes(check_distillation_setup(headless, with_head, batch)) == ["no-logits"]
    classifier_teacher = transformers.BertForSequenceClassification(config).eval()
    classifier_teacher.requires_grad_(False)
    assert check_distillation_setup(classifier_teacher, with_head, batch) == []


# ----------------------------------------------------------------------------- losses


def _kl_div(s, t, T, reduction="batchmean"):
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                    reduction=reduction)


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda s, t, T: losses.kd_kl_loss(s, t, T=T),
        lambda s, t, T: T**2 * _kl_div(s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1]), T),
    ],
    ids=["kdkit", "F.kl_div batchmean over positions"],
)
def test_a_correct_kd_loss_reports_nothing(loss_fn):
    assert check_kd_loss(loss_fn) == []


@pytest.mark.parametrize(
    ("loss_fn", "code", "words"),
    [
        (lambda s, t, T: losses.soft_cross_entropy(s, t, T=T), "not-zero-at-equal",
         "soft cross-entropy"),
        (lambda s, t, T: T**2 * _kl_div(t, s, T), "swapped-arguments", "swapped"),
        (lambda s, t, T: _kl_div(s, t, T), "missing-T2", "T²"),
        (lambda s, t, T: T**2 * _kl_div(s, t, T, "mean"), "mean-not-batchmean", "batchmean"),
        (lambda s, t, T: T**2 * F.kl_div(torch.softmax(s / T, -1), torch.softmax(t / T, -1),
                                         reduction="batchmean"),
         "negative-divergence", "log-probabilities"),
        (lambda s, t, T: T**2 * _kl_div(s, t, T), "scales-with-length", "sequence length"),
        (lambda s, t, T: 2 * losses.kd_kl_loss(s, t, T=T), "unexpected-value", "2×"),
    ],
    ids=["soft CE as KL", "swapped", "no T²", "mean", "probabilities", "3-D batchmean", "2×"],
)
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
def test_each_classic_loss_bug_is_caught_with_its_fix(loss_fn, code, words):
    findings = check_kd_loss(loss_fn)
    assert code in _codes(findings), findings
    message = next(f.message for f in findings if f.code == code)
    assert words in message


def test_the_loss_probe_leaves_the_random_state_alone():
    state = torch.get_rng_state()
    check_kd_loss(lambda s, t, T: losses.kd_kl_loss(s, t, T=T))
    assert torch.equal(torch.get_rng_state(), state)
