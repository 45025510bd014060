"""Runtime checks of a distillation setup: the classic bugs, found before they cost a run.

Three entry points, each returning a list of :class:`Finding` (empty when nothing is wrong):

- :func:`check_distillation_setup` runs a teacher and a student once on a batch and looks at
  what it can see: a teacher in train mode (dropout noise in its targets), a teacher that gets
  gradients or sits in the optimizer, a student that cannot learn, the same model twice,
  headless models that return hidden states instead of logits, vocabularies that differ
  (T5's 32,100 tokenizer entries vs its 32,128 logits), half-precision logits and, given the
  batch's labels, a teacher that scores below its student (teacher and student swapped?).
- :func:`check_kd_loss` probes a KD loss function with inputs whose right answer is known: a
  soft cross-entropy reported as "KL", swapped arguments, probabilities where log-probabilities
  belong, a missing ``T²``, ``reduction="mean"`` instead of ``"batchmean"``, and a sequence
  loss that grows with the sequence length.
- :func:`check_padding` probes a sequence loss that takes labels: padded positions
  (``labels == -100``) must change neither its value nor, through the denominator, its scale.

Notebook 09 (the pitfalls clinic) breaks each one on purpose and shows these checks catch it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kdkit.losses import kd_kl_loss

__all__ = ["Finding", "check_distillation_setup", "check_kd_loss", "check_padding", "report"]


@dataclass(frozen=True)
class Finding:
    code: str  # a short stable name, e.g. "teacher-train-mode"
    message: str  # what is wrong, and how to fix it


def report(findings: list[Finding]) -> None:
    """Print each finding, or that none were found."""
    if not findings:
        print("no problems found")
    for f in findings:
        print(f"[{f.code}] {f.message}")


# ----------------------------------------------------------------------- models and a batch


def _forward(model: nn.Module, batch: Any) -> Any:
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _logits(output: Any) -> torch.Tensor | None:
    """The logits in a model's output, or None for hidden states only (a headless model)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    return logits


def _parameter_findings(teacher: nn.Module, student: nn.Module, optimizer) -> list[Finding]:
    found = []
    t_params = {id(p) for p in teacher.parameters()}
    if teacher is student or t_params & {id(p) for p in student.parameters()}:
        found.append(Finding("same-model", "the teacher and the student share parameters: "
                             "training the student moves the teacher. Build the student as its "
                             "own model (e.g. copy.deepcopy or a smaller config)."))
    if any(p.requires_grad for p in teacher.parameters()):
        found.append(Finding("teacher-requires-grad", "the teacher's parameters require "
                             "gradients: a loss can backpropagate into it and autograd keeps its "
                             "activations. Call teacher.requires_grad_(False) and run it under "
                             "torch.no_grad()."))
    if not any(p.requires_grad for p in student.parameters()):
        found.append(Finding("student-frozen", "no student parameter requires gradients: "
                             "distillation trains the student's weights. Call "
                             "student.requires_grad_(True)."))
    if optimizer is not None:
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if in_opt & t_params and teacher is not student:
            found.append(Finding("optimizer-has-teacher", "the optimizer holds teacher "
                                 "parameters: build it from student.parameters() only."))
    return found


# Layers whose forward depends on ``training``: in train mode they make a teacher's targets noisy
# (dropout) or depend on the batch (batch norm).
_TRAINING_LAYERS = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _mode_findings(teacher: nn.Module, batch: Any) -> list[Finding]:
    if not teacher.training:
        return []
    with torch.no_grad():
        first, second = _forward(teacher, batch), _forward(teacher, batch)
    # logits, or a headless model's hidden states
    first, second = (_logits(o) if _logits(o) is not None else getattr(o, "last_hidden_state", None)
                     for o in (first, second))
    noisy = isinstance(first, torch.Tensor) and not torch.equal(first, second)
    if not noisy and not any(isinstance(m, _TRAINING_LAYERS) for m in teacher.modules()):
        return []  # nothing in it behaves differently in train mode (e.g. cached logits)
    effect = ("its outputs differ between two calls on the same batch (dropout noise in the "
              "targets)" if noisy else "dropout and batch-norm layers act as in training")
    return [Finding("teacher-train-mode", f"the teacher is in train mode: {effect}. Call "
                    "teacher.eval() before distilling.")]


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    counted = labels != -100
    right = (logits.argmax(-1) == labels) & counted
    return float(right.sum()) / max(int(counted.sum()), 1)


_ROLE_MARGIN = 0.2  # how much better than the teacher a student must be to look swapped


def _role_findings(t_logits, s_logits, labels: torch.Tensor | None) -> list[Finding]:
    if labels is None or t_logits is None or s_logits is None or t_logits.shape != s_logits.shape:
        return []
    t_acc, s_acc = _accuracy(t_logits, labels), _accuracy(s_logits, labels)
    if t_acc >= s_acc - _ROLE_MARGIN:  # a distilled student may match or beat its teacher
        return []
    return [Finding("teacher-worse-than-student", f"on this batch the teacher is right on "
                    f"{t_acc:.0%} of the labels and the student on {s_acc:.0%}: are teacher "
                    "and student swapped (distil(student, teacher) where distil(teacher, "
                    "student) is meant)? The trained model must produce the targets, the new "
                    "one must be updated.")]


