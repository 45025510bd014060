"""Distilling an encoder–decoder (T5): token-level and sequence-level KD, notebook 06.

- Token-level KD (Hinton et al. 2015 applied per decoder step): under teacher forcing both
  models read the same decoder inputs (the reference target shifted right), so every target
  position has a teacher distribution ``p_T`` and a student distribution ``p_S`` over the same
  ``V`` token ids; the loss is ``(1 − alpha)·CE + alpha·T²·KL(p_T ‖ p_S)`` over real target
  tokens (:func:`token_kd_loss`), optionally plus an encoder hidden-state MSE.
- Sequence-level KD (Kim & Rush 2016): the teacher *generates* an output for every training
  input (greedy or beam search) and the student is trained with plain cross-entropy on those
  outputs instead of the references (:func:`teacher_outputs`).
- A CE-only student with the same initialisation and budget is the baseline.

:func:`train_seq2seq` is the explicit loop (AdamW, warm-up + decay, clipping, accumulation by
token count, bf16 autocast on GPU, atomic checkpoints, exact resume); :func:`distill_t5` is the
whole pipeline behind ``kdkit distill-t5``, :func:`distill_t5_jobs` runs several of them (seeds,
variants) side by side. :func:`teacher_forced_logits`, :func:`step_distributions` and
:func:`token_fidelity` look inside: the decoder's per-step distributions and how closely a
student's follow the teacher's.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import trange

from kdkit.config import T5DistillConfig, TrainConfig
from kdkit.data import (
    LengthGroupedBatchSampler,
    Seq2SeqCollator,
    Seq2SeqSplits,
    TextPair,
    encode_pairs,
    load_text_pairs,
    make_text_tasks,
    task_vocabulary_texts,
)
from kdkit.distributions import softened
from kdkit.features import hidden_state_mse
from kdkit.losses import distillation_loss, hard_cross_entropy, kd_kl_loss, mask_from_labels
from kdkit.metrics import agreement
from kdkit.models import (
    build_t5,
    build_word_tokenizer,
    check_t5_vocab,
    load_t5,
    save_t5,
    t5_student_from_teacher,
    t5_vocab_size,
)
from kdkit.seed import set_seed
from kdkit.train import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    warmup_decay_scheduler,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "token_kd_loss",
    "Seq2SeqObjective",
    "hidden_projection",
    "backward_accumulated",
    "train_seq2seq",
    "generate_texts",
    "teacher_outputs",
    "exact_match",
    "rouge_scores",
    "bleu_score",
    "compute_metric",
    "count_params",
    "evaluate_seq2seq",
    "distill_t5",
    "distill_t5_jobs",
    "teacher_forced_logits",
    "step_distributions",
    "token_fidelity",
    "MODEL_NAMES",
]

MODEL_NAMES = ("teacher", "student_ce", "student_kd", "student_seqkd")
CHECKPOINT_FILE = "checkpoint.pt"


# --------------------------------------------------------------------------- losses


def token_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    T: float = 1.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Token-level KD of a seq2seq model under teacher forcing:
    ``(1 − alpha)·CE(labels) + alpha·T²·KL(p_T ‖ p_S)`` per target token.

    Shapes: logits ``(B, L, V)`` from the same decoder inputs, labels ``(B, L)`` with padding
    set to ``ignore_index``: padded positions count in neither term. ``"mean"`` is
    :func:`kdkit.losses.distillation_loss` (a mean over real tokens); ``"sum"`` is the sum over
    real tokens, which :func:`train_seq2seq` divides by the token count of a whole accumulated
    step. Hinton et al. (2015); Kim & Rush (2016), "word-level knowledge distillation".
    """
    if reduction == "mean":
        return distillation_loss(
            student_logits, teacher_logits, labels, T=T, alpha=alpha, ignore_index=ignore_index
        )
    if reduction != "sum":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    mask = mask_from_labels(labels, ignore_index)  # (B, L)
    hard = hard_cross_entropy(student_logits, labels, ignore_index=ignore_index, reduction="sum")
    soft = kd_kl_loss(student_logits, teacher_logits, T=T, mask=mask, reduction="sum")
    return (1.0 - alpha) * hard + alpha * soft


