"""Learning-rate schedules: linear warm-up, then linear or cosine decay (or none)."""

from __future__ import annotations

import math

import torch

from kdkit.config import SCHEDULES

__all__ = ["warmup_decay_factor", "warmup_decay_scheduler"]


def warmup_decay_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up from 0 over
    ``warmup_steps``, then ``"linear"`` or ``"cosine"`` decay to 0 at ``total_steps``, or
    ``"constant"``. Warm-up then linear decay is BERT's and T5 fine-tuning's usual schedule."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, progress)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")


def warmup_decay_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, schedule: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`warmup_decay_factor`; call ``step()`` after each optimiser
    step. Its ``state_dict`` holds the step count, so a checkpoint restores it exactly."""
    warmup_decay_factor(0, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)

    def factor(step: int) -> float:
        return warmup_decay_factor(
            step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