def _output_findings(t_logits, s_logits) -> list[Finding]:
    found = []
    for who, z in (("teacher", t_logits), ("student", s_logits)):
        if z is None:
            found.append(Finding("no-logits", f"the {who} returns hidden states, not logits "
                                 "(a headless model such as BertModel). Distil a model with an "
                                 "output head, e.g. ...ForSequenceClassification."))
    if t_logits is None or s_logits is None:
        return found
    if t_logits.shape[-1] != s_logits.shape[-1]:
        found.append(Finding("vocab-mismatch", f"teacher and student score different numbers "
                             f"of classes/tokens: {t_logits.shape[-1]} vs {s_logits.shape[-1]}. "
                             "T5's tokenizer has 32,100 entries but its logits 32,128: use "
                             "models that share a vocabulary, or slice both to the tokenizer's "
                             "size."))
    elif t_logits.shape != s_logits.shape:
        found.append(Finding("shape-mismatch", f"teacher logits {tuple(t_logits.shape)} vs "
                             f"student logits {tuple(s_logits.shape)}: give both the same batch "
                             "(and the same decoder inputs)."))
    if any(z.dtype in (torch.float16, torch.bfloat16) for z in (t_logits, s_logits)):
        found.append(Finding("half-precision-logits", "the logits are float16/bfloat16: a "
                             "softmax over them loses the small probabilities KD is about. "
                             "Upcast to float32 before the loss (kdkit.losses does)."))
    return found


def check_distillation_setup(
    teacher: nn.Module,
    student: nn.Module,
    batch: Any,
    *,
    optimizer=None,
    labels: torch.Tensor | None = None,
) -> list[Finding]:
    """Run ``teacher`` and ``student`` once on ``batch`` and report what is misconfigured.

    ``batch``: a tensor (``model(batch)``), a tuple (``model(*batch)``) or a dict
    (``model(**batch)``); outputs may be logits or carry ``.logits``. ``labels`` (optional,
    the logits' shape without ``V``, ``-100`` not counted): the batch's right answers; a
    teacher more than 20 points less accurate than its student is reported (swapped roles?).
    Runs under ``torch.no_grad()``, changes no mode or weight, and leaves torch's CPU RNG as it
    found it.
    """
    found = _parameter_findings(teacher, student, optimizer)
    with torch.random.fork_rng(devices=[]):  # dropout draws leave the caller's RNG as it was
        found += _mode_findings(teacher, batch)
        with torch.no_grad():
            t_logits = _logits(_forward(teacher, batch))
            s_logits = _logits(_forward(student, batch))
    return found + _output_findings(t_logits, s_logits) + _role_findings(t_logits, s_logits,
                                                                            labels)


# ------------------------------------------------------------------------------ a loss


def _close(a: float, b: float, rel: float = 1e-3) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


def _value_findings(value: float, s, t, T: float) -> list[Finding]:
    """Compare ``loss_fn(s, t, T)`` with T²·KL(p_tea ‖ p_stu) and the usual wrong variants."""
    right = float(kd_kl_loss(s, t, T=T))  # T² · KL, mean over rows = F.kl_div "batchmean"
    if _close(value, right):
        return []
    V = s.shape[-1]
    variants = {
        "swapped-arguments": (float(kd_kl_loss(t, s, T=T)), "it computes KL(p_stu ‖ p_tea): "
                              "the arguments are swapped. F.kl_div(input, target) wants the "
                              "student's log-probabilities first, the teacher's second."),
        "missing-T2": (right / T**2, "it lacks the T² factor: the soft term's gradients shrink "
                       "as 1/T² and α no longer means what it says. Multiply by T²."),
        "mean-not-batchmean": (right / V, f"it divides by B·V instead of B (F.kl_div's "
                               f"reduction='mean'): the loss is {V}× too small. Use "
                               "reduction='batchmean'."),
        "mean-not-batchmean-and-missing-T2": (right / V / T**2, "it divides by B·V instead of B "
                                              "and lacks T²: use reduction='batchmean' and "
                                              "multiply by T²."),
    }
    for code, (expected, message) in variants.items():
        if _close(value, expected):
            return [Finding(code, message)]
    return [Finding("unexpected-value", f"it gives {value:.6g} where T²·KL(p_tea ‖ p_stu), "
                    f"averaged over rows, is {right:.6g} ({value / right:.4g}×).")]


