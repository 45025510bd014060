"""The whole T5 distillation experiment behind ``kdkit distill-t5`` (notebook 06), as short
named stages, and several experiments side by side.

:func:`distill_t5` reads top to bottom: start the run, load the data, prepare the teacher,
make one student initialisation, let the teacher label the training inputs, train each
student arm from that initialisation with the same budget, score every model. Each stage
writes what it finished into the run directory, so ``resume=True`` skips it next time.
:func:`distill_t5_jobs` runs several experiments (seeds, variants) in worker processes.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from kdkit import distributed
from kdkit.checkpoints import load_checkpoint, save_checkpoint, write_json
from kdkit.config import ARMS, T5DistillConfig, TrainConfig
from kdkit.data.batching import Seq2SeqSplits, TextPair, encode_pairs
from kdkit.data.g2p import g2p_splits, g2p_vocabulary_texts
from kdkit.data.loading import load_text_pairs
from kdkit.data.text_tasks import build_word_tokenizer, make_text_tasks, task_vocabulary_texts
from kdkit.features import identity_projection
from kdkit.jobs import run_jobs
from kdkit.metrics import compute_metric
from kdkit.on_policy import OnPolicy
from kdkit.seed import set_seed
from kdkit.seq2seq import (
    CHECKPOINT_FILE,
    Seq2SeqObjective,
    attach_teacher_topk,
    evaluate_seq2seq,
    generate_texts,
    teacher_outputs,
    teacher_topk,
    train_seq2seq,
)
from kdkit.t5 import (
    build_t5,
    check_t5_vocab,
    load_t5,
    save_t5,
    t5_student_from_teacher,
    t5_vocab_size,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "MODEL_NAMES",
    "RunSeeds",
    "build_student",
    "check_resumable",
    "load_splits",
    "distill_t5",
    "distill_t5_jobs",
    "reused_teacher_outputs",
]

MODEL_NAMES = ("teacher", *(f"student_{arm}" for arm in ARMS))  # metrics.json's keys
G2P_SPLIT_SEED = 0  # the G2P words' split: the same test words for every seed of a run
Features = list[dict[str, list[int]]]


@dataclass(frozen=True)
class RunSeeds:
    """Every seed of one experiment, derived from ``config.seed`` so that one number moves the
    whole run: data, both initialisations, batch order and dropout. (Fixed offsets: changing
    them changes every published result.)"""

    data: int  # the synthetic tasks' examples and the global RNG at the start
    teacher_init: int  # a teacher built from scratch
    student_init: int  # the one initialisation every student arm starts from
    teacher_train: TrainConfig  # the teacher's run, its seed moved by config.seed
    student_train: TrainConfig  # every student's run, the same seed for every arm

    @classmethod
    def of(cls, config: T5DistillConfig) -> RunSeeds:
        """The seeds of ``config``."""
        return cls(
            data=config.seed,
            teacher_init=config.seed,
            student_init=config.seed + 1,  # not the teacher's: the two must not start alike
            teacher_train=replace(
                config.teacher_train, seed=config.teacher_train.seed + config.seed
            ),
            student_train=replace(
                config.student_train, seed=config.student_train.seed + config.seed
            ),
        )


@dataclass
class _Run:
    """One experiment in progress: its directory, device, seeds and finished stages."""

    config: T5DistillConfig
    out: Path
    device: torch.device
    resume: bool
    progress: bool
    log: Callable[[str], None]
    seeds: RunSeeds
    histories: dict[str, dict] = field(default_factory=dict)
    validation: list[TextPair] = field(default_factory=list)  # scored during training

    @property
    def bf16(self) -> bool:
        return self.config.student_train.bf16 and self.device.type == "cuda"

    def finished(self, name: str) -> bool:
        """Whether ``name`` was trained and saved by an earlier run of this directory."""
        return self.resume and name in self.histories and (self.out / name).exists()

    def write(self, save: Callable[..., object], *args) -> None:
        """``save(*args)`` in rank 0 alone (under ``torchrun``; here when alone)."""
        if distributed.is_main():
            save(*args)

    def record(self, name: str, history: dict) -> None:
        self.histories[name] = history
        self.write(write_json, self.histories, self.out / "history.json")

    def generate_kwargs(self) -> dict:
        c = self.config
        return dict(
            batch_size=c.eval_batch_size, max_source_len=c.max_source_len,
            max_new_tokens=c.max_new_tokens, bf16=self.bf16,
        )

    def encode(self, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[TextPair]) -> Features:
        c = self.config
        return encode_pairs(tokenizer, pairs, c.max_source_len, c.max_target_len)

    def validator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[nn.Module], float] | None:
        """``config.metric`` of a model's greedy outputs on the validation split (None when
        the split is empty): the learning curves' score."""
        if not self.validation:
            return None
        sources = [source for source, _ in self.validation]
        references = [target for _, target in self.validation]

        def score(model: nn.Module) -> float:
            predictions = generate_texts(model, tokenizer, sources, **self.generate_kwargs())
            return compute_metric(self.config.metric, predictions, references)
        return score


