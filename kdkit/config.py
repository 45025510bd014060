"""Dataclass configs for the T5 distillation pipeline, with validation and named presets.

Four presets (:func:`get_preset`): ``smoke`` runs every code path in seconds (the tests),
``dates`` distils a small T5 on synthetic date normalisation in about a minute (a warm-up),
``cpu`` distils a small T5 on real data — grapheme to phoneme on the CMU Pronouncing
Dictionary — on a 2-core laptop (notebook 06), ``gpu`` distils the pretrained t5-base into
t5-small on XSum in bf16.
Change a field with :func:`dataclasses.replace`; every config checks its ranges when built.

Of kdkit it imports only the scalar checks of :mod:`kdkit.losses`: one rule for a temperature
and for a number in [0, 1], wherever it is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from kdkit.losses import check_temperature, check_unit_interval

__all__ = [
    "PRESETS",
    "METRICS",
    "ALTERNATIVES",
    "SCHEDULES",
    "SYNTHETIC_TASKS",
    "ARMS",
    "OFFLINE_DATASETS",
    "T5Size",
    "T5_SIZES",
    "T5_VOCAB_SIZE",
    "TrainConfig",
    "T5DistillConfig",
    "get_preset",
]

PRESETS = ("smoke", "dates", "cpu", "gpu")
SCHEDULES = ("linear", "cosine", "constant")
# kdkit.metrics.compute_metric; phoneme_error_rate is the one where lower is better
METRICS = ("exact_match", "word_accuracy", "phoneme_error_rate", "rouge1", "rouge2", "rougeL",
           "bleu")
ALTERNATIVES = " | "  # joins a reference's acceptable outputs (a G2P word's pronunciations)
SYNTHETIC_TASKS = ("date", "number", "time")  # kdkit.data.text_tasks generates these
# Datasets that need no download: generated tasks, and the CMU dictionary's G2P (kdkit.data.g2p)
OFFLINE_DATASETS = ("synthetic", "cmudict")
# The student arms, as Kim & Rush (2016) name them; metrics.json calls each "student_<arm>".
# All start from one initialisation and get the same budget; "labelled" = the num_labelled
# training pairs that have references, "all inputs" = every training input (the transfer set).
ARMS = (
    "ce",  # cross-entropy on the labelled pairs' references
    "word_kd",  # word-level KD on the labelled pairs: teacher-forced on the references, the
    # alpha-mix of CE and T²·KL to the teacher's per-step distributions
    "seq_kd",  # sequence-level KD: CE on the teacher's (beam) outputs for all inputs
    "seq_word_kd",  # both: the teacher's outputs as targets and its distributions along them
    "on_policy",  # GKD (Agarwal et al. 2024): on a fraction of the steps the student samples
    # its own targets and the teacher grades them with JSD(beta); otherwise JSD(beta) along the
    # teacher's outputs for all inputs
)
FEED_FORWARD = ("relu", "gated-gelu")


def _positive_int(obj: object, *names: str, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")


@dataclass
class T5Size:
    """Shape of a T5 built from scratch: the ``transformers.T5Config`` fields that matter."""

    d_model: int = 128  # width of every hidden state and of the (tied) embeddings
    d_ff: int = 512  # hidden width of each block's feed-forward network
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2  # decoder blocks
    num_heads: int = 4  # attention heads per layer
    d_kv: int = 32  # width of each head's queries/keys/values (T5 keeps it separate from d_model)
    dropout_rate: float = 0.0  # dropout everywhere in the model; 0 for tiny models on tiny tasks
    feed_forward_proj: str = "relu"  # "relu" (original T5) or "gated-gelu" (T5 v1.1)

    def __post_init__(self) -> None:
        _positive_int(self, "d_model", "d_ff", "num_layers", "num_decoder_layers", "num_heads")
        _positive_int(self, "d_kv")
        check_unit_interval("dropout_rate", self.dropout_rate, include_one=False)
        if self.feed_forward_proj not in FEED_FORWARD:
            raise ValueError(
                f"feed_forward_proj must be one of {FEED_FORWARD}, got {self.feed_forward_proj!r}."
            )


T5_VOCAB_SIZE = 32_128  # T5's logits per position (its tokenizer has 32,100 entries)
# T5's published shapes (Raffel et al. 2020, §3.1 and Appendix), built with random weights:
# real-size runs with no download (benchmarks, GPU checks).
T5_SIZES = {
    "t5-small": T5Size(d_model=512, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
                       d_kv=64, dropout_rate=0.1),
    "t5-base": T5Size(d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12,
                      num_heads=12, d_kv=64, dropout_rate=0.1),
}


@dataclass
class TrainConfig:
    """Optimisation settings of one training run (the teacher's or a student's)."""

    max_steps: int = 100  # optimiser steps; 0 = do not train (use a loaded model as it is)
    batch_size: int = 32  # examples per micro-batch
    grad_accum_steps: int = 1  # micro-batches per optimiser step; the loss is per target token
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01  # AdamW's decoupled weight decay
    warmup_steps: int = 0  # linear warm-up from 0 to lr over this many steps
    schedule: str = "linear"  # after warm-up: "linear" or "cosine" decay to 0, or "constant"
    max_grad_norm: float | None = 1.0  # clip the global gradient norm to this; None = no clipping
    bf16: bool = False  # bf16 autocast on CUDA (ignored on CPU); never fp16, T5 overflows in it
    compile: bool = False  # torch.compile the step's forward and loss (slow first steps; GPU)
    group_by_length: bool = True  # batch examples of similar length together: less padding
    checkpoint_every: int = 0  # write a resumable checkpoint every N steps; 0 = never
    eval_every: int = 0  # score the validation split every N steps (a learning curve); 0 = never
    seed: int = 0  # batch order and dropout of this run (distill_t5 adds its own seed)

    def __post_init__(self) -> None:
        _positive_int(self, "max_steps", "warmup_steps", "checkpoint_every", "eval_every",
                      allow_zero=True)
        _positive_int(self, "batch_size", "grad_accum_steps")
        _positive_int(self, "seed", allow_zero=True)
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}.")
        if not isinstance(self.weight_decay, (int, float)) or not 0 <= self.weight_decay < 1:
            raise ValueError(f"weight_decay must be in [0, 1), got {self.weight_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        if self.max_steps and self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed max_steps ({self.max_steps})."
            )
        if self.max_grad_norm is not None and not (
            isinstance(self.max_grad_norm, (int, float))
            and math.isfinite(self.max_grad_norm)
            and self.max_grad_norm > 0
        ):
            raise ValueError(
                f"max_grad_norm must be a number > 0 or None (no clipping), "
                f"got {self.max_grad_norm!r}."
            )
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}.")
        if not isinstance(self.bf16, bool):
            raise ValueError(
                f"bf16 must be True or False, got {self.bf16!r}. (There is no fp16 option: "
                f"T5's activations overflow in fp16; use bf16 on a GPU that supports it.)"
            )


@dataclass
class T5DistillConfig:
    """Everything ``kdkit distill-t5`` needs: data, teacher, students, distillation, evaluation."""

    preset: str = "custom"  # the preset this config came from (recorded in the outputs)
    # --- data
    dataset: str = "synthetic"  # "synthetic" (generated tasks), "cmudict" (G2P, kdkit.data.g2p)
    # or a `datasets` name or local directory, e.g. "EdinburghNLP/xsum"
    tasks: tuple[str, ...] = ("date", "number")  # synthetic tasks (ignored for a hub dataset)
    num_train: int | None = 4000  # training examples; None = a hub split's every example
    num_val: int | None = 200  # validation examples (None as above)
    num_test: int | None = 500  # test examples, the ones every model is scored on (None as above)
    num_labelled: int | None = None  # references the students may use (the first N training
    # pairs); the other training inputs are unlabelled for them and the teacher labels them
    # for the KD students. None = every training pair is labelled. The teacher uses them all.
    max_source_len: int = 32  # input tokens kept (task prefix and end-of-sequence included)
    max_target_len: int = 16  # target tokens kept (end-of-sequence included)
    # --- models
    teacher: str | None = None  # pretrained name or local dir; None = build teacher_size, train it
    student: str | None = None  # pretrained name or local dir; None = build student_size
    teacher_size: T5Size = field(default_factory=T5Size)  # teacher's shape when teacher=None
    student_size: T5Size = field(default_factory=T5Size)  # student's shape when student=None
    student_from_teacher: bool = False  # initialise the student with every other teacher block
    vocab_size: int | None = None  # logits per position of built models; None = the tokenizer's
    # size. T5_VOCAB_SIZE (32,128) gives the published models' output layer (real-size runs)
    # --- training: every student gets student_train, so CE and KD students have the same budget
    teacher_train: TrainConfig = field(default_factory=TrainConfig)  # teacher's training
    student_train: TrainConfig = field(default_factory=TrainConfig)  # every student's training
    # --- distillation
    T: float = 2.0  # temperature of the word-level KD term
    alpha: float = 0.5  # weight of the KD term: (1 - alpha)·CE + alpha·T²·KL
    hidden_weight: float = 0.0  # weight of the encoder hidden-state MSE term (0 = off)
    chunked_loss: bool = False  # KD loss from hidden states in chunks: never the full logits
    teacher_topk: int | None = None  # train the KD student from a cache of the teacher's k
    # largest logits per target position (the teacher is not run while it trains); None = live
    teacher_topk_tail: str = "renormalise"  # the cut-off tail: "renormalise" or "uniform"
    arms: tuple[str, ...] = ARMS  # the students to train (ARMS); () trains the teacher alone
    seqkd_num_beams: int = 1  # beam size of the teacher's outputs on training inputs; 1 = greedy
    teacher_outputs: str | None = None  # a teacher_outputs_train.json of an earlier run with the
    # same teacher and training inputs, reused instead of generating (seeds and variants share
    # one generation pass); None = generate them
    on_policy_fraction: float = 0.5  # on_policy arm: the share of steps the student samples on
    on_policy_beta: float = 0.5  # on_policy arm: JSD(beta) between the models' distributions
    # at T = 1 (GKD); 0 forward KL, 1 reverse KL
    on_policy_start: int = 0  # on_policy arm: the steps before it are a supervised warm start,
    # cross-entropy on the teacher's outputs (sequence-level KD); 0 = on-policy from the start
    sample_temperature: float = 1.0  # on_policy arm: the student's sampling temperature
    # --- evaluation
    metric: str = "exact_match"  # the score reported per model (METRICS), e.g. word_accuracy
    also_metrics: tuple[str, ...] = ()  # more METRICS in metrics.json's "scores"
    num_beams: int = 1  # beam size when evaluating; 1 = greedy
    max_new_tokens: int = 16  # longest generated output
    eval_batch_size: int = 128  # examples per generation batch
    # --- run
    seed: int = 0  # data generation and model initialisation
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"

    def __post_init__(self) -> None:
        self._check_data()
        _positive_int(self, "max_source_len", "max_target_len", "seqkd_num_beams", "num_beams")
        _positive_int(self, "max_new_tokens", "eval_batch_size")
        _positive_int(self, "seed", allow_zero=True)
        if self.vocab_size is not None:
            _positive_int(self, "vocab_size")
        self.arms = tuple(self.arms)
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or len(set(self.arms)) != len(self.arms):
            raise ValueError(
                f"arms must be distinct names from {ARMS}, got {self.arms}."
            )
        for name, cls in (
            ("teacher_size", T5Size),
            ("student_size", T5Size),
            ("teacher_train", TrainConfig),
            ("student_train", TrainConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}.")
        if self.teacher is None and self.teacher_train.max_steps == 0:
            raise ValueError(
                "teacher=None builds a teacher from scratch, so it must be trained: set "
                "teacher_train.max_steps > 0, or give a trained teacher (name or directory)."
            )
        if self.student_train.max_steps == 0:
            raise ValueError("student_train.max_steps must be > 0: the students are trained.")
        check_temperature(self.T)
        check_unit_interval("alpha", self.alpha)
        check_unit_interval("on_policy_fraction", self.on_policy_fraction)
        check_unit_interval("on_policy_beta", self.on_policy_beta)
        _positive_int(self, "on_policy_start", allow_zero=True)
        if "on_policy" in self.arms and self.on_policy_start >= self.student_train.max_steps:
            raise ValueError(
                f"on_policy_start ({self.on_policy_start}) must be below "
                f"student_train.max_steps ({self.student_train.max_steps}): the on_policy arm "
                f"would never sample."
            )
        check_temperature(self.sample_temperature, "sample_temperature")
        if not isinstance(self.hidden_weight, (int, float)) or not self.hidden_weight >= 0:
            raise ValueError(f"hidden_weight must be a number >= 0, got {self.hidden_weight!r}.")
        if self.teacher_topk is not None:
            _positive_int(self, "teacher_topk")
            if self.hidden_weight > 0 or self.chunked_loss:
                raise ValueError(
                    "teacher_topk trains the KD student from logits alone: set hidden_weight=0 "
                    "and chunked_loss=False (the cache holds no hidden states)."
                )
        if self.teacher_topk_tail not in ("renormalise", "uniform"):
            raise ValueError(
                f"teacher_topk_tail must be 'renormalise' or 'uniform', got "
                f"{self.teacher_topk_tail!r}."
            )
        if self.student_from_teacher and self.student is not None:
            raise ValueError(
                "student_from_teacher=True builds the student from the teacher's layers; it "
                "cannot also load a pretrained student. Set student=None or "
                "student_from_teacher=False."
            )
        self.also_metrics = tuple(self.also_metrics)
        for name in (self.metric, *self.also_metrics):
            if name not in METRICS:
                raise ValueError(f"metric must be one of {METRICS}, got {name!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}.")

    def _check_data(self) -> None:
        """The dataset, its task names and split sizes."""
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a non-empty name, got {self.dataset!r}.")
        self.tasks = tuple(self.tasks)
        if self.dataset == "synthetic":
            if not self.tasks:
                raise ValueError("tasks must name at least one synthetic task.")
            unknown = [t for t in self.tasks if t not in SYNTHETIC_TASKS]
            if unknown:
                raise ValueError(
                    f"unknown synthetic task(s) {unknown}; choose from {SYNTHETIC_TASKS}."
                )
            if len(set(self.tasks)) != len(self.tasks):
                raise ValueError(f"tasks has duplicates: {self.tasks}.")
        for name in ("num_train", "num_val", "num_test"):
            value = getattr(self, name)
            if value is None and (self.dataset == "synthetic" or name != "num_train" and
                                  self.dataset == "cmudict"):
                raise ValueError(
                    f"{name}=None (a whole split) applies to a hub dataset, or to cmudict's "
                    f"num_train (every word the other splits leave)."
                )
            if value is not None:
                _positive_int(self, name)
        if self.num_labelled is not None:
            _positive_int(self, "num_labelled")
            if self.num_train is not None and self.num_labelled > self.num_train:
                raise ValueError(
                    f"num_labelled ({self.num_labelled}) cannot exceed num_train "
                    f"({self.num_train}): it is the labelled part of the training set."
                )

    def to_dict(self) -> dict:
        """A JSON-serialisable copy (nested configs as dicts)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (T5Size, TrainConfig)):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _smoke() -> T5DistillConfig:
    tiny = T5Size(d_model=32, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2, d_kv=16)
    return T5DistillConfig(
        preset="smoke",
        tasks=("date", "number", "time"),
        num_train=192,
        num_val=16,
        num_test=24,
        num_labelled=96,
        teacher_size=replace(tiny, dropout_rate=0.1),
        student_size=replace(tiny, num_layers=1, num_decoder_layers=1),
        student_from_teacher=True,
        teacher_train=TrainConfig(
            max_steps=8, batch_size=32, grad_accum_steps=2, warmup_steps=2, lr=3e-3,
            checkpoint_every=4,
        ),
        student_train=TrainConfig(
            max_steps=6, batch_size=32, warmup_steps=1, lr=3e-3, schedule="cosine",
            checkpoint_every=3, eval_every=3,
        ),
        hidden_weight=0.1,
        seqkd_num_beams=2,
        max_new_tokens=12,
        eval_batch_size=64,
    )


