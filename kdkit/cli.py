"""``kdkit`` on the command line: headless runs of the course's experiments.

    kdkit distill-t5 --preset {smoke,dates,cpu,gpu} --out DIR [--teacher NAME_OR_DIR]
                     [--student NAME_OR_DIR] [--dataset NAME] [--arms ce,word_kd,...] [--resume]

writes ``DIR/metrics.json`` (one object per model: ``teacher`` and ``student_<arm>`` for each
arm — ``ce``, ``word_kd``, ``seq_kd``, ``seq_word_kd``, as Kim & Rush 2016 name them, and
``on_policy``, GKD), the
trained models (``DIR/<name>/``, loadable with ``kdkit.t5.load_t5``), checkpoints and training
curves.

On several GPUs or machines, start it with ``torchrun`` (one process per GPU; ``--batch-size``
is then each process's micro-batch):

    torchrun --nproc_per_node 8 -m kdkit distill-t5 --preset gpu --out DIR

The configuration (flags, preset, ranges) is checked before anything runs: a bad value ends
with a one-line message and status 2. Errors during the run itself propagate with their
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from kdkit.config import ARMS, METRICS, PRESETS, T5_SIZES, T5DistillConfig, get_preset

__all__ = ["main", "build_parser", "distill_t5_config"]


def _count_or_all(value: str) -> int | None:
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {value!r}") from None


def _arms(value: str) -> tuple[str, ...]:
    arms = tuple(a for a in value.split(",") if a) if value != "none" else ()
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown arm(s) {unknown}: choose from {', '.join(ARMS)} (comma-separated), or none"
        )
    return arms


def _add_arm_flags(t5: argparse.ArgumentParser) -> None:
    """The flags that choose the arms and how their KD term is computed."""
    t5.add_argument(
        "--arms", type=_arms, metavar="ARM,...",
        help=f"the students to train (default: all of {','.join(ARMS)}; 'none': the teacher alone)",
    )
    t5.add_argument(
        "--teacher-topk", type=int, metavar="K",
        help="train the word-level KD arms (word_kd, seq_word_kd) from a cache of the "
             "teacher's K largest logits per token (the hidden-state term is then off)",
    )
    t5.add_argument(
        "--teacher-outputs", metavar="JSON",
        help="reuse the teacher's outputs on the training inputs from an earlier run's "
             "teacher_outputs_train.json (same teacher and data) instead of generating them",
    )
    t5.add_argument("--on-policy-fraction", type=float, metavar="LAMBDA",
                    help="on_policy arm: the share of steps the student samples its targets on")
    t5.add_argument("--on-policy-start", type=int, metavar="STEPS",
                    help="on_policy arm: train the first STEPS steps as sequence-level KD (CE on "
                         "the teacher's outputs), a warm start, then on-policy (default 0)")
    t5.add_argument("--beta", type=float,
                    help="on_policy arm: JSD(beta), 0 forward KL, 1 reverse KL (default 0.5)")
    t5.add_argument("--sample-temperature", type=float,
                    help="on_policy arm: the student's sampling temperature (default 1)")
    t5.add_argument("--topk-tail", choices=("renormalise", "uniform"),
                    help="the cache's cut-off tail (default: renormalise)")
    t5.add_argument(
        "--chunked-loss", action="store_true",
        help="KD loss from the decoder's hidden states in chunks (less memory at large V)",
    )
    t5.add_argument(
        "--compile", action="store_true",
        help="torch.compile every training step's forward and loss (pays off on a GPU; the first "
             "steps of each batch shape compile)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``kdkit`` argument parser (one sub-command per experiment)."""
    parser = argparse.ArgumentParser(prog="kdkit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t5 = commands.add_parser(
        "distill-t5",
        help="distil a T5 teacher into a smaller T5: CE, word-level, sequence-level and "
             "sequence + word-level KD students",
        description=(
            "Prepare a T5 teacher (train it, fine-tune it or load it), train one student per arm "
            "from the same initialisation with the same budget (student_ce: CE on the "
            "references; student_word_kd: word-level KD along the references; student_seq_kd: "
            "CE on the teacher's outputs; student_seq_word_kd: both; Kim & Rush 2016; "
            "student_on_policy: GKD, the student's own samples graded by the teacher; Agarwal "
            "et al. 2024), score them on the test split and write OUT/metrics.json."
        ),
    )
    t5.add_argument("--preset", choices=PRESETS, required=True,
                    help="smoke: seconds; dates: synthetic dates, about a minute; cpu: G2P on the "
                         "CMU dictionary, small models, minutes on a laptop; gpu: t5-base -> "
                         "t5-small on XSum in bf16 (downloads)")
    t5.add_argument("--out", required=True, help="output directory")
    t5.add_argument("--teacher", help="teacher: a Hub name or a local directory (save_pretrained)")
    t5.add_argument("--student", help="student: a Hub name or a local directory")
    t5.add_argument("--teacher-steps", type=int,
                    help="teacher training steps (0: use --teacher as it is)")
    t5.add_argument("--student-steps", type=int, help="every student's training steps")
    t5.add_argument("--batch-size", type=int,
                    help="examples per micro-batch, every run (per process under torchrun)")
    t5.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA, every run")
    t5.add_argument("--dataset",
                    help="'synthetic', 'cmudict' or a `datasets` name such as EdinburghNLP/xsum")
    t5.add_argument("--teacher-size", choices=tuple(T5_SIZES),
                    help="build the teacher with T5's published shape (random init, no download)")
    t5.add_argument("--student-size", choices=tuple(T5_SIZES),
                    help="build the student with T5's published shape (random init)")
    t5.add_argument("--vocab-size", type=int,
                    help="logits per position of built models (32128: T5's; default: the "
                         "tokenizer's size)")
    t5.add_argument("--metric", choices=METRICS,
                    help="default: the preset's (rougeL for a hub dataset)")
    t5.add_argument("--num-train", type=int, help="training examples (G2P: words)")
    t5.add_argument("--num-test", type=int, help="test examples every model is scored on")
    t5.add_argument(
        "--num-labelled", type=_count_or_all, metavar="N|all", default=argparse.SUPPRESS,
        help="references the students may use; the other inputs get the teacher's labels",
    )
    t5.add_argument("--seed", type=int, help="seed of the whole experiment")
    t5.add_argument("--device", help="auto, cpu or cuda")
    t5.add_argument(
        "--threads", type=int, help="torch CPU threads (default on a CPU: 1, fastest here)"
    )
    _add_arm_flags(t5)
    t5.add_argument(
        "--resume", action="store_true", help="reuse finished models in OUT, continue checkpoints"
    )
    t5.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    return parser


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _training_changes(args: argparse.Namespace, config: T5DistillConfig) -> dict:
    """The two TrainConfigs as the step, batch, bf16 and compile flags change them (a warm-up
    longer than the new step count is cut to it)."""
    runs: dict[str, dict] = {"teacher_train": {}, "student_train": {}}
    if args.teacher_steps is not None:
        runs["teacher_train"]["max_steps"] = args.teacher_steps
    if args.student_steps is not None:
        runs["student_train"]["max_steps"] = args.student_steps
    for flag, value in (("batch_size", args.batch_size), ("bf16", args.bf16 or None),
                        ("compile", args.compile or None)):
        if value is not None:
            runs["teacher_train"][flag] = runs["student_train"][flag] = value
    changes = {}
    for name, fields in runs.items():
        if fields:
            warmup = min(getattr(config, name).warmup_steps, fields.get("max_steps", 10**9))
            changes[name] = replace(getattr(config, name), warmup_steps=warmup, **fields)
    return changes