def _silent(message: str) -> None:
    """The log of every process but rank 0."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device='cpu'.")
    return torch.device(name)


def _start(
    config: T5DistillConfig,
    out_dir: str | Path,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
) -> _Run:
    """Create the run directory, refuse to resume a different config, seed everything. Under
    ``torchrun`` only rank 0 logs."""
    out = Path(out_dir)
    if resume:
        check_resumable(config, out)
    out.mkdir(parents=True, exist_ok=True)
    if not distributed.is_main():
        log = _silent
    run = _Run(config, out, _device(config.device), resume, progress, log, RunSeeds.of(config))
    if run.device.type == "cuda":  # TF32 matmuls for what autocast leaves in float32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run.write(write_json, config.to_dict(), out / "config.json")
    set_seed(run.seeds.data)
    if resume and (out / "history.json").exists():
        run.histories = json.loads((out / "history.json").read_text())
    return run


def check_resumable(config: T5DistillConfig, out_dir: str | Path) -> None:
    """A ``ValueError`` when ``out_dir`` holds a run of a different config (nothing to resume
    there); fine when it holds this config's run or none."""
    previous = Path(out_dir) / "config.json"
    if previous.exists() and json.loads(previous.read_text()) != config.to_dict():
        raise ValueError(
            f"{out_dir} holds a run with a different config ({previous}); resume it with the "
            f"same preset and flags, or choose another --out directory."
        )


def load_splits(config: T5DistillConfig) -> Seq2SeqSplits:
    """The experiment's train/validation/test pairs: the synthetic tasks, the CMU dictionary's
    G2P pairs (split by :data:`G2P_SPLIT_SEED`, whatever ``config.seed``) or a dataset."""
    if config.dataset == "synthetic":
        return make_text_tasks(
            config.tasks, config.num_train, config.num_val, config.num_test, seed=config.seed
        )
    if config.dataset == "cmudict":
        return g2p_splits(config.num_train, config.num_val, config.num_test, seed=G2P_SPLIT_SEED)
    return load_text_pairs(
        config.dataset, num_train=config.num_train, num_val=config.num_val,
        num_test=config.num_test,
    )


def _new_teacher(run: _Run, splits: Seq2SeqSplits) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The teacher before training: loaded by name or directory, or built from its size with
    a word-level tokenizer over the training texts."""
    config = run.config
    if config.teacher is not None:
        return load_t5(config.teacher)
    if config.dataset == "cmudict":  # every letter and phoneme, each phoneme one token
        tokenizer = build_word_tokenizer(g2p_vocabulary_texts(), split_digits=False)
    else:
        texts = [text for pair in splits.train for text in pair]
        if config.dataset == "synthetic":  # every word the tasks can produce: no <unk>
            texts += task_vocabulary_texts(config.tasks)
        tokenizer = build_word_tokenizer(texts)
    torch.manual_seed(run.seeds.teacher_init)
    teacher = build_t5(
        config.vocab_size or len(tokenizer), **asdict(config.teacher_size),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return teacher, tokenizer


def _prepare_teacher(
    run: _Run, splits: Seq2SeqSplits
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The trained teacher, in ``eval()`` on the run's device, saved to ``out/teacher``."""
    directory = run.out / "teacher"
    if run.finished("teacher"):
        teacher, tokenizer = load_t5(directory)
        run.log(f"teacher: loaded from {directory}")
        return teacher.to(run.device).eval(), tokenizer
    teacher, tokenizer = _new_teacher(run, splits)
    teacher.to(run.device)
    tick = time.perf_counter()
    history: dict = {}
    if run.config.teacher_train.max_steps > 0:
        history = train_seq2seq(
            teacher, run.encode(tokenizer, splits.train), run.seeds.teacher_train,
            checkpoint_dir=run.out / "checkpoints" / "teacher", resume=run.resume,
            validate=run.validator(tokenizer), progress=run.progress, desc="teacher",
        )
    seconds = time.perf_counter() - tick
    run.write(save_t5, teacher, tokenizer, directory)
    run.record("teacher", {**history, "train_seconds": seconds})
    return teacher.eval(), tokenizer


