"""kdkit.diagnostics: each classic distillation bug, planted, is reported with its fix; a
correct setup and a correct loss report nothing."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdkit import losses
from kdkit.diagnostics import check_distillation_setup, check_kd_loss, check_padding, report


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
    (noisy, _) = check_distillation_setup(headless.train(), with_head, batch)
    assert noisy.code == "teacher-train-mode" and "differ between two calls" in noisy.message
    headless.eval()
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


# ---------------------------------------------------------------- roles, train mode, padding


def test_a_train_mode_teacher_without_dropout_or_batch_norm_is_not_reported():
    teacher, student, batch, _ = _correct_setup()
    plain = nn.Sequential(nn.Linear(4, 10)).requires_grad_(False)  # train mode, nothing noisy
    assert plain.training and check_distillation_setup(plain, student, batch) == []
    batch_norm = nn.Sequential(nn.Linear(4, 10), nn.BatchNorm1d(10)).requires_grad_(False)
    assert _codes(check_distillation_setup(batch_norm, student, batch)) == ["teacher-train-mode"]


def _trained_pair():
    torch.manual_seed(0)
    X = torch.randn(256, 4)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()  # 3 classes
    teacher = _mlp(out=3)
    opt = torch.optim.AdamW(teacher.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.cross_entropy(teacher(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher.eval().requires_grad_(False), _mlp(out=3), X, y


def test_teacher_and_student_swapped_is_caught_given_labels():
    teacher, student, X, y = _trained_pair()
    assert check_distillation_setup(teacher, student, X, labels=y) == []
    student.eval().requires_grad_(False)
    teacher.requires_grad_(True)
    (finding,) = check_distillation_setup(student, teacher, X, labels=y)
    assert finding.code == "teacher-worse-than-student" and "swapped" in finding.message


def _masked_kl(s, t, labels):
    return losses.kd_kl_loss(s, t, T=2.0, mask=losses.mask_from_labels(labels))


@pytest.mark.parametrize(
    "loss_fn",
    [_masked_kl, lambda s, t, y: losses.distillation_loss(s, t, y, T=2.0, alpha=0.5)],
    ids=["kd_kl_loss with a mask", "distillation_loss"],
)
def test_a_masked_sequence_loss_reports_nothing(loss_fn):
    assert check_padding(loss_fn) == []


@pytest.mark.parametrize(
    ("loss_fn", "code"),
    [
        (lambda s, t, y: losses.kd_kl_loss(s, t, T=2.0), "padding-counted"),
        (lambda s, t, y: (losses.kd_kl_loss(s, t, T=2.0, reduction="none")
                          * losses.mask_from_labels(y)).mean(), "padding-in-denominator"),
    ],
    ids=["no mask", "mask in the sum, not the mean"],
)
def test_padding_bugs_are_caught(loss_fn, code):
    assert _codes(check_padding(loss_fn)) == [code]


def test_the_course_setups_report_nothing():
    """Notebook 04's offline teacher with an MLP student, and a T5 pair as notebook 06 builds it."""
    from kdkit.models import mlp
    from kdkit.train import PrecomputedTeacher

    teacher, _, X, y = _trained_pair()
    cached = PrecomputedTeacher(teacher, X)  # a module in train mode, holding logits only
    student = mlp(4, [32, 32], 3)
    opt = torch.optim.AdamW(student.parameters())
    assert check_distillation_setup(cached, student, X[:64], optimizer=opt, labels=y[:64]) == []

    pytest.importorskip("transformers")
    from kdkit.t5 import build_t5, t5_student_from_teacher

    torch.manual_seed(0)
    t5_teacher = build_t5(40, d_model=16, d_ff=32, num_layers=2, num_decoder_layers=2,
                          num_heads=2, d_kv=8, dropout_rate=0.1).eval().requires_grad_(False)
    t5_student = t5_student_from_teacher(t5_teacher)
    batch = {"input_ids": torch.randint(2, 40, (2, 5)), "labels": torch.randint(2, 40, (2, 4))}
    opt = torch.optim.AdamW(t5_student.parameters())
    assert check_distillation_setup(t5_teacher, t5_student, batch, optimizer=opt) == []


def test_probabilities_for_log_probabilities_give_one_finding():
    def probabilities(s, t, T):
        return T**2 * F.kl_div(torch.softmax(s / T, -1), torch.softmax(t / T, -1),
                               reduction="batchmean")

    (finding,) = check_kd_loss(probabilities)
    assert finding.code == "negative-divergence"


def test_a_student_slightly_better_than_its_teacher_is_not_called_swapped():
    teacher, _, X, y = _trained_pair()
    as_good = copy.deepcopy(teacher).requires_grad_(True)
    assert check_distillation_setup(teacher, as_good, X, labels=y) == []
    with torch.no_grad():
        labels = teacher(X).argmax(-1)
    labels[:20] = (labels[:20] + 1) % 3  # the teacher now misses 20 of 256 (8 points)
    perfect = PerfectOn(labels)
    assert check_distillation_setup(teacher, perfect, X, labels=labels) == []


class PerfectOn(nn.Module):
    """A 'student' that is always right on the given labels."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return F.one_hot(self.labels, 3).float() * self.scale


def test_the_clinic_plots_return_figures():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from kdkit import plotting

    assert isinstance(plotting.plot_broken_vs_fixed([-1.0, -2.0], [3.0, 1.0]), Figure)
    fig = plotting.plot_loss_vs_length([4, 8], {"sum": [1.0, 2.0], "mean": [1.0, 1.0]})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["4", "8"]
    import matplotlib.pyplot as plt

    plt.close("all")
