"""On-policy distillation of an encoder–decoder (GKD: Agarwal et al. 2024, "On-Policy
Distillation of Language Models"): on a fraction λ of the training steps the *student* writes
the targets — sampled at a temperature, no gradient through the sampling — and the teacher
grades them, teacher-forced on the student's own outputs; the other steps train on a fixed set
of targets (references or the teacher's outputs). With the generalized JSD(β) of
:func:`kdkit.losses.generalized_jsd_loss` as the per-step divergence (β = 0 forward KL, 1
reverse KL), this is GKD; :class:`kdkit.seq2seq.Seq2SeqObjective` computes it on whatever
targets a batch holds, and :func:`kdkit.seq2seq.train_seq2seq` asks :class:`OnPolicy` which
steps sample.

Supervised training reads perfect prefixes but must continue its own at test time (*exposure
bias*); on-policy steps train on the prefixes the student actually produces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kdkit.losses import check_temperature, check_unit_interval, kd_kl_loss

__all__ = ["OnPolicy", "divergence_by_position", "sample_targets"]


@torch.no_grad()
def sample_targets(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
) -> torch.Tensor:
    """The model's own outputs for a batch of inputs, sampled from ``softmax(z / temperature)``
    at every step (no top-k or top-p cut), as training labels: ``(B, L)`` on the CPU, the first
    end-of-sequence kept and every position after it ``-100`` (a sample that never ends keeps
    all ``max_new_tokens``). The model is put in ``eval()`` to sample (no dropout) and back.
    Draws from torch's global generator, which training checkpoints save."""
    temperature = check_temperature(temperature, "temperature")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
        max_new_tokens=max_new_tokens,
    )  # (B, 1 + L): the decoder start token, then the sample
    model.train(was_training)
    tokens = out[:, 1:].cpu()  # (B, L)
    is_eos = tokens == model.config.eos_token_id
    after_eos = (torch.cumsum(is_eos, dim=1) - is_eos.long()) > 0  # strictly after the first
    return tokens.masked_fill(after_eos, -100)


@dataclass(frozen=True)
class OnPolicy:
    """Which steps the student samples its targets on, and how.

    ``fraction`` (λ): the share of optimiser steps that are on-policy, spread evenly (step
    ``s`` samples when ``⌊(s + 1)·λ⌋ > ⌊s·λ⌋``: λ = 0.5 is every other step, 1 is every step;
    no randomness in the choice). ``temperature``: the sampling temperature.
    ``max_new_tokens``: the longest sample. ``start``: the steps before it are a supervised
    warm start (GKD starts from a fine-tuned student): none samples, and they minimise
    ``warmup`` (an objective called like the training one, e.g. ``Seq2SeqObjective()`` for
    cross-entropy) instead of the training objective; λ counts from ``start`` on.
    """

    fraction: float = 0.5
    temperature: float = 1.0
    max_new_tokens: int = 32
    start: int = 0
    warmup: Callable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", check_unit_interval("fraction", self.fraction))
        object.__setattr__(self, "temperature",
                           check_temperature(self.temperature, "temperature"))
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}.")
        if not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"start must be an int >= 0, got {self.start!r}.")
        if self.start > 0 and self.warmup is None:
            raise ValueError(
                "start > 0 needs warmup, the objective of the warm-start steps (e.g. "
                "kdkit.seq2seq.Seq2SeqObjective() for cross-entropy on the fixed targets)."
            )

    def samples_at(self, step: int) -> bool:
        """Whether optimiser step ``step`` (0-based) trains on the student's own samples."""
        if step < self.start:
            return False
        s = step - self.start
        return math.floor((s + 1) * self.fraction) > math.floor(s * self.fraction)

    def warming_up(self, step: int) -> bool:
        """Whether optimiser step ``step`` is one of the warm start's (it minimises ``warmup``)."""
        return step < self.start

    def sample_batch(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict:
        """``batch`` with its labels replaced by the student's samples for its inputs."""
        labels = sample_targets(
            model, batch["input_ids"], batch["attention_mask"], temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
        )
        return {**batch, "labels": labels}


def divergence_by_position(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """How far a student's next-token distribution is from the teacher's at each target
    position, both read teacher-forced along the same targets (the logits of
    :func:`kdkit.seq2seq.teacher_forced_logits` for both models, ``(N, L, V)``; ``labels``
    ``(N, L)``, -100 on padding). Along references this is what supervised training sees;
    along the student's own outputs, what it meets when it generates — the gap between the two
    is exposure bias made visible.

    Returns ``(L,)`` tensors: ``kl``, the mean ``KL(p_tea ‖ p_stu)`` (T = 1, nats) over the targets
    that are real at that position; ``agreement``, the share (%) of those where both models'
    most likely next token is the same; ``count``, how many targets are real there.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.shape[:2] != labels.shape:
        raise ValueError(
            f"shapes differ: student {tuple(student_logits.shape)}, teacher "
            f"{tuple(teacher_logits.shape)}, labels {tuple(labels.shape)}; compute both models' "
            f"logits with teacher_forced_logits on the same features."
        )
    real = labels != -100  # (N, L)
    kl = kd_kl_loss(student_logits, teacher_logits, T=1.0, reduction="none")  # (N, L)
    same = student_logits.argmax(-1) == teacher_logits.argmax(-1)  # (N, L)
    count = real.sum(0)  # (L,)
    denom = count.clamp_min(1)
    return {
        "kl": (kl * real).sum(0) / denom,
        "agreement": 100.0 * (same & real).sum(0) / denom,
        "count": count,
    }
