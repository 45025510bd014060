"""Training and reading an encoder–decoder (T5) student: the objective, the loop, generation and
per-step views (notebook 06).

- Word-level KD (Kim & Rush 2016; Hinton et al. 2015 applied per decoder step): under teacher
  forcing both models read the same decoder inputs, so every target position has a teacher
  distribution ``p_tea`` and a student distribution ``p_stu`` over the same ``V`` token ids; the
  loss is :func:`kdkit.losses.distillation_loss` over real target tokens, optionally plus an
  encoder hidden-state MSE (:class:`Seq2SeqObjective`).
- Sequence-level KD (Kim & Rush 2016): the teacher *generates* an output for every training
  input and the student trains with plain cross-entropy on those (:func:`teacher_outputs`).

:func:`train_seq2seq` is the explicit loop (AdamW, warm-up + decay, clipping, accumulation by
token count, bf16 autocast on GPU, atomic checkpoints, exact resume).
:func:`teacher_forced_logits`, :func:`step_distributions` and :func:`token_fidelity` look
inside: the decoder's per-step distributions and how closely a student's follow the teacher's.
The whole experiment behind ``kdkit distill-t5`` is :mod:`kdkit.pipeline`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from kdkit import distributed
from kdkit.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from kdkit.config import TrainConfig
from kdkit.data.batching import (
    LengthGroupedBatchSampler,
    Seq2SeqCollator,
    TextPair,
    encode_pairs,
)
from kdkit.distributions import softened
from kdkit.features import hidden_state_mse
from kdkit.losses import (
    alpha_mix,
    check_temperature,
    check_unit_interval,
    chunked_distillation_loss,
    generalized_jsd_loss,
    hard_cross_entropy,
    kd_kl_loss,
    mask_from_labels,
    sparse_kd_loss,
    t5_logit_scale,
)
from kdkit.metrics import agreement, compute_metric
from kdkit.models import count_parameters
from kdkit.on_policy import OnPolicy
from kdkit.schedules import warmup_decay_scheduler

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "Seq2SeqObjective",
    "kd_divergence",
    "backward_accumulated",
    "train_seq2seq",
    "generate_texts",
    "teacher_outputs",
    "evaluate_seq2seq",
    "teacher_forced_logits",
    "teacher_topk",
    "attach_teacher_topk",
    "step_distributions",
    "sequence_log_probs",
    "token_fidelity",
]

CHECKPOINT_FILE = "checkpoint.pt"
_RANK_SEED_STRIDE = 1_000_003  # process r seeds dropout with config.seed + r * this


# --------------------------------------------------------------------------- objective


@dataclass
class Seq2SeqObjective:
    """What a training step minimises. No teacher: cross-entropy on the batch's labels.
    With a teacher: word-level KD, ``alpha_mix(CE, T²·KL(p_tea ‖ p_stu), alpha)`` over real target
    tokens, plus ``hidden_weight`` × the MSE between the encoders' last hidden states
    (FitNets-style; ``projection``, e.g. :func:`kdkit.features.identity_projection`, maps the
    student's width to the teacher's and is trained with the student).

    Called as ``objective(model, batch)``, it returns *sums*: ``"target"`` over real target
    tokens and ``"source"`` over real source tokens (the hidden-state term), so the loop can
    divide by the token counts of a whole accumulated step; and the unweighted parts
    ``"ce"``, ``"kd"``, ``"hidden"`` (also sums) for the history. With ``beta``, the KD term
    is :func:`kdkit.losses.generalized_jsd_loss` (β = 0 forward KL, 1 reverse KL, no T²):
    GKD's divergence, which :class:`kdkit.on_policy.OnPolicy` steps apply to the student's own
    samples.
    """

    teacher: nn.Module | None = None
    T: float = 1.0
    alpha: float = 0.5
    hidden_weight: float = 0.0
    projection: nn.Module | None = None
    chunked: bool = False  # the KD loss from hidden states in chunks: never the full logits
    cached: bool = False  # the teacher from the batch's top-k cache: the teacher is not run
    cache_tail: str = "renormalise"  # how kdkit.losses.sparse_kd_loss treats the cut-off tail
    beta: float | None = None  # None: T²·KL(p_tea ‖ p_stu); a number: generalized JSD(β) (GKD)

    def __post_init__(self) -> None:
        self.T = check_temperature(self.T)
        self.alpha = check_unit_interval("alpha", self.alpha)
        if not self.hidden_weight >= 0:
            raise ValueError(f"hidden_weight must be >= 0, got {self.hidden_weight!r}.")
        if self.cache_tail not in ("renormalise", "uniform"):
            raise ValueError(f"cache_tail must be 'renormalise' or 'uniform', got "
                             f"{self.cache_tail!r}.")
        if self.beta is not None:
            self.beta = check_unit_interval("beta", self.beta)
            if self.cached:
                raise ValueError("beta (a JSD term) needs the live teacher: the top-k cache "
                                 "gives KL only; set cached=False or beta=None.")
        if self.cached and (self.teacher is not None or self.hidden_weight > 0 or self.chunked):
            raise ValueError(
                "cached=True reads the teacher from the batch's top-k cache: give no teacher, "
                "no hidden-state term and chunked=False."
            )
        if self.teacher is None and (self.hidden_weight > 0):
            raise ValueError("hidden_weight > 0 needs a teacher.")
        if self.hidden_weight > 0 and self.projection is None:
            raise ValueError(
                "hidden_weight > 0 needs projection=nn.Linear(student d_model, teacher d_model) "
                "(trained with the student; kdkit.features.identity_projection starts it as the "
                "identity)."
            )

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        labels = batch["labels"]  # (B, L_tgt), -100 on padding
        # Teacher forcing: the decoder reads the target shifted right (-100 -> pad). Passing
        # decoder_input_ids rather than labels skips the model's own loss computation.
        inputs = {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "decoder_input_ids": model.prepare_decoder_input_ids_from_labels(labels=labels),
        }
        if self.cached:
            if "topk_logits" not in batch:
                raise ValueError(
                    "cached=True but the batch holds no teacher cache: attach one with "
                    "kdkit.seq2seq.attach_teacher_topk(features, teacher_topk(...))."
                )
            parts, enc_s, enc_t = self._plain_parts(
                model, inputs | {k: batch[k] for k in ("topk_logits", "topk_indices", "lse")},
                labels,
            )
        elif self.chunked and self.teacher is not None:
            parts, enc_s, enc_t = self._chunked_parts(model, inputs, labels)
        else:
            parts, enc_s, enc_t = self._plain_parts(model, inputs, labels)
        if "mixed" in parts:  # chunked: the mix was made (with its gradient) chunk by chunk
            target = parts.pop("mixed")
        elif self.cached:
            target = alpha_mix(parts["ce"], parts["kd"], self.alpha)
        elif self.teacher is None:
            target = parts["ce"]
        else:
            target = alpha_mix(parts["ce"], parts["kd"], self.alpha)
        source = parts["hidden"]
        if self.hidden_weight > 0:
            h_s = self.projection(enc_s.float())  # (B, L_src, D_T)
            h_t = enc_t.float()  # (B, L_src, D_T)
            parts["hidden"] = hidden_state_mse(
                h_s, h_t, batch["attention_mask"].bool(), reduction="sum"
            )
            source = self.hidden_weight * parts["hidden"]
        return {**parts, "target": target, "source": source}

    def _plain_parts(self, model, inputs, labels):
        """CE and KD sums from the full logits; the encoders' last states."""
        out = model(**{k: inputs[k] for k in ("input_ids", "attention_mask", "decoder_input_ids")})
        student_logits = out.logits.float()  # (B, L_tgt, V); fp32 for the losses under bf16
        ce = hard_cross_entropy(student_logits, labels, reduction="sum")
        zero = ce.new_zeros(())
        parts = {"ce": ce, "kd": zero, "hidden": zero}
        if self.cached:
            parts["kd"] = sparse_kd_loss(
                student_logits, inputs["topk_logits"], inputs["topk_indices"], inputs["lse"],
                T=self.T, tail=self.cache_tail, mask=mask_from_labels(labels), reduction="sum",
            )
        if self.teacher is None:
            return parts, out.encoder_last_hidden_state, None
        with torch.no_grad():
            ref = self.teacher(**inputs)
        mask = mask_from_labels(labels)  # (B, L_tgt)
        parts["kd"] = kd_divergence(student_logits, ref.logits.float(), mask, T=self.T,
                                    beta=self.beta)
        return parts, out.encoder_last_hidden_state, ref.encoder_last_hidden_state

    def _chunked_parts(self, model, inputs, labels):
        """The same sums from the decoders' last hidden states, a chunk of positions at a
        time (:func:`kdkit.losses.chunked_distillation_loss`)."""
        enc_s, dec_s = _decoder_states(model, inputs)
        with torch.no_grad():
            enc_t, dec_t = _decoder_states(self.teacher, inputs)
        loss, (ce, kd) = chunked_distillation_loss(
            dec_s.float(), model.lm_head.weight, labels, teacher_hidden=dec_t.float(),
            teacher_weight=self.teacher.lm_head.weight, T=self.T, alpha=self.alpha,
            logit_scale=t5_logit_scale(model), teacher_logit_scale=t5_logit_scale(self.teacher),
            divergence="kl" if self.beta is None else "jsd", beta=self.beta or 0.0,
            reduction="sum", return_parts=True,
        )
        return {"ce": ce, "kd": kd, "hidden": ce.new_zeros(()), "mixed": loss}, enc_s, enc_t


