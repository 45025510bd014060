"""Notebook 04's exercises (distilling a classifier): checks and worked solutions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import t as student_t

from kdkit import losses, stats
from kdkit.exercises.core import call, exercise
from kdkit.train import NO_LABEL


def transfer_loss_solution():
    """(1 − α)·CE averaged over the labelled rows + α·T²·KL(p^tea_T ‖ p^stu_T) averaged over
    all rows; the CE term is 0 in a batch without labels (NO_LABEL = -100 marks a transfer
    image: it keeps its soft term)."""

    def transfer_loss(student_logits, teacher_logits, labels, T, alpha):
        labelled = labels != NO_LABEL  # (B,)
        log_p_stu = F.log_softmax(student_logits / T, dim=-1)  # (B, C)
        log_p_tea = F.log_softmax(teacher_logits / T, dim=-1)  # (B, C)
        kl = (log_p_tea.exp() * (log_p_tea - log_p_stu)).sum(-1)  # (B,)
        hard = (F.cross_entropy(student_logits[labelled], labels[labelled]) if labelled.any()
                else student_logits.new_zeros(()))
        return (1 - alpha) * hard + alpha * T**2 * kl.mean()

    return transfer_loss


def _padding_rule():
    return lambda s, t, labels, T, alpha: losses.distillation_loss(s, t, labels, T=T, alpha=alpha)


def _transfer_batches(gen: torch.Generator):
    """Batches of (student logits, teacher logits, labels, T, alpha): some labelled, all, none."""
    for labelled, T, alpha in ((3, 1.0, 0.5), (16, 4.0, 0.25), (0, 2.0, 0.5), (5, 4.0, 1.0)):
        s, t = torch.randn(16, 10, generator=gen) * 2, torch.randn(16, 10, generator=gen) * 2
        labels = torch.full((16,), NO_LABEL)
        labels[:labelled] = torch.randint(0, 10, (labelled,), generator=gen)
        yield s, t, labels, T, alpha


@exercise("04.1", "the transfer-set loss from its formula",
          solution=transfer_loss_solution, wrong=_padding_rule)
def _transfer_loss(answer) -> str:
    for s, t, labels, T, alpha in _transfer_batches(torch.Generator().manual_seed(4)):
        hard = losses.hard_cross_entropy(s, labels, ignore_index=NO_LABEL)  # labelled rows
        want = losses.alpha_mix(hard, losses.kd_kl_loss(s, t, T=T), alpha)  # KL: all rows
        got = torch.as_tensor(call(answer, s, t, labels, T, alpha))
        n = int((labels != NO_LABEL).sum())
        assert got.dim() == 0, f"return one number for the batch, got shape {tuple(got.shape)}."
        assert torch.allclose(got, want, atol=1e-5), (
            f"{n} of 16 rows labelled, T = {T:g}, α = {alpha:g}: {float(got):.4f} vs "
            f"{float(want):.4f} (train.distill_classifier's rule). Average the cross-entropy "
            "over the labelled rows only, the KL (times T²) over all rows — the unlabelled "
            "rows are transfer images, not padding.")
    return ("equals train.distill_classifier's loss with 3, 16, 0 and 5 of 16 rows labelled, "
            "at T = 1, 2, 4.")


VERDICTS = ("lower", "higher", "not measurable")


def _measured_verdict(errors: Sequence[float], baseline: Sequence[float]):
    diff = stats.paired_difference_ci(errors, baseline)
    return ("lower" if diff.high < 0 else "higher" if diff.low > 0 else "not measurable"), diff


def alpha_one_solution(measure: Callable[[], Sequence[float]], baseline: Sequence[float]) -> str:
    """Student D at T = 4 with α = 1 vs the α chosen on validation. With α = 1 the 88 labelled
    images lose their hard labels and every image learns from the teacher alone. The teacher is
    right on 99.5% of the fit images and at T = 4 its top class still has most of the mass, so
    the labels add little the soft targets lack; dropping them also removes the far larger
    weight the loop gives a labelled image. One would expect no large change — the measurement
    decides."""
    return _measured_verdict(measure(), baseline)[0]


def _the_other_verdict(measure, baseline) -> str:
    right = alpha_one_solution(measure, baseline)
    return "higher" if right != "higher" else "lower"


def _example_measurements() -> dict:
    return {"measure": lambda: [3.1, 2.4, 2.2, 2.9, 2.6], "baseline": [3.5, 3.1, 2.4, 2.4, 2.9]}


@exercise("04.2", "α = 1 at T = 4: predict, then measure", solution=alpha_one_solution,
          wrong=_the_other_verdict, example_context=_example_measurements)
def _alpha_one(answer, measure: Callable[[], Sequence[float]], baseline: Sequence[float]) -> str:
    assert answer in VERDICTS, f"answer one of {VERDICTS}, got {answer!r}."
    right, diff = _measured_verdict(measure(), baseline)
    assert answer == right, (
        f"you said {answer!r}; measured, test error at α = 1 minus at the chosen α: {diff} -> "
        f"{right!r}. Which of your reasons does that contradict?")
    return (f"test error at α = 1 minus at the chosen α, paired over {diff.n} seeds: {diff}. Now "
            "explain it: what do the labelled images give that the teacher's soft targets lack?")


def paired_ci_solution(**_context):
    """d_i = a_i − b_i; mean ± t_{0.975, n−1} · s_d / √n with s_d the sample standard deviation
    (n − 1 in the denominator) of the differences."""

    def paired_ci(a, b):
        d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)  # (n,)
        half = student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        return d.mean(), d.mean() - half, d.mean() + half

    return paired_ci


def _unpaired_normal(**_context):
    def unpaired(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        half = 1.96 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        return a.mean() - b.mean(), a.mean() - b.mean() - half, a.mean() - b.mean() + half

    return unpaired


def _example_pairs() -> dict:
    return {"a": [0.19, 0.21, 0.18, 0.19, 0.20], "b": [0.30, 0.27, 0.27, 0.28, 0.29]}


@exercise("04.3", "a paired 95% confidence interval by hand", solution=paired_ci_solution,
          wrong=_unpaired_normal, example_context=_example_pairs)
def _paired_ci(answer, a: Sequence[float], b: Sequence[float]) -> str:
    gen = torch.Generator().manual_seed(43)
    made_up = torch.randn(2, 3, generator=gen).tolist()  # 3 seeds of two methods
    cases = [(a, b), (made_up[0], made_up[1])]
    for x, y in cases:
        want = stats.paired_difference_ci(x, y)
        got = call(answer, x, y)
        assert len(got) == 3, "return (mean, low, high)."
        assert np.allclose([float(v) for v in got], [want.mean, want.low, want.high],
                           atol=1e-6), (
            f"{len(x)} seeds: you gave [{float(got[1]):+.4f}, {float(got[2]):+.4f}], "
            f"stats.paired_difference_ci gives [{want.low:+.4f}, {want.high:+.4f}]. Take the "
            "per-seed differences first; with few seeds use the t quantile with n − 1 degrees "
            "of freedom, not 1.96.")
    return (f"matches stats.paired_difference_ci on the notebook's {len(a)} seeds "
            f"({stats.paired_difference_ci(a, b)}) and on 3 made-up seeds.")