@dataclass
class Seq2SeqObjective:
    """What a training step minimises. No teacher: cross-entropy on the batch's labels.
    With a teacher: :func:`token_kd_loss` with ``T`` and ``alpha``, plus ``hidden_weight`` ×
    the MSE between the encoders' last hidden states (FitNets-style; ``projection`` maps the
    student's width to the teacher's and is trained with the student).

    Called as ``objective(model, batch)``, it returns *sums*: ``"target"`` over real target
    tokens and ``"source"`` over real source tokens (the hidden-state term), so the loop can
    divide by the token counts of a whole accumulated step; and the unweighted parts
    ``"ce"``, ``"kd"``, ``"hidden"`` (also sums) for the history.
    """

    teacher: nn.Module | None = None
    T: float = 1.0
    alpha: float = 0.5
    hidden_weight: float = 0.0
    projection: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.teacher is None and (self.hidden_weight > 0):
            raise ValueError("hidden_weight > 0 needs a teacher.")
        if self.hidden_weight > 0 and self.projection is None:
            raise ValueError(
                "hidden_weight > 0 needs projection=nn.Linear(student d_model, teacher d_model) "
                "(trained with the student; identity-initialised when the widths match)."
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
        out = model(**inputs)
        student_logits = out.logits.float()  # (B, L_tgt, V); fp32 for the losses under bf16
        ce = hard_cross_entropy(student_logits, labels, reduction="sum")
        zero = ce.new_zeros(())
        parts = {"ce": ce, "kd": zero, "hidden": zero}
        if self.teacher is None:
            return {**parts, "target": ce, "source": zero}
        with torch.no_grad():
            ref = self.teacher(**inputs)
        mask = mask_from_labels(labels)  # (B, L_tgt)
        parts["kd"] = kd_kl_loss(
            student_logits, ref.logits.float(), T=self.T, mask=mask, reduction="sum"
        )
        target = (1.0 - self.alpha) * ce + self.alpha * parts["kd"]
        source = zero
        if self.hidden_weight > 0:
            h_s = self.projection(out.encoder_last_hidden_state.float())  # (B, L_src, D_T)
            h_t = ref.encoder_last_hidden_state.float()  # (B, L_src, D_T)
            parts["hidden"] = hidden_state_mse(
                h_s, h_t, batch["attention_mask"].bool(), reduction="sum"
            )
            source = self.hidden_weight * parts["hidden"]
        return {**parts, "target": target, "source": source}


def hidden_projection(student: nn.Module, teacher: nn.Module) -> nn.Linear:
    """``nn.Linear(D_S, D_T)`` for the hidden-state term, initialised to the identity (no
    random numbers drawn, so seeded runs stay aligned)."""
    d_s, d_t = student.config.d_model, teacher.config.d_model
    linear = nn.Linear(d_s, d_t)
    with torch.no_grad():
        nn.init.eye_(linear.weight)
        nn.init.zeros_(linear.bias)
    return linear


# --------------------------------------------------------------------------- training loop


def _autocast(device: torch.device, bf16: bool):
    # bf16 keeps fp32's exponent range; fp16 overflows in T5's feed-forward activations.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def backward_accumulated(
    model: nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    objective: Seq2SeqObjective,
    *,
    bf16: bool = False,
) -> dict[str, float]:
    """Backpropagate one optimiser step made of several micro-batches (gradient accumulation).

    Each micro-batch's *summed* loss is divided by the token count of the whole step (target
    tokens for CE/KD, source tokens for the hidden-state term), so the accumulated gradient
    equals that of one batch holding every example, however the tokens fall into
    micro-batches; dividing each micro-batch's mean by the number of micro-batches would weight
    a token in a short micro-batch more. Returns the step's ``"loss"``, ``"ce"``, ``"kd"``,
    ``"hidden"`` per token.
    """
    device = next(model.parameters()).device
    n_target = max(1, sum(int((b["labels"] != -100).sum()) for b in micro_batches))
    n_source = max(1, sum(int(b["attention_mask"].sum()) for b in micro_batches))
    sums = dict.fromkeys(("loss", "ce", "kd", "hidden"), 0.0)
    for batch in micro_batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device, bf16):
            parts = objective(model, batch)
        loss = parts["target"] / n_target + parts["source"] / n_source
        loss.backward()
        sums["loss"] += loss.item()
        sums["ce"] += parts["ce"].item() / n_target
        sums["kd"] += parts["kd"].item() / n_target
        sums["hidden"] += parts["hidden"].item() / n_source
    return sums


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
    progress: bool = True,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a seq2seq model for ``config.max_steps`` optimiser steps; return its history.

    ``features``: :func:`kdkit.data.encode_pairs` output. ``objective``: cross-entropy when
    None, else a :class:`Seq2SeqObjective` (its teacher stays in ``eval()``, no gradients).
    Each optimiser step accumulates ``config.grad_accum_steps`` micro-batches and divides the
    summed loss by the step's total number of target tokens, so an accumulated step has
    exactly the loss (and gradient) of one batch holding all its examples. AdamW, warm-up then
    decay (:func:`kdkit.train.warmup_decay_factor`), global-norm clipping, bf16 autocast on
    CUDA when ``config.bf16``. A fresh run seeds torch with ``config.seed`` (dropout, batch
    order). With ``checkpoint_dir``, every ``config.checkpoint_every`` steps an atomic
    checkpoint holds model, optimiser, scheduler, RNG states and data position;
    ``resume=True`` continues from it and ends with the same weights as an uninterrupted run.
    ``stop_after`` ends the run early after that many steps (an interruption, for tests).

    History: per optimiser step ``"step"``, ``"loss"``, ``"ce"``, ``"kd"``, ``"hidden"`` (each
    per token, unweighted) and ``"lr"``.
    """
    objective = objective or Seq2SeqObjective()
    if len(features) == 0:
        raise ValueError("features is empty: there is nothing to train on.")
    device = next(model.parameters()).device
    collator = collator or Seq2SeqCollator(pad_token_id=model.config.pad_token_id)
    if objective.teacher is not None:
        objective.teacher.to(device).eval()
    projection = objective.projection.to(device) if objective.projection is not None else None
    params = list(model.parameters()) + (list(projection.parameters()) if projection else [])
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = warmup_decay_scheduler(
        opt,
        warmup_steps=config.warmup_steps,
        total_steps=config.max_steps,
        schedule=config.schedule,
    )
    lengths = [len(f["input_ids"]) + len(f["labels"]) for f in features]
    sampler = LengthGroupedBatchSampler(
        lengths, config.batch_size, seed=config.seed, group_by_length=config.group_by_length
    )
    keys = ("loss", "ce", "kd", "hidden")
    history: dict[str, list[float]] = {"step": [], **{k: [] for k in keys}, "lr": []}
    step, epoch, position = 0, 0, 0
    path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if resume and path is not None and path.exists():
        state = load_checkpoint(path)  # on the CPU: RNG states must stay there
        if state["config"] != asdict(config):
            raise ValueError(
                f"the checkpoint in {path.parent} was written with a different TrainConfig "
                f"({state['config']}); resume with the same config or start a fresh run "
                f"(resume=False, or another checkpoint directory)."
            )
        model.load_state_dict(state["model"])
        if projection is not None:
            projection.load_state_dict(state["projection"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        history = state["history"]
    else:
        torch.manual_seed(config.seed)
    batches = sampler.batches(epoch)

    def next_indices() -> list[int]:
        nonlocal epoch, position, batches
        if position == len(batches):  # epoch over: the next one has a new order
            epoch, position = epoch + 1, 0
            batches = sampler.batches(epoch)
        position += 1
        return batches[position - 1]

    model.train()
    bar = trange(
        step, config.max_steps, initial=step, total=config.max_steps, desc=desc,
        disable=not progress,
    )  # fmt: skip
    for step in bar:
        micro = [
            collator([features[i] for i in next_indices()]) for _ in range(config.grad_accum_steps)
        ]
        opt.zero_grad(set_to_none=True)
        sums = backward_accumulated(model, micro, objective, bf16=config.bf16)
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        history["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        history["step"].append(step + 1)
        for k in keys:
            history[k].append(sums[k])
        bar.set_postfix(loss=f"{sums['loss']:.3f}", refresh=False)
        done = step + 1
        if path is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
            state = {
                "step": done,
                "epoch": epoch,
                "position": position,
                "model": model.state_dict(),
                "projection": projection.state_dict() if projection is not None else None,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng_state(),
                "history": history,
                "config": asdict(config),
            }
            save_checkpoint(state, path)
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
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
    special tokens removed.
    """
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
    return list(zip(sources, generate_texts(teacher, tokenizer, sources, **generate_kwargs),
                    strict=True))  # fmt: skip