def _sequence_findings(loss_fn: Callable, T: float, gen: torch.Generator) -> list[Finding]:
    B, L, V = 2, 6, 10
    s, t = torch.randn(B, L, V, generator=gen) * 2, torch.randn(B, L, V, generator=gen) * 2
    try:
        value = float(loss_fn(s, t, T))
    except Exception:  # a classifier-only loss: nothing to say about sequences
        return []
    per_token = float(kd_kl_loss(s, t, T=T))  # mean over the B·L positions
    if _close(value, per_token * L):
        return [Finding("scales-with-length", f"on (B, L, V) logits it sums over the L "
                        f"positions and divides by B only (transformers' 3-D 'batchmean'): "
                        f"the loss grows with the sequence length ({L}× here). Average over "
                        "the counted token positions.")]
    return []


def check_kd_loss(loss_fn: Callable[..., torch.Tensor], *, T: float = 4.0) -> list[Finding]:
    """Probe ``loss_fn(student_logits, teacher_logits, T)`` on inputs with known answers.

    The reference is kdkit's ``T² · KL(p_tea ‖ p_stu)`` averaged over positions (Hinton et al.
    2015). Reports a value that is not 0 for a student equal to its teacher (soft
    cross-entropy called KL), a negative value (probabilities given where log-probabilities
    belong), swapped arguments, a missing T², ``"mean"`` instead of ``"batchmean"``, and a
    sequence loss that grows with the length. Uses its own RNG.
    """
    gen = torch.Generator().manual_seed(0)
    # a peaked teacher and a flat student: forward and reverse KL differ clearly even at high T
    s, t = torch.randn(8, 10, generator=gen), torch.randn(8, 10, generator=gen) * 4 * T
    same, value = float(loss_fn(t, t, T)), float(loss_fn(s, t, T))
    if min(same, value) < -1e-6:
        found = [Finding("negative-divergence", f"it is negative ({min(same, value):.4g}): "
                         "F.kl_div expects log-probabilities as its first argument (log_softmax), "
                         "and probabilities as its second unless log_target=True.")]
    elif abs(same) > 1e-5:
        entropy = float(-(torch.softmax(t / T, -1) * torch.log_softmax(t / T, -1)).sum(-1).mean())
        soft_ce = any(_close(same, k * entropy) for k in (1.0, T**2))
        what = ("soft cross-entropy (KL plus the teacher's entropy): same gradient as KL, but do "
                "not report it as KL; subtract T²·H(p_tea)" if soft_ce else "not a divergence")
        found = [Finding("not-zero-at-equal", f"it gives {same:.4g}, not 0, when the student "
                         f"equals the teacher: it is {what}.")]
    else:
        found = _value_findings(value, s, t, T)
    return found + _sequence_findings(loss_fn, T, gen)


# ------------------------------------------------------------------- padding in a sequence


def _padded_probe(gen: torch.Generator, extra: int = 0):
    """(B, L, V) logits and labels whose last positions are padding (``-100``)."""
    B, L, V = 3, 7, 10
    s, t = torch.randn(B, L, V, generator=gen) * 2, torch.randn(B, L, V, generator=gen) * 2
    labels = torch.randint(0, V, (B, L), generator=gen)
    labels[0, 4:], labels[1, 6:] = -100, -100  # rows of 4, 6 and 7 real tokens
    if extra:  # the same sequences padded to a longer length
        pad = torch.randn(B, extra, V, generator=gen) * 2
        s, t = torch.cat([s, pad], 1), torch.cat([t, -pad], 1)
        labels = torch.cat([labels, torch.full((B, extra), -100)], 1)
    return s, t, labels


def check_padding(loss_fn: Callable[..., torch.Tensor]) -> list[Finding]:
    """Probe ``loss_fn(student_logits, teacher_logits, labels)`` on ``(B, L, V)`` logits with
    padded positions (``labels == -100``).

    Reports a loss that changes when only the padded positions' logits change (padding counted
    in the loss) and one that changes when the same sequences are padded to a longer length
    (padding counted in the denominator, e.g. ``(kl * mask).mean()``). Uses its own RNG.
    """
    s, t, labels = _padded_probe(torch.Generator().manual_seed(0))
    value = float(loss_fn(s, t, labels))
    noisy_s, noisy_t = s.clone(), t.clone()
    pad = labels == -100  # (B, L)
    noisy_s[pad] += 5.0 * torch.arange(s.shape[-1], dtype=s.dtype)
    noisy_t[pad] -= 5.0 * torch.arange(s.shape[-1], dtype=s.dtype)
    found = []
    if not _close(float(loss_fn(noisy_s, noisy_t, labels)), value, rel=1e-5):
        found.append(Finding("padding-counted", "changing only the padded positions' logits "
                             "changes the loss: padding counts as tokens. Mask the positions "
                             "where labels == -100 (kdkit.losses.mask_from_labels, or "
                             "distillation_loss(..., labels))."))
    longer = _padded_probe(torch.Generator().manual_seed(0), extra=5)
    if not found and not _close(float(loss_fn(*longer)), value, rel=1e-5):
        found.append(Finding("padding-in-denominator", "the same sequences padded to a longer "
                             "length give a different loss: padded positions are masked out of "
                             "the sum but counted in the mean. Divide by mask.sum(), not by the "
                             "number of positions."))
    return found
