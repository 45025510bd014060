"""Distillation inside Hugging Face's ``Seq2SeqTrainer``: kdkit's loss where users already train.

:class:`DistillationSeq2SeqTrainer` is a ``Seq2SeqTrainer`` that adds a frozen teacher and
replaces the loss with kdkit's word-level KD, ``alpha_mix(CE, T²·KL(p_tea ‖ p_stu), alpha)``
per target token (:mod:`kdkit.losses`). Everything else is the Trainer's: datasets and
``DataCollatorForSeq2Seq``, ``Seq2SeqTrainingArguments`` (bf16, gradient accumulation,
evaluation with generation, checkpoints and ``resume_from_checkpoint``), ``accelerate`` or
``torchrun`` launches. The modes of notebooks 06 and 07:

- word-level KD along the references (the default; ``alpha`` mixes in CE);
- sequence-level KD: ``alpha=0`` on a dataset whose labels are the teacher's outputs
  (:func:`label_with_teacher`), or ``alpha > 0`` for both kinds;
- on-policy (GKD): ``on_policy_fraction`` λ of the steps train on the student's own samples,
  with ``beta`` for GKD's generalized JSD(β) and usually ``temperature=1``;
- ``chunked=True``: the loss from the decoders' hidden states, a chunk of positions at a time,
  never the full ``(B, L, V)`` logits (training only, one process).

The loss is a *sum* over a micro-batch's target tokens divided by ``num_items_in_batch``, the
Trainer's count of target tokens over all micro-batches of the optimiser step (and over all
processes), so gradient accumulation and several processes give the single-process, full-batch
loss. Notebook 06 shows it next to kdkit's own loop.

Where the teacher goes (:func:`place_teacher`), by the Trainer's accelerator:

- plain, DDP or CPU runs: ``accelerator.prepare_model(teacher, evaluation_mode=True)``, a full
  copy on each process's device whose forward runs under the run's autocast (``bf16=True``);
  no DDP wrapper, since it has nothing to synchronise.
- DeepSpeed: ``deepspeed.initialize`` of the teacher alone with the run's config minus the
  optimiser and scheduler; under ZeRO-3 its parameters are partitioned like the student's,
  under ZeRO-0/1/2 (which shard only optimiser state and gradients, which a frozen teacher
  has none of) stage 0, a full copy per process.
- FSDP: sharded like the student, with the run's plugin (FSDP1: ``FullyShardedDataParallel``
  with the plugin's wrap policy, sharding, mixed precision and offload; FSDP2: ``fully_shard``
  of each block the policy picks, then of the root). ``prepare_model(evaluation_mode=True)``
  would leave it unsharded and, as it skips device placement under FSDP, on the CPU.

Tested (tests/test_hf_trainer.py): the loss is kdkit's, in fp32 and under CPU bf16 autocast
(teacher included); gradient accumulation and two gloo processes give the single-process
full-batch weights; resuming from a checkpoint gives the uninterrupted run's weights; the
FSDP1 and FSDP2 placements run for real in a one-process gloo group on the CPU (block by
block, the unsharded teacher's logits; one process splits no weights); the DeepSpeed
branch is tested with a stand-in ``deepspeed`` module (the config it receives), since
deepspeed is not installed here; sequence-level KD on a transfer set beats its CE-only twin
(slow); ``beta`` gives GKD's JSD(β); the chunked loss gives the plain loss and gradient;
on-policy steps train on the student's samples, counted as such; evaluation with generation
reports kdkit's loss and hands generated ids to ``compute_metrics``. Not tested: a real
DeepSpeed run (ZeRO-3 included), FSDP across several devices, bf16 on a GPU.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from kdkit.losses import alpha_mix, check_temperature, check_unit_interval, hard_cross_entropy
from kdkit.on_policy import OnPolicy
from kdkit.seq2seq import Seq2SeqObjective, generate_texts, kd_divergence
from kdkit.t5 import check_t5_vocab

if TYPE_CHECKING:
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

__all__ = [
    "DistillationArguments",
    "DistillationSeq2SeqTrainer",
    "label_with_teacher",
    "place_teacher",
]


@dataclass
class DistillationArguments(Seq2SeqTrainingArguments):
    """``Seq2SeqTrainingArguments`` plus the distillation knobs: T and α of word-level KD; GKD's
    ``beta`` (JSD(β) for T²·KL) and on-policy steps (``on_policy_fraction`` λ > 0: on that
    share of the optimiser steps the student's own samples are the targets); ``chunked``, the
    loss from hidden states without the full logits (one process, no DeepSpeed/FSDP)."""

    temperature: float = field(default=2.0, metadata={"help": "T of the soft targets."})
    alpha: float = field(default=0.5, metadata={"help": "weight of the KD term (0: plain CE)."})
    beta: float | None = field(default=None, metadata={
        "help": "None: T²·KL(p_tea ‖ p_stu); a number in [0, 1]: generalized JSD(β) (GKD)."})
    on_policy_fraction: float = field(default=0.0, metadata={
        "help": "λ: the share of optimiser steps that train on the student's own samples."})
    sample_temperature: float = field(default=1.0, metadata={
        "help": "the temperature the student samples its targets at (on-policy steps)."})
    sample_max_new_tokens: int = field(default=32, metadata={
        "help": "the longest sample of an on-policy step."})
    chunked: bool = field(default=False, metadata={
        "help": "the training loss from hidden states, a chunk of positions at a time."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.temperature = check_temperature(self.temperature, "temperature")
        self.alpha = check_unit_interval("alpha", self.alpha)
        if self.beta is not None:
            self.beta = check_unit_interval("beta", self.beta)
        self.on_policy_fraction = check_unit_interval("on_policy_fraction",
                                                      self.on_policy_fraction)
        self.on_policy = (  # checks its knobs; None without on-policy steps
            OnPolicy(self.on_policy_fraction, self.sample_temperature, self.sample_max_new_tokens)
            if self.on_policy_fraction > 0 else None)


class DistillationSeq2SeqTrainer(Seq2SeqTrainer):
    """A ``Seq2SeqTrainer`` that distils ``teacher`` into ``model`` (the student).

    The teacher is frozen (``eval()``, no gradients) and placed by :func:`place_teacher` (a
    copy per device, or sharded under DeepSpeed ZeRO-3 and FSDP); it sees the same
    ``input_ids``, ``attention_mask`` and decoder inputs as the student. Logs ``ce`` and ``kd``
    (per target token) beside ``loss``. Refuses teachers, students and tokenizers whose
    vocabularies differ. On an on-policy step (``args.on_policy_fraction``) every micro-batch's
    labels are the student's samples before the step's tokens are counted, so the loss stays
    the step's per-token mean (GKD, Agarwal et al. 2024, on an encoder–decoder).
    """

    def __init__(self, *args, teacher: torch.nn.Module, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, DistillationArguments):
            raise TypeError("args must be kdkit.hf.DistillationArguments (Seq2SeqTrainingArguments "
                            "with temperature and alpha).")
        check_t5_vocab(teacher, self.model, getattr(self, "processing_class", None))
        teacher.eval().requires_grad_(False)
        self._check_modes()
        self.teacher = place_teacher(teacher, self.accelerator)
        # Ask the Trainer to count the target tokens of every optimiser step
        # (num_items_in_batch) and not to rescale the loss for gradient accumulation again.
        self.model_accepts_loss_kwargs = True
        self.loss_is_scaled_for_ga = True
        self._parts: dict[str, torch.Tensor] = {}  # summed since the last log, on the device

    def _check_modes(self) -> None:
        """Refuse the modes this run's setup cannot give exactly, saying what to change."""
        state = self.accelerator.state
        sharded = (getattr(state, "deepspeed_plugin", None) is not None
                   or getattr(state, "fsdp_plugin", None) is not None)
        if self.args.chunked and (sharded or self.accelerator.num_processes > 1):
            raise ValueError("chunked=True reads the decoders' hidden states around the wrapped "
                             "model's forward: it needs one process without DeepSpeed or FSDP. "
                             "Use chunked=False there (or kdkit distill-t5 --chunked-loss).")
        if self.args.on_policy is not None and sharded:
            raise ValueError("on-policy steps sample from the student with generate(), which "
                             "DeepSpeed ZeRO-3 and FSDP would need in lockstep on every process: "
                             "use on_policy_fraction=0 there, or plain data parallelism.")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Σ over target tokens of ``(1 − α)·CE + α·T²·KL(p_tea ‖ p_stu)`` (JSD(β) with
        ``beta``), divided by the step's token count (this micro-batch's when
        ``num_items_in_batch`` is None)."""
        labels = inputs["labels"]  # (B, L), -100 where padded
        mask = labels != -100  # (B, L)
        if self.args.chunked and model.training:  # no (B, L, V) logits; evaluation keeps them
            outputs, parts = None, self._chunked(self.accelerator.unwrap_model(model), inputs)
            total, ce, kd = parts["target"], parts["ce"], parts["kd"]
        else:
            outputs = model(**inputs)
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits  # (B, L, V)
            ce = hard_cross_entropy(outputs.logits, labels, reduction="sum")
            kd = kd_divergence(outputs.logits, teacher_logits, mask, T=self.args.temperature,
                               beta=self.args.beta)
            total = alpha_mix(ce, kd, self.args.alpha)
        count = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(count).clamp(min=1)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # DDP averages the processes' gradients
        if model.training:  # detached sums, read at log time: no host sync per micro-batch
            for key, value in (("ce", ce), ("kd", kd), ("tokens", mask.sum())):
                self._parts[key] = self._parts.get(key, 0) + value.detach().float()
        return (loss, outputs) if return_outputs else loss

    def _chunked(self, student: torch.nn.Module, inputs: dict) -> dict[str, torch.Tensor]:
        """The loss's sums from the decoders' hidden states, a chunk of positions at a time
        (:class:`kdkit.seq2seq.Seq2SeqObjective` with ``chunked=True``)."""
        objective = Seq2SeqObjective(teacher=self.teacher, T=self.args.temperature,
                                     alpha=self.args.alpha, beta=self.args.beta, chunked=True)
        return objective(student, inputs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """``Seq2SeqTrainer``'s step; with ``predict_with_generate`` its loss is the student's
        own CE, so it is replaced by this trainer's loss: ``eval_loss`` is kdkit's loss,
        with or without generation (one more forward pass of both models)."""
        loss, generated, labels = super().prediction_step(
            model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
        if self.args.predict_with_generate and not prediction_loss_only and loss is not None:
            with torch.no_grad():
                loss = self.compute_loss(model, self._prepare_inputs(inputs)).detach()
        return loss, generated, labels

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The step's micro-batches and target-token count; on an on-policy step the labels
        are the student's samples (drawn from torch's RNG, which checkpoints save) and the
        count is theirs."""
        batches, count = super().get_batch_samples(epoch_iterator, num_batches, device)
        on_policy = self.args.on_policy
        if on_policy is None or not on_policy.samples_at(self.state.global_step):
            return batches, count
        student = self.accelerator.unwrap_model(self.model)
        batches = [_relabelled(on_policy.sample_batch(student, b), student) for b in batches]
        return batches, self._get_num_items_in_batch(batches, device)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Adds the CE and KD parts (per target token since the last log, over all processes:
        every process logs, so the sums are reduced here) to training logs."""
        if "loss" in logs and self._parts:
            ce, kd, tokens = torch.stack([self._parts[k] for k in ("ce", "kd", "tokens")])
            if self.accelerator.num_processes > 1:
                ce, kd, tokens = self.accelerator.reduce(torch.stack([ce, kd, tokens]), "sum")
            logs["ce"] = round((ce / tokens.clamp(min=1)).item(), 4)
            logs["kd"] = round((kd / tokens.clamp(min=1)).item(), 4)
            self._parts = {}
        super().log(logs, *args, **kwargs)


def _relabelled(batch: dict, student: torch.nn.Module) -> dict:
    """A sampled batch with its labels where its inputs are and decoder inputs that read them
    (a collator given ``model=`` made them from the old labels)."""
    batch["labels"] = batch["labels"].to(batch["input_ids"].device)
    if "decoder_input_ids" in batch:
        batch["decoder_input_ids"] = student.prepare_decoder_input_ids_from_labels(
            labels=batch["labels"])
    return batch


def label_with_teacher(
    teacher: torch.nn.Module, tokenizer, sources: Sequence[str], **generate_kwargs
) -> list[str]:
    """The teacher's outputs for ``sources``, the targets of sequence-level KD (Kim & Rush
    2016): :func:`kdkit.seq2seq.generate_texts` (greedy unless ``num_beams``; its
    ``batch_size``, ``max_new_tokens``, ...; under ``torchrun`` each process decodes a share).
    Put them in the dataset's target column and train with ``alpha=0`` (or keep ``alpha > 0``
    for both kinds of KD)."""
    return generate_texts(teacher, tokenizer, sources, **generate_kwargs)


# ------------------------------------------------------------ where the frozen teacher goes


def place_teacher(teacher: torch.nn.Module, accelerator: Accelerator) -> torch.nn.Module:
    """The frozen ``teacher`` placed for ``accelerator``'s run, in eval mode (module docstring:
    DeepSpeed engine, FSDP-sharded, or ``prepare_model(evaluation_mode=True)``)."""
    state = accelerator.state
    if getattr(state, "deepspeed_plugin", None) is not None:
        placed = _deepspeed_teacher(teacher, state.deepspeed_plugin.deepspeed_config)
    elif getattr(state, "fsdp_plugin", None) is not None:
        placed = _fsdp_teacher(teacher, accelerator, state.fsdp_plugin)
    else:
        placed = accelerator.prepare_model(teacher, evaluation_mode=True)
    return placed.eval()


def deepspeed_teacher_config(config: dict[str, Any], hidden_size: int | None) -> dict[str, Any]:
    """The run's DeepSpeed ``config`` made fit for a frozen teacher: no optimiser or scheduler;
    ZeRO-3 kept (its ``"auto"`` bucket sizes filled from ``hidden_size`` as the Trainer fills
    the student's), any other stage set to 0 (a full copy per process)."""
    config = copy.deepcopy(config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    zero = config.setdefault("zero_optimization", {})
    if zero.get("stage", 0) != 3:
        zero["stage"] = 0
    elif hidden_size:
        h = hidden_size
        sizes = {"reduce_bucket_size": h * h, "stage3_prefetch_bucket_size": int(0.9 * h * h),
                 "stage3_param_persistence_threshold": 10 * h}
        for key, value in sizes.items():
            if zero.get(key, "auto") == "auto":
                zero[key] = value
    return config


def _deepspeed_teacher(teacher: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
    try:
        import deepspeed
    except ImportError as err:  # the run's accelerator says DeepSpeed: it should be there
        raise ImportError("The Trainer runs under DeepSpeed but `import deepspeed` failed: "
                          "pip install deepspeed.") from err
    hidden_size = getattr(getattr(teacher, "config", None), "hidden_size", None)
    engine, *_ = deepspeed.initialize(model=teacher,
                                      config=deepspeed_teacher_config(config, hidden_size))
    return engine


def _fsdp_teacher(
    teacher: torch.nn.Module, accelerator: Accelerator, plugin: FullyShardedDataParallelPlugin
) -> torch.nn.Module:
    """``teacher`` sharded with the run's FSDP ``plugin`` as accelerate shards the student;
    ``ignored_modules`` (which name the student's modules) and activation checkpointing (no
    backward pass) are left out."""
    if plugin.fsdp_version == 2:
        return _fsdp2_teacher(teacher, accelerator, plugin)
    from accelerate.utils.fsdp_utils import ensure_weights_retied
    from torch.distributed.fsdp import FullyShardedDataParallel

    plugin = copy.copy(plugin)  # set_auto_wrap_policy binds the policy to this model's classes
    plugin.set_auto_wrap_policy(teacher)
    return FullyShardedDataParallel(
        teacher, sharding_strategy=plugin.sharding_strategy or plugin.reshard_after_forward,
        cpu_offload=plugin.cpu_offload, auto_wrap_policy=plugin.auto_wrap_policy,
        mixed_precision=plugin.mixed_precision_policy, sync_module_states=plugin.sync_module_states,
        backward_prefetch=plugin.backward_prefetch, forward_prefetch=plugin.forward_prefetch,
        use_orig_params=plugin.use_orig_params, limit_all_gathers=plugin.limit_all_gathers,
        param_init_fn=ensure_weights_retied(plugin.param_init_fn, teacher, accelerator.device),
        device_id=accelerator.device)


def _fsdp2_teacher(
    teacher: torch.nn.Module, accelerator: Accelerator, plugin: FullyShardedDataParallelPlugin
) -> torch.nn.Module:
    """``fully_shard`` of each block the plugin's policy picks, then of the root."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if any(p.is_meta for p in teacher.parameters()):  # FSDP1 syncs them from rank 0
        raise ValueError("Under FSDP2 the teacher needs its weights on every process, but some "
                         "are on the meta device: load it without cpu_ram_efficient_loading "
                         "(fsdp_config), or use FSDP1.")
    mesh = getattr(accelerator, "torch_device_mesh", None)
    if mesh is not None:
        mesh = mesh[tuple(accelerator.parallelism_config.fsdp_dim_names)]
    kwargs = dict(reshard_after_forward=plugin.reshard_after_forward, mesh=mesh,
                  offload_policy=plugin.cpu_offload,
                  mp_policy=plugin.mixed_precision_policy or MixedPrecisionPolicy())
    policy = fsdp2_prepare_auto_wrap_policy(plugin, teacher) or (lambda module: False)
    blocks = [m for m in teacher.modules() if m is not teacher and policy(m)]
    for block in reversed(blocks):  # inner blocks before the modules that hold them
        fully_shard(block, **kwargs)
    return fully_shard(teacher, **kwargs)