@torch.no_grad()
def teacher_forced_logits(
    model: nn.Module,
    features: Sequence[dict[str, list[int]]],
    *,
    batch_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's logits at every target position when it reads the reference (teacher
    forcing), for :func:`kdkit.data.encode_pairs` features.

    Returns ``logits`` ``(N, L, V)`` (fp32, on the CPU) and ``labels`` ``(N, L)`` with -100
    on padding, ``L`` the longest target. Two models given the same features see the same
    decoder inputs, so their distributions at a position are directly comparable. The result
    holds ``N·L·V`` floats: with T5's 32,128-token vocabulary, pass a few hundred examples.
    """
    if len(features) == 0:
        raise ValueError("features is empty: encode some pairs with kdkit.data.encode_pairs.")
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
    if not T > 0:
        raise ValueError(f"T must be > 0, got {T}.")
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

    ``kl``: mean ``KL(p_T ‖ p_S)`` per token at temperature ``T`` (nats, no T² factor);
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


# --------------------------------------------------------------------------- metrics


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to their reference (surrounding whitespace ignored)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    if not references:
        return 0.0
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 in percent (Lin 2004), with the ``rouge-score`` package (stemming on,
    as in the summarisation literature)."""
    from rouge_score import rouge_scorer  # lazily: only summarisation needs it

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for p, r in zip(predictions, references, strict=True):
        scores = scorer.score(r, p)
        for k in kinds:
            totals[k] += scores[k].fmeasure
    n = max(len(references), 1)
    return {k: 100.0 * v / n for k, v in totals.items()}


def bleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (Papineni et al. 2002) with ``sacrebleu``'s standard tokenisation, 0–100."""
    import sacrebleu  # lazily: only translation-like tasks need it

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def compute_metric(name: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """One score in percent: ``"exact_match"``, ``"rougeL"`` or ``"bleu"``."""
    if name == "exact_match":
        return exact_match(predictions, references)
    if name in ("rouge1", "rouge2", "rougeL"):
        return rouge_scores(predictions, references)[name]
    if name == "bleu":
        return bleu_score(predictions, references)
    raise ValueError(f"unknown metric {name!r}; use exact_match, rouge1, rouge2, rougeL or bleu.")


def count_params(model: nn.Module) -> int:
    """All parameters, tied ones counted once (T5 ties its input and output embeddings)."""
    return sum(p.numel() for p in model.parameters())


def evaluate_seq2seq(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[TextPair],
    *,
    metric: str = "exact_match",
    batch_size: int = 64,
    max_source_len: int = 512,
    max_new_tokens: int = 32,
    num_beams: int = 1,
    bf16: bool = False,
    latency_examples: int = 8,
    num_samples: int = 3,
) -> dict:
    """Score ``model`` on ``pairs`` and measure its size and speed.

    Returns ``params``, ``metric`` (its name), ``score`` (percent), ``throughput`` (examples per
    second decoding ``batch_size`` at a time), ``latency_ms`` (median time to decode one
    example alone, over ``latency_examples``), ``num_examples`` and a few ``samples``.
    """
    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    kwargs = dict(max_source_len=max_source_len, max_new_tokens=max_new_tokens,
                  num_beams=num_beams, bf16=bf16)  # fmt: skip
    start = time.perf_counter()
    predictions = generate_texts(model, tokenizer, sources, batch_size=batch_size, **kwargs)
    seconds = time.perf_counter() - start
    latencies = []
    for source in sources[:latency_examples]:
        tick = time.perf_counter()
        generate_texts(model, tokenizer, [source], batch_size=1, **kwargs)
        latencies.append(1000.0 * (time.perf_counter() - tick))
    return {
        "params": count_params(model),
        "metric": metric,
        "score": compute_metric(metric, predictions, references),
        "throughput": len(sources) / max(seconds, 1e-9),
        "latency_ms": statistics.median(latencies) if latencies else None,
        "num_examples": len(sources),
        "samples": [
            {"source": s, "reference": r, "prediction": p}
            for s, r, p in list(zip(sources, references, predictions, strict=True))[:num_samples]
        ],
    }


# --------------------------------------------------------------------------- the pipeline


def _write_json(obj: object, path: Path) -> None:
    """JSON written atomically (temporary file, then ``os.replace``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device='cpu'.")
    return torch.device(name)


def _load_splits(config: T5DistillConfig) -> Seq2SeqSplits:
    if config.dataset == "synthetic":
        return make_text_tasks(
            config.tasks, config.num_train, config.num_val, config.num_test, seed=config.seed
        )
    return load_text_pairs(
        config.dataset, num_train=config.num_train, num_val=config.num_val,
        num_test=config.num_test,
    )  # fmt: skip


def distill_t5(
    config: T5DistillConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """The whole T5 distillation experiment; writes ``out_dir/metrics.json`` and returns it.

    1. Data: the synthetic tasks, or a hub dataset (:func:`kdkit.data.load_text_pairs`).
    2. Teacher: loaded (``config.teacher``: name or directory) or built from
       ``config.teacher_size`` with a word-level tokenizer; trained for
       ``config.teacher_train.max_steps`` (0 = used as loaded); saved to ``out_dir/teacher``.
    3. Students from one initialisation (pretrained, built, or every other teacher block), each
       trained with ``config.student_train`` (the same budget): ``student_ce`` (cross-entropy
       on the references), ``student_kd`` (token-level KD), ``student_seqkd`` (CE on the
       teacher's outputs, when ``config.seqkd``); saved to ``out_dir/<name>``. With
       ``config.num_labelled`` the students have references for only the first N training
       pairs: the CE student trains on those alone, the KD students also on the other training
       inputs, with the teacher's outputs as targets (a transfer set, Hinton et al. 2015 §3).
    4. Every model scored on the test split: ``metrics.json`` maps each name to
       :func:`evaluate_seq2seq`'s dict plus ``train_seconds``.

    Checkpoints go to ``out_dir/checkpoints/<name>``; ``resume=True`` skips finished models and
    continues interrupted ones exactly. ``history.json`` holds the training curves.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    bf16 = config.student_train.bf16 and device.type == "cuda"
    # One seed moves the whole experiment: data, initialisation, batch order and dropout.
    teacher_train = replace(config.teacher_train, seed=config.teacher_train.seed + config.seed)
    student_train = replace(config.student_train, seed=config.student_train.seed + config.seed)
    previous = out / "config.json"
    if resume and previous.exists() and json.loads(previous.read_text()) != config.to_dict():
        raise ValueError(
            f"{out} holds a run with a different config ({previous}); resume it with the same "
            f"preset and flags, or choose another --out directory."
        )
    _write_json(config.to_dict(), previous)
    set_seed(config.seed)
    histories: dict[str, dict] = {}
    if resume and (out / "history.json").exists():
        histories = json.loads((out / "history.json").read_text())
    seconds: dict[str, float] = {}

    log(f"data: {config.dataset}")
    splits = _load_splits(config)

    # ---- teacher
    teacher_dir = out / "teacher"
    if resume and "teacher" in histories and teacher_dir.exists():
        teacher, tokenizer = load_t5(teacher_dir)
        log(f"teacher: loaded from {teacher_dir}")
    else:
        if config.teacher is not None:
            teacher, tokenizer = load_t5(config.teacher)
        else:
            texts = [text for pair in splits.train for text in pair]
            if config.dataset == "synthetic":  # every word the tasks can produce: no <unk>
                texts += task_vocabulary_texts(config.tasks)
            tokenizer = build_word_tokenizer(texts)
            torch.manual_seed(config.seed)
            teacher = build_t5(
                len(tokenizer), **asdict(config.teacher_size),
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        teacher.to(device)
        tick = time.perf_counter()
        history: dict = {}
        if config.teacher_train.max_steps > 0:
            features = encode_pairs(
                tokenizer, splits.train, config.max_source_len, config.max_target_len
            )
            history = train_seq2seq(
                teacher, features, teacher_train,
                checkpoint_dir=out / "checkpoints" / "teacher", resume=resume,
                progress=progress, desc="teacher",
            )  # fmt: skip
        seconds["teacher"] = time.perf_counter() - tick
        save_t5(teacher, tokenizer, teacher_dir)
        histories["teacher"] = {**history, "train_seconds": seconds["teacher"]}
        _write_json(histories, out / "history.json")
    teacher.to(device).eval()

    # ---- one student initialisation for every student
    torch.manual_seed(config.seed + 1)
    if config.student is not None:
        student_init, _ = load_t5(config.student, with_tokenizer=False)
    elif config.student_from_teacher:
        student_init = t5_student_from_teacher(
            teacher, config.student_size.num_layers, config.student_size.num_decoder_layers
        )
    else:
        student_init = build_t5(
            t5_vocab_size(teacher), **asdict(config.student_size),
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
    check_t5_vocab(teacher, student_init, tokenizer)
    student_init.to(device)

    gen_kwargs = dict(
        batch_size=config.eval_batch_size, max_source_len=config.max_source_len,
        max_new_tokens=config.max_new_tokens, bf16=bf16,
    )  # fmt: skip
    # The students' labelled pairs; the rest of the training inputs are unlabelled for them.
    n_labelled = len(splits.train) if config.num_labelled is None else config.num_labelled
    labelled = splits.train[:n_labelled]
    need_outputs = config.seqkd or n_labelled < len(splits.train)
    outputs: list[TextPair] = []
    if need_outputs:  # the teacher's outputs on every training input (Kim & Rush 2016)
        cache = out / "teacher_outputs_train.json"
        if resume and cache.exists():
            outputs = [tuple(pair) for pair in json.loads(cache.read_text())]
        else:
            log("teacher: generating its outputs on the training inputs")
            tick = time.perf_counter()
            outputs = teacher_outputs(
                teacher, tokenizer, splits.train, num_beams=config.seqkd_num_beams, **gen_kwargs
            )
            histories["teacher"]["outputs_seconds"] = time.perf_counter() - tick
            _write_json(outputs, cache)
            _write_json(histories, out / "history.json")

    def encode(pairs: Sequence[TextPair]) -> list[dict[str, list[int]]]:
        return encode_pairs(tokenizer, pairs, config.max_source_len, config.max_target_len)

    kd = Seq2SeqObjective(teacher=teacher, T=config.T, alpha=config.alpha)
    if config.hidden_weight > 0:
        kd = Seq2SeqObjective(
            teacher=teacher, T=config.T, alpha=config.alpha, hidden_weight=config.hidden_weight,
            projection=hidden_projection(student_init, teacher),
        )  # fmt: skip
    runs: list[tuple[str, Seq2SeqObjective, list]] = [
        # CE: only what the student could learn without a teacher
        ("student_ce", Seq2SeqObjective(), encode(labelled)),
        # token-level KD: references where labelled, the teacher's outputs elsewhere, as decoder
        # inputs; the teacher's distribution at every position
        ("student_kd", kd, encode(labelled + outputs[n_labelled:])),
    ]
    if config.seqkd:  # sequence-level KD: the teacher's outputs everywhere, plain CE
        runs.append(("student_seqkd", Seq2SeqObjective(), encode(outputs)))

    students: dict[str, nn.Module] = {}
    for name, objective, features in runs:
        directory = out / name
        if resume and name in histories and directory.exists():
            students[name], _ = load_t5(directory, with_tokenizer=False)
            students[name].to(device)
            log(f"{name}: loaded from {directory}")
            continue
        model = copy.deepcopy(student_init)
        tick = time.perf_counter()
        history = train_seq2seq(
            model, features, student_train, objective=objective,
            checkpoint_dir=out / "checkpoints" / name, resume=resume, progress=progress,
            desc=name,
        )  # fmt: skip
        seconds[name] = time.perf_counter() - tick
        save_t5(model, tokenizer, directory)
        students[name] = model
        histories[name] = {**history, "train_seconds": seconds[name]}
        _write_json(histories, out / "history.json")

    # ---- evaluation on the test split
    metrics: dict[str, dict] = {}
    for name, model in (("teacher", teacher), *students.items()):
        result = evaluate_seq2seq(
            model, tokenizer, splits.test, metric=config.metric,
            num_beams=config.num_beams, **gen_kwargs,
        )  # fmt: skip
        result["train_seconds"] = histories.get(name, {}).get("train_seconds")
        metrics[name] = result
        log(f"{name:14s} {result['params']:>10,d} params  {config.metric} {result['score']:6.2f}")
    _write_json(metrics, out / "metrics.json")
    return metrics


def _distill_t5_job(
    config: T5DistillConfig, out_dir: str, resume: bool, threads: int | None
) -> dict[str, dict]:
    """One :func:`distill_t5` run in a worker process: quiet, its log in ``out_dir/log.txt``."""
    import contextlib
    import sys

    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "a") as f, contextlib.redirect_stdout(f), \
            contextlib.redirect_stderr(f):  # fmt: skip
        return distill_t5(config, out, resume=resume, progress=False,
                          log=lambda message: print(message, file=sys.stderr))  # fmt: skip


def distill_t5_jobs(
    jobs: dict[str, T5DistillConfig],
    out_dir: str | Path,
    *,
    workers: int = 1,
    threads: int | None = 1,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, dict[str, dict]]:
    """Several :func:`distill_t5` runs (seeds, variants), ``workers`` at a time.

    ``jobs`` maps a run's name to its config; run ``name`` writes ``out_dir/name`` (its
    ``metrics.json``, models, checkpoints and ``log.txt``). Returns ``{name: metrics}`` in the
    order of ``jobs``. With ``workers > 1`` each run is a separate process (``spawn``) with
    ``threads`` torch threads: on a 2-core CPU, two one-thread runs side by side take about
    half the time of running them one after the other, and give the same numbers (each run
    seeds itself). ``workers=1`` runs them here, one by one. In a script (not a notebook),
    call it under ``if __name__ == "__main__":``: spawned workers re-import the script.
    """
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm

    if not jobs:
        raise ValueError("jobs is empty: give at least one {name: T5DistillConfig}.")
    for name, config in jobs.items():
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"job name {name!r} must be a plain directory name (no '/').")
        if not isinstance(config, T5DistillConfig):
            raise ValueError(f"job {name!r} must map to a T5DistillConfig, got {type(config)}.")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}.")
    out = Path(out_dir)
    results: dict[str, dict[str, dict]] = {}
    bar = tqdm(total=len(jobs), desc="runs", disable=not progress)
    if workers == 1:
        for name, config in jobs.items():
            results[name] = _distill_t5_job(config, str(out / name), resume, threads)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")  # fork + torch's thread pools can hang
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(_distill_t5_job, config, str(out / name), resume, threads): name
                for name, config in jobs.items()
            }
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    return {name: results[name] for name in jobs}