def _dates() -> T5DistillConfig:
    # Measured on a shared 2-core machine, one torch thread: the teacher (0.93M parameters)
    # trains at ~0.1 s/step and reaches ~99% exact match on dates; the student (0.12M) at
    # ~0.02 s/step (0.05 with the teacher's forward pass for KD). Warm-up 30% + cosine and no
    # clipping: with clipping at 1.0 the same teacher reached ~85% in 800 steps. The students
    # see 600 references; the KD students also 5,400 inputs the teacher labels (the
    # transfer set), which is where KD gains on a task with one right answer per input.
    teacher_run = TrainConfig(
        max_steps=800, batch_size=64, lr=3e-3, warmup_steps=240, schedule="cosine",
        max_grad_norm=None, weight_decay=0.0, checkpoint_every=200,
    )
    return T5DistillConfig(
        preset="dates",
        tasks=("date",),
        num_train=6000,
        num_val=200,
        num_test=600,
        num_labelled=600,
        teacher_size=T5Size(d_model=128, d_ff=512, num_layers=2, num_decoder_layers=2),
        student_size=T5Size(
            d_model=64, d_ff=256, num_layers=1, num_decoder_layers=1, num_heads=4, d_kv=16
        ),
        teacher_train=teacher_run,
        student_train=replace(teacher_run),
        T=2.0,
        alpha=0.5,
        max_new_tokens=16,
        eval_batch_size=200,
    )


