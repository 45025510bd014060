"""Distillation inside Hugging Face's ``Seq2SeqTrainer``: kdkit's loss where users already train.

:class:`DistillationSeq2SeqTrainer` is a ``Seq2SeqTrainer`` that adds a frozen teacher and
replaces the loss with kdkit's word-level KD, ``alpha_mix(CE, T²·KL(p_tea ‖ p_stu), alpha)``
per target token (:mod:`kdkit.losses`). Everything else is the Trainer's: datasets and
``DataCollatorForSeq2Seq``, ``Seq2SeqTrainingArguments`` (bf16, gradient accumulation,
evaluation with generation, checkpoints and ``resume_from_checkpoint``), ``accelerate`` or
``torchrun`` launches. Sequence-level KD is the same trainer with ``alpha=0`` on a dataset
whose labels are the teacher's outputs (:func:`label_with_teacher`).

The loss is a *sum* over a micro-batch's target tokens divided by ``num_items_in_batch``, the
Trainer's count of target tokens over all micro-batches of the optimiser step (and over all
processes), so gradient accumulation and several processes give the single-process, full-batch
loss. Notebook 06 shows it next to kdkit's own loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from kdkit.losses import (
    alpha_mix,
    check_temperature,
    check_unit_interval,
    hard_cross_entropy,
    kd_kl_loss,
)
from kdkit.t5 import check_t5_vocab

__all__ = ["DistillationArguments", "DistillationSeq2SeqTrainer", "label_with_teacher"]


@dataclass
class DistillationArguments(Seq2SeqTrainingArguments):
    """``Seq2SeqTrainingArguments`` plus the distillation knobs."""

    temperature: float = field(default=2.0, metadata={"help": "T of the soft targets."})
    alpha: float = field(default=0.5, metadata={"help": "weight of the KD term (0: plain CE)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.temperature = check_temperature(self.temperature, "temperature")
        self.alpha = check_unit_interval("alpha", self.alpha)


class DistillationSeq2SeqTrainer(Seq2SeqTrainer):
    """A ``Seq2SeqTrainer`` that distils ``teacher`` into ``model`` (the student).

    The teacher is frozen (``eval()``, no gradients) and placed by the Trainer's accelerator
    on each process's device; it sees the same ``input_ids``, ``attention_mask`` and
    decoder inputs as the student. Logs ``ce`` and ``kd`` (per target token) beside ``loss``.
    Refuses teachers, students and tokenizers whose vocabularies differ.
    """

    def __init__(self, *args, teacher: torch.nn.Module, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, DistillationArguments):
            raise TypeError("args must be kdkit.hf.DistillationArguments (Seq2SeqTrainingArguments "
                            "with temperature and alpha).")
        check_t5_vocab(teacher, self.model, getattr(self, "processing_class", None))
        teacher.eval().requires_grad_(False)
        self.teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True)
        # Ask the Trainer to count the target tokens of every optimiser step
        # (num_items_in_batch) and not to rescale the loss for gradient accumulation again.
        self.model_accepts_loss_kwargs = True
        self.loss_is_scaled_for_ga = True
        self._parts: dict[str, torch.Tensor] = {}  # summed since the last log, on the device

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Σ over target tokens of ``(1 − α)·CE + α·T²·KL(p_tea ‖ p_stu)``, divided by the
        step's token count (this micro-batch's when ``num_items_in_batch`` is None)."""
        labels = inputs["labels"]  # (B, L), -100 where padded
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs).logits  # (B, L, V)
        mask = labels != -100  # (B, L)
        T, alpha = self.args.temperature, self.args.alpha
        ce = hard_cross_entropy(outputs.logits, labels, reduction="sum")
        kd = kd_kl_loss(outputs.logits, teacher_logits, T=T, mask=mask, reduction="sum")
        count = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = alpha_mix(ce, kd, alpha) / torch.as_tensor(count).clamp(min=1)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # DDP averages the processes' gradients
        if model.training:  # detached sums, read at log time: no host sync per micro-batch
            for key, value in (("ce", ce), ("kd", kd), ("tokens", mask.sum())):
                self._parts[key] = self._parts.get(key, 0) + value.detach().float()
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Adds the CE and KD parts (per target token since the last log) to training logs."""
        if "loss" in logs and self._parts:
            tokens = self._parts["tokens"].clamp(min=1)
            logs["ce"] = round((self._parts["ce"] / tokens).item(), 4)
            logs["kd"] = round((self._parts["kd"] / tokens).item(), 4)
            self._parts = {}
        super().log(logs, *args, **kwargs)


@torch.no_grad()
def label_with_teacher(
    teacher: torch.nn.Module, tokenizer, sources: Sequence[str], *, batch_size: int = 64,
    **generate_kwargs,
) -> list[str]:
    """The teacher's outputs for ``sources`` (greedy unless ``generate_kwargs`` say otherwise):
    the targets of sequence-level KD (Kim & Rush 2016). Put them in the dataset's target column
    and train with ``alpha=0`` (or keep ``alpha > 0`` for both kinds of KD)."""
    teacher.eval()
    device = next(teacher.parameters()).device
    outputs: list[str] = []
    for start in range(0, len(sources), batch_size):
        enc = tokenizer(list(sources[start : start + batch_size]), return_tensors="pt",
                        padding=True).to(device)
        generated = teacher.generate(**enc, **generate_kwargs)  # (b, L')
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return outputs