def kd_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *,
    T: float = 1.0, beta: float | None = None,
) -> torch.Tensor:
    """The word-level KD term summed over ``mask``'s positions: ``T²·KL(p_tea ‖ p_stu)``
    (Hinton et al. 2015), or with ``beta`` GKD's generalized JSD(β) (Agarwal et al. 2024; 0
    forward KL, 1 reverse KL). Logits ``(B, L, V)``, mask ``(B, L)``; a scalar."""
    if beta is None:
        return kd_kl_loss(student_logits, teacher_logits, T=T, mask=mask, reduction="sum")
    return generalized_jsd_loss(student_logits, teacher_logits, beta=beta, T=T, mask=mask,
                                reduction="sum")


def _decoder_states(model: nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A T5's encoder and decoder last hidden states, without making its logits."""
    enc = model.encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    dec = model.decoder(
        input_ids=inputs["decoder_input_ids"], encoder_hidden_states=enc.last_hidden_state,
        encoder_attention_mask=inputs["attention_mask"],
    )
    return enc.last_hidden_state, dec.last_hidden_state  # (B, L_src, D), (B, L_tgt, D)


# --------------------------------------------------------------------------- training loop


def _autocast(device: torch.device, bf16: bool):
    # bf16 keeps fp32's exponent range; fp16 overflows in T5's feed-forward activations.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def backward_accumulated(
    model: nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    objective: Seq2SeqObjective | Callable,
    *,
    bf16: bool = False,
) -> dict[str, float]:
    """Backpropagate one optimiser step made of several micro-batches (gradient accumulation).

    Each micro-batch's *summed* loss is divided by the token count of the whole step (target
    tokens for CE/KD, source tokens for the hidden-state term), so the accumulated gradient
    equals that of one batch holding every example, however the tokens fall into
    micro-batches; dividing each micro-batch's mean by the number of micro-batches would weight
    a token in a short micro-batch more. The parts are summed on the device and read once at
    the end (no per-micro-batch ``.item()``). Returns the step's ``"loss"``, ``"ce"``,
    ``"kd"``, ``"hidden"`` per token. Under ``torchrun`` (:mod:`kdkit.distributed`) the token
    counts and the returned parts are summed over the processes first: each process's loss is
    its share of the global per-token mean (a process may hold no micro-batch at all).
    """
    device = next(model.parameters()).device
    # token counts from the batches while they are still on the CPU: no device round trip
    counts = torch.tensor([
        sum(int((b["labels"] != -100).sum()) for b in micro_batches),
        sum(int(b["attention_mask"].sum()) for b in micro_batches),
    ])
    n_target, n_source = (max(1, int(n)) for n in distributed.all_reduce_sum(counts))
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, ce, kd, hidden
    for batch in micro_batches:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with _autocast(device, bf16):
            parts = objective(model, batch)
        loss = parts["target"] / n_target + parts["source"] / n_source
        loss.backward()
        parts = {k: v.detach().double() for k, v in parts.items()}
        sums += torch.stack([
            loss.detach().double(), parts["ce"] / n_target, parts["kd"] / n_target,
            parts["hidden"] / n_source,
        ])
    # the step's one read of device values (the history and the progress bar need them)
    sums = distributed.all_reduce_sum(sums)
    return dict(zip(("loss", "ce", "kd", "hidden"), sums.tolist(), strict=True))