def _cpu() -> T5DistillConfig:
    # Grapheme to phoneme on the CMU dictionary (kdkit.data.g2p), one torch thread, 2 cores.
    # This teacher (0.93M parameters, lr 1e-3, warm-up + cosine, clipping at 1.0) reached
    # 52.3% test word accuracy in 4,000 steps (4.5 min) and 59.9% in 16,000 (21 min; the one
    # notebooks/assets/g2p_teacher ships); with lr 3e-3 and no clipping a probe stalled near
    # 32% and made KD hurt. Students of a quarter of
    # its size see references for 6,000 training pairs; the rest of the ~64,000 pairs are
    # inputs only, for the teacher to label (the transfer set).
    return T5DistillConfig(
        preset="cpu",
        dataset="cmudict",
        tasks=(),
        num_train=60_000,  # words; a word with several pronunciations gives several pairs
        num_val=1000,
        num_test=2000,
        num_labelled=6000,
        max_source_len=32,
        max_target_len=32,
        teacher_size=T5Size(d_model=128, d_ff=512, num_layers=2, num_decoder_layers=2),
        student_size=T5Size(  # 0.22M parameters: under a quarter of the teacher's 0.93M
            d_model=64, d_ff=224, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16
        ),
        teacher_train=TrainConfig(
            max_steps=16_000, batch_size=64, lr=1e-3, warmup_steps=400, schedule="cosine",
            max_grad_norm=1.0, weight_decay=0.0, checkpoint_every=500,
        ),
        student_train=TrainConfig(
            max_steps=1500, batch_size=64, lr=3e-3, warmup_steps=150, schedule="cosine",
            max_grad_norm=1.0, weight_decay=0.0, checkpoint_every=500, eval_every=250,
        ),
        T=2.0,
        alpha=0.5,
        metric="word_accuracy",
        also_metrics=("phoneme_error_rate",),
        max_new_tokens=32,
        eval_batch_size=500,
    )