def distill_t5_config(args: argparse.Namespace) -> tuple[T5DistillConfig, int | None]:
    """The validated config and torch thread count that ``args`` ask for: a ``ValueError`` if
    a value is out of range or ``--resume`` meets another config's run, an ``OSError`` if a
    named model can be had neither locally nor from the Hub."""
    from kdkit.hub import check_model_available
    from kdkit.pipeline import check_resumable

    config = get_preset(args.preset)
    changes: dict = {}
    for name in ("teacher", "student", "seed", "device", "num_train", "num_test"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.student is not None:
        changes["student_from_teacher"] = False
    if hasattr(args, "num_labelled"):  # "all" gives None: every training pair labelled
        changes["num_labelled"] = args.num_labelled
    if args.dataset is not None:
        changes["dataset"] = args.dataset
        if args.metric is None:
            changes["metric"] = {"synthetic": "exact_match", "cmudict": "word_accuracy"}.get(
                args.dataset, "rougeL")
    if args.metric is not None:
        changes["metric"] = args.metric
    changes.update(_training_changes(args, config))
    if args.arms is not None:
        changes["arms"] = args.arms
    for flag, field in (("on_policy_fraction", "on_policy_fraction"), ("beta", "on_policy_beta"),
                        ("sample_temperature", "sample_temperature"),
                        ("teacher_outputs", "teacher_outputs"),
                        ("on_policy_start", "on_policy_start")):
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    for who in ("teacher", "student"):
        if getattr(args, f"{who}_size") is not None:
            changes[f"{who}_size"] = T5_SIZES[getattr(args, f"{who}_size")]
    if args.student_size is not None:
        changes["student_from_teacher"] = False
    if args.vocab_size is not None:
        changes["vocab_size"] = args.vocab_size
    if args.chunked_loss:
        changes["chunked_loss"] = True
    if args.teacher_topk is not None:
        changes.update(teacher_topk=args.teacher_topk, hidden_weight=0.0)
    if args.topk_tail is not None:
        changes["teacher_topk_tail"] = args.topk_tail
    config = replace(config, **changes)
    for name in (config.teacher, config.student):
        if name is not None:
            check_model_available(name)
    if args.resume:
        check_resumable(config, args.out)
    threads = args.threads
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}.")
    if threads is None and (config.device == "cpu" or not _cuda_available()):
        threads = 1  # tiny matrices: thread hand-offs cost more than they gain (5-10x slower)
    return config, threads


def _distill_t5(config: T5DistillConfig, threads: int | None, args: argparse.Namespace) -> int:
    import torch

    from kdkit import distributed
    from kdkit.pipeline import distill_t5  # imports transformers: only when needed

    if threads is not None:
        torch.set_num_threads(threads)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    distributed.init_from_env(config.device)  # several processes under torchrun, else nothing
    main_process = distributed.is_main()  # only rank 0 prints the table
    try:
        metrics = distill_t5(config, args.out, resume=args.resume, progress=not args.quiet,
                             log=log)
    finally:
        distributed.shutdown()
    if not main_process:
        return 0
    width = max(len(name) for name in metrics)
    for name, m in metrics.items():
        print(
            f"{name:<{width}}  params {m['params']:>11,d}  {m['metric']} {m['score']:6.2f}  "
            f"{m['throughput']:8.1f} examples/s"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdkit`` command; returns the exit status.

    A configuration error (a bad flag value, a value out of range) ends with a one-line
    message and status 2 before anything runs; errors of the run itself keep their traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "distill-t5":
        try:
            config, threads = distill_t5_config(args)
        except (ValueError, OSError) as err:
            parser.exit(2, f"kdkit {args.command}: error: {err}\n")
        return _distill_t5(config, threads, args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