class _BatchStream:
    """The micro-batches' example indices, epoch after epoch: each epoch's order comes from
    the sampler's ``(seed, epoch)``, so ``(epoch, position)`` in a checkpoint is all a resumed
    run needs to see exactly the batches it would have seen."""

    def __init__(self, sampler: LengthGroupedBatchSampler, epoch: int = 0, position: int = 0):
        self.sampler, self.epoch, self.position = sampler, epoch, position
        self.batches = sampler.batches(epoch)

    def next(self) -> list[int]:
        if self.position == len(self.batches):  # epoch over: the next one has a new order
            self.epoch, self.position = self.epoch + 1, 0
            self.batches = self.sampler.batches(self.epoch)
        self.position += 1
        return self.batches[self.position - 1]


def _restore(path: Path, config: TrainConfig, modules: dict[str, nn.Module | None],
             opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """Load a checkpoint written by :func:`train_seq2seq` into the run's objects; return it."""
    state = load_checkpoint(path)  # on the CPU: RNG states must stay there
    if state["config"] != asdict(config):
        raise ValueError(
            f"the checkpoint in {path.parent} was written with a different TrainConfig "
            f"({state['config']}); resume with the same config or start a fresh run "
            f"(resume=False, or another checkpoint directory)."
        )
    rank, processes = distributed.world()
    if state.get("world_size", 1) != processes:
        raise ValueError(
            f"the checkpoint in {path.parent} was written by {state.get('world_size', 1)} "
            f"process(es) and this run has {processes}: the global batch would change. Resume "
            f"with the same number of processes (torchrun --nproc_per_node), or start fresh."
        )
    for name, module in modules.items():
        if module is not None:
            module.load_state_dict(state[name])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"] if processes == 1 else state["rng_ranks"][rank])
    return state


def _begin(
    path: Path | None, config: TrainConfig, modules: dict[str, nn.Module | None],
    opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
    sampler: LengthGroupedBatchSampler,
) -> tuple[int, dict[str, list[float]], _BatchStream]:
    """Where a run starts: the checkpoint at ``path``'s step, history and data position when
    there is one; else step 0 with torch seeded (``config.seed``, moved per process) and every
    process holding rank 0's weights."""
    if path is not None and path.exists():
        state = _restore(path, config, modules, opt, sched)
        return state["step"], state["history"], _BatchStream(
            sampler, state["epoch"], state["position"])
    torch.manual_seed(config.seed + _RANK_SEED_STRIDE * distributed.world()[0])
    for module in modules.values():
        distributed.broadcast_module(module)
    history: dict[str, list[float]] = {k: [] for k in (*_STEP_KEYS, "val_step", "val_score")}
    return 0, history, _BatchStream(sampler)


def _optimizer(
    params: list[nn.Parameter], config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (fused into one kernel on CUDA) and its warm-up + decay schedule."""
    fused = params[0].device.type == "cuda"  # CPU keeps the default: the same numbers as ever
    opt = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
    )
    sched = warmup_decay_scheduler(
        opt, warmup_steps=config.warmup_steps, total_steps=config.max_steps,
        schedule=config.schedule,
    )
    return opt, sched


def _optimizer_step(
    model: nn.Module,
    micro_batches: list[dict[str, torch.Tensor]],
    objective: Seq2SeqObjective | Callable,
    params: list[nn.Parameter],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
) -> dict[str, float]:
    """One optimiser step over accumulated micro-batches: gradients, clipping, AdamW, the
    schedule. Returns the step's per-token parts and the ``"lr"`` it used."""
    opt.zero_grad(set_to_none=True)
    sums = backward_accumulated(model, micro_batches, objective, bf16=config.bf16)
    distributed.sum_gradients(params)  # once per step, after the last micro-batch
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    lr = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    return {**sums, "lr": lr}


def _compiled(objective: Seq2SeqObjective) -> Callable:
    """The objective's forward and loss under ``torch.compile`` (the backward is compiled with
    it). The first steps of each new batch shape compile; the arithmetic is the same, so the
    weights agree with eager mode to float rounding."""
    return torch.compile(objective.__call__)


def _step_objectives(
    objective: Seq2SeqObjective, on_policy: OnPolicy | None, config: TrainConfig,
    device: torch.device,
) -> tuple[Callable, Callable | None]:
    """The training objective and the on-policy warm start's (None without one), compiled
    when ``config.compile``; their teachers moved to ``device`` and put in ``eval()``."""
    warmup = on_policy.warmup if on_policy is not None and on_policy.start > 0 else None
    if getattr(warmup, "projection", None) is not None:
        raise ValueError("on_policy.warmup must not hold a projection: only the training "
                         "objective's projection is trained; give the warm start none.")
    for obj in (objective, warmup):
        if getattr(obj, "teacher", None) is not None:
            obj.teacher.to(device).eval()
    if config.compile:
        return _compiled(objective), warmup and _compiled(warmup)
    return objective, warmup


def _micro_batches(
    model: nn.Module, features: Sequence[dict], stream: _BatchStream, collator: Callable,
    config: TrainConfig, on_policy: OnPolicy | None, step: int,
) -> list[dict[str, torch.Tensor]]:
    """One optimiser step's micro-batches (this process's share of each global micro-batch;
    an empty share is left out); on an on-policy step their labels are the model's own samples
    (before the loop counts target tokens, so the normalisation stays exact)."""
    shares = [distributed.share(stream.next()) for _ in range(config.grad_accum_steps)]
    micro = [collator([features[i] for i in ids]) for ids in shares if ids]
    if on_policy is not None and on_policy.samples_at(step):
        micro = [on_policy.sample_batch(model, b) for b in micro]
    if next(model.parameters()).device.type == "cuda":  # page-locked: copies overlap compute
        micro = [{k: v.pin_memory() for k, v in b.items()} for b in micro]
    return micro


_STEP_KEYS = ("step", "loss", "ce", "kd", "hidden", "lr")  # the history's per-step entries


def _record(history: dict, done: int, sums: dict, model: nn.Module,
            validate: Callable[[nn.Module], float] | None, eval_every: int) -> None:
    """Append step ``done``'s parts to ``history``; validate the model when it is due."""
    for k in _STEP_KEYS:
        history[k].append(done if k == "step" else sums[k])
    if validate is not None and eval_every and done % eval_every == 0:
        model.eval()
        history["val_step"].append(done)
        history["val_score"].append(float(validate(model)))
        model.train()


def _checkpoints_due(path: Path | None, snapshot: tuple[int, str | Path] | None,
                     config: TrainConfig, done: int) -> list[Path]:
    """Where step ``done``'s checkpoint goes: the run's own, every ``config.checkpoint_every``
    steps; a ``snapshot``'s at its step."""
    due = []
    if path is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
        due.append(path)
    if snapshot is not None and done == snapshot[0]:
        due.append(Path(snapshot[1]))
    return due


def _save(path: Path, config: TrainConfig, step: int, stream: _BatchStream,
          modules: dict[str, nn.Module | None], opt: torch.optim.Optimizer,
          sched: torch.optim.lr_scheduler.LRScheduler,
          history: dict) -> None:
    """An atomic checkpoint of everything a resumed run needs to continue bit for bit,
    written by rank 0 (with every process's RNG state under ``torchrun``)."""
    rngs = distributed.gather_objects(rng_state())  # a collective: every process calls it
    if not distributed.is_main():
        return
    processes = len(rngs)
    state = {
        "step": step,
        "epoch": stream.epoch,
        "position": stream.position,
        **{name: m.state_dict() if m is not None else None for name, m in modules.items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rngs[0],
        "history": history,
        "config": asdict(config),
        **({"world_size": processes, "rng_ranks": rngs} if processes > 1 else {}),
    }
    save_checkpoint(state, path)


def train_seq2seq(
    model: nn.Module,
    features: Sequence[dict[str, list[int]]],
    config: TrainConfig,
    *,
    objective: Seq2SeqObjective | None = None,
    collator: Callable | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    on_policy: OnPolicy | None = None,
    snapshot: tuple[int, str | Path] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a seq2seq model for ``config.max_steps`` optimiser steps; return its history.

    ``features``: :func:`kdkit.data.batching.encode_pairs` output. ``objective``: cross-entropy when
    None, else a :class:`Seq2SeqObjective` (its teacher stays in ``eval()``, no gradients).
    Each optimiser step accumulates ``config.grad_accum_steps`` micro-batches and divides the
    summed loss by the step's total number of target tokens, so an accumulated step has
    exactly the loss (and gradient) of one batch holding all its examples. AdamW, warm-up then
    decay (:func:`kdkit.schedules.warmup_decay_factor`), global-norm clipping, bf16 autocast on
    CUDA when ``config.bf16``. A fresh run seeds torch with ``config.seed`` (dropout, batch
    order). With ``checkpoint_dir``, every ``config.checkpoint_every`` steps an atomic
    checkpoint holds model, optimiser, scheduler, RNG states and data position;
    ``resume=True`` continues from it and ends with the same weights as an uninterrupted run.
    ``stop_after`` ends the run early after that many steps (an interruption, for tests).
    ``config.compile``: the objective runs under ``torch.compile``. History: per optimiser step
    ``"step"``, ``"loss"``, ``"ce"``, ``"kd"``, ``"hidden"`` (per token, unweighted), ``"lr"``;
    every ``config.eval_every`` steps ``validate(model)`` (in ``eval()``) as ``"val_score"``
    at ``"val_step"`` — a learning curve. ``on_policy``: on its steps the targets are the
    model's own samples (:class:`kdkit.on_policy.OnPolicy`; GKD with ``objective.beta``);
    before its ``start`` the loop minimises its ``warmup`` objective instead. ``snapshot``
    ``(N, path)``: also write the checkpoint of step N to ``path``, for another run that shares
    these first N steps to resume from (``checkpoint_dir=path.parent, resume=True``).

    Under ``torchrun`` (:mod:`kdkit.distributed`), ``config.batch_size`` is each process's
    micro-batch: the processes deal out global micro-batches of ``batch_size × world_size``
    and end with the weights of one process training with that batch; rank 0 writes the
    checkpoints, which hold every process's RNG state; resume with as many processes.
    """
    objective = objective or Seq2SeqObjective()
    if len(features) == 0:
        raise ValueError("features is empty: there is nothing to train on.")
    device = next(model.parameters()).device
    step_objective, warmup = _step_objectives(objective, on_policy, config, device)
    collator = collator or Seq2SeqCollator(pad_token_id=model.config.pad_token_id)
    projection = objective.projection.to(device) if objective.projection is not None else None
    modules = {"model": model, "projection": projection}
    params = list(model.parameters()) + (list(projection.parameters()) if projection else [])
    opt, sched = _optimizer(params, config)
    lengths = [len(f["input_ids"]) + len(f["labels"]) for f in features]
    rank, processes = distributed.world()
    sampler = LengthGroupedBatchSampler(lengths, config.batch_size * processes, seed=config.seed,
                                        group_by_length=config.group_by_length)
    path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    step, history, stream = _begin(path if resume else None, config, modules, opt, sched, sampler)
    model.train()
    bar = trange(
        step, config.max_steps, initial=step, total=config.max_steps, desc=desc,
        disable=not progress or rank > 0,
    )
    for step in bar:
        micro = _micro_batches(model, features, stream, collator, config, on_policy, step)
        this = warmup if warmup is not None and on_policy.warming_up(step) else step_objective
        sums = _optimizer_step(model, micro, this, params, opt, sched, config)
        done = step + 1
        _record(history, done, sums, model, validate, config.eval_every)
        bar.set_postfix(loss=f"{sums['loss']:.3f}", refresh=False)
        for target in _checkpoints_due(path, snapshot, config, done):
            _save(target, config, done, stream, modules, opt, sched, history)
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    distributed.barrier()  # rank 0's last checkpoint is on disk before anyone reads it
    model.eval()
    return history


# --------------------------------------------------------------------------- generation


@torch.no_grad()
def generate_texts(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    *,
    batch_size: int = 64,
    max_source_len: int = 512,
    max_new_tokens: int = 32,
    num_beams: int = 1,
    bf16: bool = False,
) -> list[str]:
    """Decode an output for every source: greedy (``num_beams=1``) or beam search.

    Sources are batched by length (less padding) and the outputs returned in input order,
    special tokens removed. Under ``torchrun`` each process decodes its share
    (:func:`kdkit.distributed.share`) and every process gets all outputs back in order.
    """
    mine = _generate_local(
        model, tokenizer, distributed.share(sources), batch_size=batch_size,
        max_source_len=max_source_len, max_new_tokens=max_new_tokens, num_beams=num_beams,
        bf16=bf16,
    )
    return distributed.gather_shares(mine, len(sources))


@torch.no_grad()
def _generate_local(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], *,
    batch_size: int, max_source_len: int, max_new_tokens: int, num_beams: int, bf16: bool,
) -> list[str]:
    """:func:`generate_texts` in this process alone."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: list[str] = [""] * len(sources)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [sources[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_source_len,
            return_tensors="pt",
        ).to(device)
        with _autocast(device, bf16):
            ids = model.generate(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                do_sample=False,
            )  # (b, L_out)
        for i, text in zip(idx, tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
            outputs[i] = text.strip()
    return outputs


def teacher_outputs(
    teacher: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[TextPair],
    **generate_kwargs,
) -> list[TextPair]:
    """Sequence-level KD's training set: each source with the *teacher's* output as target.

    Kim & Rush (2016), "Sequence-level knowledge distillation": train the student with
    cross-entropy on the teacher's beam-search outputs (the mode of its sequence
    distribution) instead of the references. ``generate_kwargs`` go to
    :func:`generate_texts`.
    """
    sources = [source for source, _ in pairs]
    outputs = generate_texts(teacher, tokenizer, sources, **generate_kwargs)
    return list(zip(sources, outputs, strict=True))


@torch.no_grad()
def teacher_forced_logits(
    model: nn.Module,
    features: Sequence[dict[str, list[int]]],
    *,
    batch_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's logits at every target position when it reads the reference (teacher
    forcing), for :func:`kdkit.data.batching.encode_pairs` features.

    Returns ``logits`` ``(N, L, V)`` (fp32, on the CPU) and ``labels`` ``(N, L)`` with -100
    on padding, ``L`` the longest target. Two models given the same features see the same
    decoder inputs, so their distributions at a position are directly comparable. The result
    holds ``N·L·V`` floats: with T5's 32,128-token vocabulary, pass a few hundred examples.
    """
    if len(features) == 0:
        raise ValueError(
            "features is empty: encode some pairs with kdkit.data.batching.encode_pairs."
        )
    model.eval()
    device = next(model.parameters()).device
    collator = Seq2SeqCollator(pad_token_id=model.config.pad_token_id)
    length = max(len(f["labels"]) for f in features)
    all_logits, all_labels = [], []
    for start in range(0, len(features), batch_size):
        batch = collator(list(features[start : start + batch_size]))
        labels = batch["labels"]  # (b, l)
        out = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels.to(device)),
        )
        pad = length - labels.shape[1]
        logits = out.logits.float().cpu()  # (b, l, V)
        all_logits.append(torch.nn.functional.pad(logits, (0, 0, 0, pad)))  # (b, L, V)
        all_labels.append(torch.nn.functional.pad(labels, (0, pad), value=-100))  # (b, L)
    return torch.cat(all_logits), torch.cat(all_labels)


@torch.no_grad()
def teacher_topk(
    teacher: nn.Module,
    features: Sequence[dict[str, list[int]]],
    *,
    k: int,
    T: float = 1.0,
    batch_size: int = 128,
) -> dict[str, torch.Tensor]:
    """An offline teacher cache: at every target position of every example, under teacher
    forcing, the teacher's ``k`` largest logits and their token ids, and its full
    ``logsumexp(z / T)`` (what :func:`kdkit.losses.sparse_kd_loss`'s uniform tail needs).

    Returns ``topk_logits`` ``(N, L, k)`` float16, ``topk_indices`` ``(N, L, k)`` int32,
    ``lse`` ``(N, L)`` float32 and ``labels`` ``(N, L)`` (-100 on padding), ``L`` the longest
    target: ``6·k + 4`` bytes per position instead of ``4·V`` for full logits. A student then
    trains without running the teacher.
    """
    T = check_temperature(T)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}.")
    parts: dict[str, list[torch.Tensor]] = {"topk_logits": [], "topk_indices": [], "lse": [],
                                            "labels": []}
    for start in range(0, len(features), batch_size):
        logits, labels = teacher_forced_logits(
            teacher, features[start : start + batch_size], batch_size=batch_size
        )  # (b, l, V), (b, l)
        values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)  # (b, l, k)
        pad = max(len(f["labels"]) for f in features) - labels.shape[1]
        parts["topk_logits"].append(F.pad(values.half(), (0, 0, 0, pad)))
        parts["topk_indices"].append(F.pad(indices.int(), (0, 0, 0, pad)))
        parts["lse"].append(F.pad(torch.logsumexp(logits / T, dim=-1), (0, pad)))
        parts["labels"].append(F.pad(labels, (0, pad), value=-100))
    return {name: torch.cat(tensors) for name, tensors in parts.items()} | {"T": torch.tensor(T)}


def attach_teacher_topk(
    features: Sequence[dict[str, list[int]]], cache: dict[str, torch.Tensor]
) -> list[dict]:
    """``features`` with each example's part of a :func:`teacher_topk` cache attached
    (``topk_logits``, ``topk_indices`` ``(l, k)``, ``lse`` ``(l,)``, ``l`` its target length),
    for :class:`kdkit.data.batching.Seq2SeqCollator` and ``Seq2SeqObjective(cached=True)``."""
    if len(features) != cache["labels"].shape[0]:
        raise ValueError(
            f"the cache holds {cache['labels'].shape[0]} examples but features has "
            f"{len(features)}: build it with teacher_topk on these same features."
        )
    return [
        {**f, **{key: cache[key][i, : len(f["labels"])] for key in ("topk_logits",
                                                                    "topk_indices", "lse")}}
        for i, f in enumerate(features)
    ]


@torch.no_grad()
def sequence_log_probs(
    model: nn.Module, features: Sequence[dict[str, list[int]]], *, batch_size: int = 128
) -> torch.Tensor:
    """``log p(y | x)`` of each example's whole target under teacher forcing: the sum over its
    real positions of ``log softmax(z_t)[y_t]`` (end-of-sequence included). Comparing two
    targets of one source (a word's two pronunciations) shows how a model splits its
    probability between them. Returns ``(N,)`` float32."""
    logits, labels = teacher_forced_logits(model, features, batch_size=batch_size)  # (N, L, V)
    log_p = torch.log_softmax(logits, dim=-1)
    picked = log_p.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (N, L)
    return (picked * (labels != -100)).sum(-1)


def step_distributions(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    source: str,
    target: str,
    *,
    T: float = 1.0,
    max_source_len: int = 512,
    max_target_len: int = 128,
) -> tuple[torch.Tensor, list[str]]:
    """The decoder's distribution ``softmax(z / T)`` at each step of one reference target.

    Returns ``probs`` ``(L, V)`` (row ``t`` is the distribution the model puts on the token
    at position ``t`` after reading the reference's first ``t`` tokens) and the ``L`` target
    tokens as strings (end-of-sequence included).
    """
    T = check_temperature(T)
    features = encode_pairs(tokenizer, [(source, target)], max_source_len, max_target_len)
    logits, _ = teacher_forced_logits(model, features)  # (1, L, V)
    tokens = tokenizer.convert_ids_to_tokens(features[0]["labels"])
    return softened(logits[0], T), tokens


def token_fidelity(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    T: float = 1.0,
) -> dict[str, float]:
    """How closely a student's per-step distributions follow the teacher's, over real target
    tokens under teacher forcing (:func:`teacher_forced_logits` of both models).

    ``kl``: mean ``KL(p_tea ‖ p_stu)`` per token at temperature ``T`` (nats, no T² factor);
    ``agreement``: percentage of tokens where both models' most likely token is the same;
    ``student_accuracy``/``teacher_accuracy``: percentage of tokens whose reference token is
    the model's most likely one.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"logit shapes differ: student {tuple(student_logits.shape)}, teacher "
            f"{tuple(teacher_logits.shape)}; compute both with the same features."
        )
    mask = mask_from_labels(labels)  # (N, L)
    if not mask.any():
        raise ValueError("labels hold no real token (all are -100).")
    kl = kd_kl_loss(student_logits, teacher_logits, T=T, mask=mask, reduction="sum")
    n = int(mask.sum())
    s_top, t_top = student_logits.argmax(-1), teacher_logits.argmax(-1)  # (N, L)
    return {
        "kl": float(kl) / (T * T) / n,  # kd_kl_loss carries the T² gradient scale
        "agreement": 100.0 * agreement(student_logits[mask], teacher_logits[mask]),
        "student_accuracy": 100.0 * float((s_top == labels)[mask].double().mean()),
        "teacher_accuracy": 100.0 * float((t_top == labels)[mask].double().mean()),
    }


# --------------------------------------------------------------------------- evaluation


def evaluate_seq2seq(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[TextPair],
    *,
    metric: str = "exact_match",
    also: Sequence[str] = (),
    batch_size: int = 64,
    max_source_len: int = 512,
    max_new_tokens: int = 32,
    num_beams: int = 1,
    bf16: bool = False,
    latency_examples: int = 8,
    num_samples: int = 3,
) -> dict:
    """Score ``model`` on ``pairs`` and measure its size and speed.

    Returns ``params``, ``metric`` (its name), ``score`` (percent), ``scores`` (``metric`` and
    each of ``also``, by name: e.g. G2P's phoneme error rate), ``throughput`` (examples per
    second decoding ``batch_size`` at a time), ``latency_ms`` (median time to decode one
    example alone, over ``latency_examples``), ``num_examples`` and a few ``samples``.
    """
    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    kwargs = dict(
        max_source_len=max_source_len, max_new_tokens=max_new_tokens, num_beams=num_beams,
        bf16=bf16,
    )
    start = time.perf_counter()
    predictions = generate_texts(model, tokenizer, sources, batch_size=batch_size, **kwargs)
    seconds = time.perf_counter() - start
    latencies = []
    for source in sources[:latency_examples]:  # one example, in this process alone
        tick = time.perf_counter()
        _generate_local(model, tokenizer, [source], batch_size=1, **kwargs)
        latencies.append(1000.0 * (time.perf_counter() - tick))
    return {
        "params": count_parameters(model),
        "metric": metric,
        "score": compute_metric(metric, predictions, references),
        "scores": {m: compute_metric(m, predictions, references) for m in (metric, *also)},
        "throughput": len(sources) / max(seconds, 1e-9),
        "latency_ms": statistics.median(latencies) if latencies else None,
        "num_examples": len(sources),
        "samples": [
            {"source": s, "reference": r, "prediction": p}
            for s, r, p in list(zip(sources, references, predictions, strict=True))[:num_samples]
        ],
    }