def _gpu() -> T5DistillConfig:
    # Pretrained checkpoints and XSum from the Hugging Face Hub (downloaded on first use).
    # The step counts are a starting point for one modern GPU, not tuned results.
    return T5DistillConfig(
        preset="gpu",
        dataset="EdinburghNLP/xsum",
        num_train=50_000,
        num_val=500,
        num_test=2000,
        max_source_len=512,
        max_target_len=64,
        teacher="google-t5/t5-base",
        student="google-t5/t5-small",
        teacher_train=TrainConfig(
            max_steps=3000, batch_size=16, grad_accum_steps=2, lr=3e-4, warmup_steps=200,
            weight_decay=0.01, bf16=True, checkpoint_every=500,
        ),
        student_train=TrainConfig(
            max_steps=3000, batch_size=16, grad_accum_steps=2, lr=5e-4, warmup_steps=200,
            weight_decay=0.01, bf16=True, checkpoint_every=500,
        ),
        T=1.0,
        alpha=0.5,
        seqkd_num_beams=4,
        metric="rougeL",
        num_beams=4,
        max_new_tokens=64,
        eval_batch_size=64,
    )


def get_preset(name: str) -> T5DistillConfig:
    """A fresh config for a named preset: ``"smoke"``, ``"dates"``, ``"cpu"`` or ``"gpu"``."""
    builders = {"smoke": _smoke, "dates": _dates, "cpu": _cpu, "gpu": _gpu}
    if name not in builders:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}.")
    return builders[name]()