def build_student(
    config: T5DistillConfig, teacher: nn.Module, tokenizer: PreTrainedTokenizerBase
) -> nn.Module:
    """The one initialisation every student arm of ``config`` starts from (loaded, built, or
    every other teacher block), checked against the teacher's vocabulary. Seeds torch with
    ``RunSeeds.of(config).student_init``: a notebook gets the very weights that a
    :func:`distill_t5` run of ``config`` started its students from."""
    torch.manual_seed(RunSeeds.of(config).student_init)
    if config.student is not None:
        student, _ = load_t5(config.student, with_tokenizer=False)
    elif config.student_from_teacher:
        student = t5_student_from_teacher(
            teacher, config.student_size.num_layers, config.student_size.num_decoder_layers
        )
    else:
        student = build_t5(
            t5_vocab_size(teacher), **asdict(config.student_size),
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    check_t5_vocab(teacher, student, tokenizer)
    return student


def _student_init(run: _Run, teacher: nn.Module, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
    """:func:`build_student` of the run's config, on the run's device."""
    return build_student(run.config, teacher, tokenizer).to(run.device)


def _teacher_labels(
    run: _Run, teacher: nn.Module, tokenizer: PreTrainedTokenizerBase, train: list[TextPair]
) -> list[TextPair]:
    """Each training input with the teacher's output as its target (Kim & Rush 2016), cached
    in ``out/teacher_outputs_train.json``; empty when no arm needs them."""
    config = run.config
    if not {"seq_kd", "seq_word_kd", "on_policy"} & set(config.arms):
        return []
    if config.teacher_outputs is not None:
        return reused_teacher_outputs(config.teacher_outputs, train)
    cache = run.out / "teacher_outputs_train.json"
    if run.resume and cache.exists():
        return reused_teacher_outputs(cache, train)
    run.log("teacher: generating its outputs on the training inputs")
    tick = time.perf_counter()
    outputs = teacher_outputs(
        teacher, tokenizer, train, num_beams=config.seqkd_num_beams, **run.generate_kwargs()
    )
    run.write(write_json, outputs, cache)
    run.histories["teacher"]["outputs_seconds"] = time.perf_counter() - tick
    run.write(write_json, run.histories, run.out / "history.json")
    return outputs


def reused_teacher_outputs(path: str | Path, train: Sequence[TextPair]) -> list[TextPair]:
    """The teacher's outputs that an earlier run wrote (its ``teacher_outputs_train.json``),
    checked to cover exactly ``train``'s inputs in order. Whether the same teacher made them is
    the caller's to know: the file records inputs and outputs only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"teacher_outputs={str(path)!r} is not a file: give the teacher_outputs_train.json "
            f"of an earlier run with the same teacher and data, or None to generate them."
        )
    outputs = [tuple(pair) for pair in json.loads(path.read_text())]
    sources = [s for s, _ in outputs]
    expected = [s for s, _ in train]
    if sources != expected:
        n = min(len(sources), len(expected))
        first = next((i for i in range(n) if sources[i] != expected[i]), n)
        raise ValueError(
            f"{path} holds outputs for {len(sources):,} inputs that differ from this run's "
            f"{len(expected):,} training inputs (first difference at input {first:,}): it was "
            f"made with other data settings (dataset, num_train, seed of a synthetic task). "
            f"Generate them again (teacher_outputs=None)."
        )
    return outputs


@dataclass(frozen=True)
class Arm:
    """One student arm: its model name, objective, training features and on-policy steps."""

    name: str
    objective: Seq2SeqObjective
    features: Features
    on_policy: OnPolicy | None = None


def _student_arms(
    run: _Run,
    teacher: nn.Module,
    student_init: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train: list[TextPair],
    outputs: list[TextPair],
) -> list[Arm]:
    """Each arm of ``config.arms`` (:data:`kdkit.config.ARMS`, Kim & Rush 2016): its model
    name, objective and training features. References exist for the first ``num_labelled``
    training pairs only: ``ce`` and ``word_kd`` train on those; ``seq_kd``, ``seq_word_kd``
    and ``on_policy`` (GKD: JSD(β), on a share of the steps along the student's own samples,
    after ``on_policy_start`` steps of CE as a warm start) on the teacher's outputs for every
    training input."""
    config = run.config
    n_labelled = len(train) if config.num_labelled is None else config.num_labelled
    sources = {"ce": "labelled", "word_kd": "labelled", "seq_kd": "outputs",
               "seq_word_kd": "outputs", "on_policy": "outputs"}  # each arm's targets
    needed = {sources[arm] for arm in config.arms}  # each encoded once, shared by its arms
    encoded = {key: run.encode(tokenizer, train[:n_labelled] if key == "labelled" else outputs)
               for key in needed}
    arms = []
    for arm in config.arms:
        name, features = f"student_{arm}", encoded[sources[arm]]
        objective, on_policy = Seq2SeqObjective(), None  # CE on the features' targets
        if arm in ("word_kd", "seq_word_kd"):  # and the teacher's per-step distributions
            objective, features = _word_kd(run, teacher, student_init, name, features)
        if arm == "on_policy":  # JSD(beta) only, on the student's samples or the teacher's
            # outputs, between the models' plain distributions (T = 1, as in GKD); config.T
            # is word-level KD's temperature, sample_temperature the sampler's
            objective = Seq2SeqObjective(teacher=teacher, T=1.0, alpha=1.0,
                                         beta=config.on_policy_beta)
            warm = config.on_policy_start  # the warm start: sequence-level KD's CE steps
            on_policy = OnPolicy(config.on_policy_fraction, config.sample_temperature,
                                 config.max_new_tokens, start=warm,
                                 warmup=Seq2SeqObjective() if warm else None)
        arms.append(Arm(name, objective, features, on_policy))
    return arms


def _word_kd(
    run: _Run, teacher: nn.Module, student_init: nn.Module, name: str, features: Features
) -> tuple[Seq2SeqObjective, Features]:
    """The word-level KD objective along ``features``' targets: the live teacher (with the
    hidden-state term and chunked loss as configured), or its top-k cache attached."""
    config = run.config
    if config.teacher_topk is not None:  # the teacher's top-k, computed once, instead
        cache = _teacher_cache(run, teacher, features, name)
        objective = Seq2SeqObjective(T=config.T, alpha=config.alpha, cached=True,
                                     cache_tail=config.teacher_topk_tail)
        return objective, attach_teacher_topk(features, cache)
    projection = None
    if config.hidden_weight > 0:  # one per arm, trained with its student
        projection = identity_projection(student_init.config.d_model, teacher.config.d_model)
    objective = Seq2SeqObjective(
        teacher=teacher, T=config.T, alpha=config.alpha, hidden_weight=config.hidden_weight,
        projection=projection, chunked=config.chunked_loss,
    )
    return objective, features


def _teacher_cache(run: _Run, teacher: nn.Module, features: Features, name: str) -> dict:
    """The teacher's top-k cache of arm ``name``'s features, in ``out/teacher_topk_<name>.pt``
    (reused on resume); its size goes to the teacher's history under ``topk`` / ``name``."""
    path = run.out / f"teacher_topk_{name}.pt"
    if run.resume and path.exists():
        return load_checkpoint(path)
    tick = time.perf_counter()
    cache = teacher_topk(teacher, features, k=run.config.teacher_topk, T=run.config.T,
                         batch_size=run.config.eval_batch_size)
    run.write(save_checkpoint, cache, path)
    real = int((cache["labels"] != -100).sum())
    stored = sum(cache[k].nbytes for k in ("topk_logits", "topk_indices", "lse"))
    run.histories["teacher"].setdefault("topk", {})[name] = {
        "k": cache["topk_logits"].shape[-1], "seconds": time.perf_counter() - tick,
        "bytes_per_position": stored / cache["labels"].numel(), "stored_bytes": stored,
        "target_tokens": real,
    }
    run.write(write_json, run.histories, run.out / "history.json")
    return cache


def _shared_warm_start(run: _Run, arms: list[Arm]) -> tuple[int, Path] | None:
    """When a run trains ``seq_kd`` before ``on_policy`` with ``on_policy_start`` S > 0, the
    on-policy arm's first S steps are the sequence-level arm's (the same initialisation,
    targets, batches, seeds and cross-entropy steps): the sequence-level arm writes its step-S
    checkpoint where the on-policy arm resumes from, so the warm start is trained once and the
    weights are exactly those of training it again. ``(step, checkpoint path)``, or None."""
    names = [arm.name for arm in arms]
    start = run.config.on_policy_start
    if start == 0 or not {"student_seq_kd", "student_on_policy"} <= set(names):
        return None
    if names.index("student_seq_kd") > names.index("student_on_policy"):
        return None
    return start, run.out / "checkpoints" / "student_on_policy" / CHECKPOINT_FILE


def _train_student(
    run: _Run,
    arm: Arm,
    student_init: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    snapshot: tuple[int, Path] | None = None,
    forked: bool = False,
) -> nn.Module:
    """One student arm trained from a copy of ``student_init``, saved to ``out/<name>``;
    ``snapshot`` and ``forked`` share a warm start (:func:`_shared_warm_start`)."""
    name = arm.name
    directory = run.out / name
    if run.finished(name):
        student, _ = load_t5(directory, with_tokenizer=False)
        run.log(f"{name}: loaded from {directory}")
        return student.to(run.device)
    student = copy.deepcopy(student_init)
    tick = time.perf_counter()
    if forked:
        run.log(f"{name}: continuing from the shared warm start")
    history = train_seq2seq(
        student, arm.features, run.seeds.student_train, objective=arm.objective,
        checkpoint_dir=run.out / "checkpoints" / name, resume=run.resume or forked,
        validate=run.validator(tokenizer), on_policy=arm.on_policy, snapshot=snapshot,
        progress=run.progress, desc=name,
    )
    seconds = time.perf_counter() - tick
    run.write(save_t5, student, tokenizer, directory)
    run.record(name, {**history, "train_seconds": seconds})
    return student


def _evaluate(
    run: _Run,
    models: dict[str, nn.Module],
    tokenizer: PreTrainedTokenizerBase,
    test: list[TextPair],
) -> dict[str, dict]:
    """Every model scored on the test split; written to ``out/metrics.json``."""
    config = run.config
    metrics: dict[str, dict] = {}
    for name, model in models.items():
        result = evaluate_seq2seq(
            model, tokenizer, test, metric=config.metric, also=config.also_metrics,
            num_beams=config.num_beams,
            **run.generate_kwargs(),
        )
        result["train_seconds"] = run.histories.get(name, {}).get("train_seconds")
        metrics[name] = result
        score = f"{config.metric} {result['score']:6.2f}"
        run.log(f"{name:14s} {result['params']:>10,d} params  {score}")
    run.write(write_json, metrics, run.out / "metrics.json")
    return metrics


def distill_t5(
    config: T5DistillConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """The whole T5 distillation experiment; writes ``out_dir/metrics.json`` and returns it.

    1. Data: the synthetic tasks, or a dataset (:func:`kdkit.data.loading.load_text_pairs`).
    2. Teacher: loaded (``config.teacher``: name or directory) or built from
       ``config.teacher_size`` with a word-level tokenizer; trained for
       ``config.teacher_train.max_steps`` (0 = used as loaded); saved to ``out_dir/teacher``.
    3. Students from one initialisation (pretrained, built, or every other teacher block), each
       trained with ``config.student_train`` (the same budget), one per ``config.arms``
       (:data:`kdkit.config.ARMS`, named as Kim & Rush 2016 name them): ``student_ce`` (CE on
       the references), ``student_word_kd`` (word-level KD along the references),
       ``student_seq_kd`` (CE on the teacher's outputs), ``student_seq_word_kd`` (both),
       ``student_on_policy`` (GKD: the student's own samples graded by the teacher with
       JSD(β), after ``on_policy_start`` warm-start steps); saved to ``out_dir/<name>``. With
       ``config.num_labelled`` the references cover only the first
       N training pairs: ``ce`` and ``word_kd`` train on those alone, the sequence-level arms
       on every training input with the teacher's outputs as targets (a transfer set, Hinton et
       al. 2015 §3) — so the arms separate "more inputs labelled" from "soft targets".
    4. Every model scored on the test split: ``metrics.json`` maps each name to
       :func:`kdkit.seq2seq.evaluate_seq2seq`'s dict plus ``train_seconds``.

    Checkpoints go to ``out_dir/checkpoints/<name>``; ``resume=True`` skips finished models and
    continues interrupted ones exactly. ``history.json`` holds the training curves.

    Under ``torchrun --nproc_per_node N`` every process runs this function: each trains on its
    share of every batch (``config``'s batch sizes are per process; the weights are those of
    one process with N times the batch), decodes its share of every generation, and rank 0
    alone writes files and logs (:mod:`kdkit.distributed`; from Python, call
    ``distributed.init_from_env()`` first, as the command line does). Several machines need one
    shared ``out_dir``.
    """
    run = _start(config, out_dir, resume, progress, log)
    run.log(f"data: {config.dataset}")
    splits = load_splits(config)
    run.validation = splits.validation
    teacher, tokenizer = _prepare_teacher(run, splits)
    student_init = _student_init(run, teacher, tokenizer)
    outputs = _teacher_labels(run, teacher, tokenizer, splits.train)
    models = {"teacher": teacher}
    arms = _student_arms(run, teacher, student_init, tokenizer, splits.train, outputs)
    shared = _shared_warm_start(run, arms)  # seq_kd writes it before on_policy reads it
    for arm in arms:
        snapshot = shared if arm.name == "student_seq_kd" else None
        forked = shared is not None and arm.name == "student_on_policy" and shared[1].exists()
        models[arm.name] = _train_student(run, arm, student_init, tokenizer, snapshot, forked)
    return _evaluate(run, models, tokenizer, splits.test)


def _distill_t5_job(
    config: T5DistillConfig, out_dir: str, resume: bool, threads: int | None
) -> dict[str, dict]:
    """One :func:`distill_t5` run in a worker process: quiet, its log in ``out_dir/log.txt``."""
    import contextlib

    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (
        open(out / "log.txt", "a") as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        return distill_t5(
            config, out, resume=resume, progress=False,
            log=lambda message: print(message, file=sys.stderr),
        )


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
    order of ``jobs``. With ``workers > 1`` each run is a separate process
    (:func:`kdkit.jobs.run_jobs`: the workers die with their parent) with ``threads`` torch
    threads: on a 2-core CPU, two one-thread runs side by side take about half the time of
    running them one after the other, and give the same numbers (each run seeds itself).
    ``workers=1`` runs them here, one by one. In a script (not a notebook), call it under
    ``if __name__ == "__main__":``: spawned workers re-import the script.
    """
    if not jobs:
        raise ValueError("jobs is empty: give at least one {name: T5DistillConfig}.")
    if distributed.world()[1] > 1 and workers > 1:
        raise ValueError("workers > 1 under torchrun would start every run's workers in every "
                         "process: use workers=1 (the processes share each run) or no torchrun.")
    for name, config in jobs.items():
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"job name {name!r} must be a plain directory name (no '/').")
        if not isinstance(config, T5DistillConfig):
            raise ValueError(f"job {name!r} must map to a T5DistillConfig, got {type(config)}.")
    out = Path(out_dir)
    args = [(config, str(out / name), resume, threads) for name, config in jobs.items()]
    results = run_jobs(_distill_t5_job, args, workers=workers, progress=progress)
    return dict(zip(jobs, results, strict=True))
