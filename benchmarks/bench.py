"""`make bench`: what a KD step and the KD losses cost, as ratios measured side by side.

    python benchmarks/bench.py            # everything (a few minutes on a 2-core CPU)
    python benchmarks/bench.py --quick    # small sizes: checks the script runs (seconds)
    python benchmarks/bench.py --device cuda --bf16 --compile --batch 32 --src 512 --tgt 128 \
        --peak-tflops 989                 # a GPU (989: an H100/H200's dense bf16 peak)

Every ratio compares variants timed in the same run, interleaved (A, B, A, B, ...) and
reduced to medians, so a busy machine slows both sides alike (on a GPU each call ends with a
synchronisation). Rows:

(a) a word-level KD step of a t5-small-size student with a t5-base-size teacher (random init,
    vocabulary 32,128) against its floor: the student's CE step plus the teacher's forward;
    target tokens/s, achieved TFLOP/s (FLOPs counted by ``torch.utils.flop_counter``) and, with
    ``--peak-tflops``, the student's MFU; with ``--compile`` the compiled steps as well;
(b) the KD step from a top-64 teacher cache (the teacher is not run) against the CE step;
(c) the extra peak memory of ``kd_kl_loss`` forward + backward at 4,096 × 32,128 (CPU: peak RSS
    of a fresh process above its inputs; GPU: ``torch.cuda.max_memory_allocated``), next to the
    textbook formula and ``F.cross_entropy``, and the chunked α-mix from hidden states against
    the plain one on ``h @ W.T`` (memory and time);
(d) the α-mix ``distillation_loss`` forward + backward at 256 × 32,128 against
    ``F.cross_entropy`` on the same logits (eager, and compiled with ``torch.compile``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdkit import losses
from kdkit.config import T5_SIZES, T5_VOCAB_SIZE, T5Size
from kdkit.seq2seq import Seq2SeqObjective, backward_accumulated
from kdkit.t5 import build_t5

MiB = 2**20


@dataclass(frozen=True)
class Setup:
    """Where and how the bench runs."""

    device: torch.device
    bf16: bool  # bf16 autocast for the models and bf16 logits for the losses (CUDA only)
    compile: bool  # also time the torch.compile'd variants
    peak_tflops: float | None  # the chip's dense peak for MFU; None = print TFLOP/s only

    @property
    def logit_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16 else torch.float32

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def interleaved_medians(fns: dict[str, Callable[[], None]], reps: int, setup: Setup
                        ) -> dict[str, float]:
    """Median seconds of each callable, run in turn ``reps`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    setup.sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            setup.sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def counted_flops(fn: Callable[[], None]) -> int:
    """The matrix-multiply FLOPs of one call (``torch.utils.flop_counter``)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_mib(fn: Callable[[], None], setup: Setup) -> float | None:
    """CUDA: the peak memory allocated during one call, MiB; CPU: None (see row (c))."""
    if setup.device.type != "cuda":
        return None
    setup.sync()
    torch.cuda.reset_peak_memory_stats()
    fn()
    setup.sync()
    return torch.cuda.max_memory_allocated() / MiB


@dataclass(frozen=True)
class Shape:
    """One training batch: examples × source tokens / target tokens."""

    batch: int
    src: int
    tgt: int


def student_and_teacher(quick: bool, device: torch.device) -> tuple[nn.Module, nn.Module, int]:
    """A student of t5-small's shape, a teacher of t5-base's in ``eval()`` (random init, no
    dropout, vocabulary 32,128; ``quick``: two tiny models, vocabulary 512) and the vocabulary."""
    if quick:
        small = T5Size(d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=2,
                       d_kv=32)
        sizes, vocab = (small, small), 512
    else:
        sizes, vocab = (T5_SIZES["t5-small"], T5_SIZES["t5-base"]), T5_VOCAB_SIZE
    torch.manual_seed(0)
    student, teacher = (
        build_t5(vocab, **{**asdict(size), "dropout_rate": 0.0}).to(device) for size in sizes
    )
    return student, teacher.eval(), vocab


def _models_and_batch(quick: bool, shape: Shape, setup: Setup) -> tuple:
    """Student (t5-small size), teacher (t5-base size), a random batch and its top-64 cache."""
    student, teacher, vocab = student_and_teacher(quick, setup.device)
    b, s, t, k = shape.batch, shape.src, shape.tgt, 64
    data = {  # on the CPU, as the loop's batches are: backward_accumulated copies them over
        "input_ids": torch.randint(3, vocab, (b, s)),
        "attention_mask": torch.ones(b, s, dtype=torch.long),
        "labels": torch.randint(3, vocab, (b, t)),
        "topk_logits": torch.randn(b, t, k).half(),
        "topk_indices": torch.randint(0, vocab, (b, t, k), dtype=torch.int32),
        "lse": torch.full((b, t), 12.0),
    }
    return student, teacher.eval(), data, vocab


def _step_fns(student, teacher, data: dict, setup: Setup) -> dict[str, Callable[[], None]]:
    """The timed variants: CE step, teacher forward, KD step, cached KD step (and compiled)."""
    plain = {k: data[k] for k in ("input_ids", "attention_mask", "labels")}
    objectives = {
        "ce": (Seq2SeqObjective(), plain),
        "kd": (Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.5), plain),
        "cached": (Seq2SeqObjective(T=2.0, alpha=0.5, cached=True), data),
    }
    inputs = {k: v.to(setup.device) for k, v in plain.items()}
    inputs["decoder_input_ids"] = student.prepare_decoder_input_ids_from_labels(
        labels=inputs.pop("labels"))

    def teacher_forward() -> None:
        with torch.no_grad(), torch.autocast(setup.device.type, dtype=torch.bfloat16,
                                             enabled=setup.bf16):
            teacher(**inputs)

    def step(objective: Callable, batch: dict) -> Callable[[], None]:
        def run() -> None:
            student.zero_grad(set_to_none=True)
            backward_accumulated(student, [batch], objective, bf16=setup.bf16)
        return run

    fns = {"teacher": teacher_forward}
    for name, (objective, batch) in objectives.items():
        fns[name] = step(objective, batch)
        if setup.compile:
            fns[f"{name} compiled"] = step(torch.compile(objective.__call__), batch)
    return fns


def kd_step_vs_floor(quick: bool, reps: int, shape: Shape, setup: Setup
                     ) -> list[tuple[str, str]]:
    """(a) and (b): the KD step against its floor, the cached step against the CE step."""
    student, teacher, data, vocab = _models_and_batch(quick, shape, setup)
    fns = _step_fns(student, teacher, data, setup)
    flops = {name: counted_flops(fns[name]) for name in ("ce", "teacher")}
    t = interleaved_medians(fns, reps, setup)
    what = f"batch {shape.batch} × {shape.src} src / {shape.tgt} tgt tokens, V = {vocab}"
    rows = []
    for tag in ("",) + ((" compiled",) if setup.compile else ()):
        ce, kd, cached = t[f"ce{tag}"], t[f"kd{tag}"], t[f"cached{tag}"]
        floor = ce + t["teacher"]
        rows += [
            (f"(a) KD step{tag} / (CE step{tag} + teacher forward)", f"{kd / floor:.2f}  "
             f"({kd:.3f} s vs {ce:.3f} + {t['teacher']:.3f} s; {what})"),
            (f"(b) top-64 cached KD step{tag} / CE step{tag}", f"{cached / ce:.2f}  "
             f"({cached:.3f} vs {ce:.3f} s; the teacher is not run)"),
            (f"(a) throughput{tag}", _throughput(shape, flops, ce, kd, setup)),
        ]
    memory = {name: peak_mib(fns[name], setup) for name in ("ce", "kd", "cached")}
    if memory["kd"] is not None:
        rows.append(("(a) peak memory (MiB)", ", ".join(
            f"{name} step {mib:,.0f}" for name, mib in memory.items())))
    return rows


def _throughput(shape: Shape, flops: dict, t_ce: float, t_kd: float, setup: Setup) -> str:
    """Target tokens/s of the KD step, achieved TFLOP/s and (with a peak) the student's MFU."""
    tokens = shape.batch * shape.tgt
    rates = {  # achieved TFLOP/s: the student's work in its CE step and in the KD step, and all
        "student in its CE step": flops["ce"] / t_ce / 1e12,  # of the KD step's (teacher
        "student in the KD step": flops["ce"] / t_kd / 1e12,  # included)
        "whole KD step": (flops["ce"] + flops["teacher"]) / t_kd / 1e12,
    }
    row = f"KD step {tokens / t_kd:,.0f} target tokens/s; TFLOP/s: " + ", ".join(
        f"{name} {rate:.2f}" for name, rate in rates.items())
    if setup.peak_tflops:
        row += "; MFU: " + ", ".join(
            f"{name} {rate / setup.peak_tflops:.1%}" for name, rate in rates.items())
    return row


def loss_once(which: str, n: int, v: int, device: torch.device, dtype: torch.dtype) -> Callable:
    """Inputs for one loss variant at ``n`` positions × ``v`` classes, and the call that runs
    its forward + backward (``exact``/``kdkit``: ``kd_kl_loss`` on the exact path / the default;
    ``textbook``: the plain formula; ``cross_entropy``; ``from_hidden``/``chunked``: the α-mix
    from hidden states (D = 512), plain on ``h @ W.T`` / chunked)."""
    torch.manual_seed(0)
    s = torch.randn(n, v, device=device, dtype=dtype, requires_grad=True)
    t, y = torch.randn(n, v, device=device, dtype=dtype), torch.randint(0, v, (n,), device=device)
    h = torch.randn(n, 512, device=device, dtype=dtype, requires_grad=True)
    w = (torch.randn(v, 512, device=device, dtype=dtype) / 512**0.5).requires_grad_(True)

    def textbook() -> torch.Tensor:
        log_s, log_t = F.log_softmax(s.float() / 2, -1), F.log_softmax(t.float() / 2, -1)
        return 4 * (log_t.exp() * (log_t - log_s)).sum(-1).mean()

    def exact() -> torch.Tensor:
        previous = losses.set_exact_arithmetic(True)
        try:
            return losses.kd_kl_loss(s, t, T=2.0)
        finally:
            losses.set_exact_arithmetic(previous)

    variants = {
        "exact": exact,
        "kdkit": lambda: losses.kd_kl_loss(s, t, T=2.0),
        "textbook": textbook,
        "cross_entropy": lambda: F.cross_entropy(s.float(), y),
        "from_hidden": lambda: losses.distillation_loss(h @ w.T, t, y, T=2.0),
        "chunked": lambda: losses.chunked_distillation_loss(h, w, y, teacher_logits=t, T=2.0),
    }
    return lambda: variants[which]().backward()


def _status_kib(key: str) -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith(key))


def extra_peak_mib(which: str, n: int, v: int, setup: Setup) -> float:
    """Peak memory of one forward + backward above its inputs: CUDA's allocator, or on a CPU
    the peak RSS of this process (run it in a fresh one: see :func:`loss_memory`)."""
    run = loss_once(which, n, v, setup.device, setup.logit_dtype)
    if setup.device.type == "cuda":
        setup.sync()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        setup.sync()
        return (torch.cuda.max_memory_allocated() - before) / MiB
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak: it counts from here
    before = _status_kib("VmRSS:")
    run()
    return (_status_kib("VmHWM:") - before) / 1024


PEAK_CODE = """
import sys, torch
sys.path[:0] = [{here!r}, {root!r}]
import bench
torch.set_num_threads(1)
cpu = bench.Setup(torch.device("cpu"), bf16=False, compile=False, peak_tflops=None)
print(bench.extra_peak_mib({which!r}, {n}, {v}, cpu))
"""


def loss_memory(quick: bool, setup: Setup) -> list[tuple[str, str]]:
    """(c): extra peak memory (MiB) of one forward + backward; on a CPU each in a fresh process."""
    n, v = (256, 4096) if quick else (4096, T5_VOCAB_SIZE)
    here = Path(__file__).resolve().parent
    extra = {}
    for which in ("exact", "kdkit", "textbook", "cross_entropy", "from_hidden", "chunked"):
        if setup.device.type == "cuda":
            extra[which] = extra_peak_mib(which, n, v, setup)
            continue
        code = PEAK_CODE.format(here=str(here), root=str(here.parent), n=n, v=v, which=which)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        extra[which] = float(out.stdout.strip().splitlines()[-1])
    grad = n * v * setup.logit_dtype.itemsize / MiB
    ratio = extra["chunked"] / max(extra["from_hidden"], 1.0)
    return [
        (f"(c) extra peak memory, logits {n} × {v} {str(setup.logit_dtype)[6:]} (MiB)",
         f"kd_kl_loss exact {extra['exact']:.0f}, default {extra['kdkit']:.0f}, textbook "
         f"{extra['textbook']:.0f}, F.cross_entropy {extra['cross_entropy']:.0f} "
         f"(the gradient alone: {grad:.0f})"),
        ("(c) chunked from hidden states (D = 512) / plain",
         f"{ratio:.2f}  ({extra['chunked']:.0f} vs {extra['from_hidden']:.0f} MiB above inputs "
         f"for the alpha-mix from h @ W.T)"),
    ]


def chunked_time(quick: bool, reps: int, setup: Setup) -> list[tuple[str, str]]:
    """(c): the chunked α-mix from hidden states against the plain one on ``h @ W.T``."""
    n, v = (256, 4096) if quick else (4096, T5_VOCAB_SIZE)
    fns = {name: loss_once(name, n, v, setup.device, setup.logit_dtype)
           for name in ("from_hidden", "chunked")}
    ts = interleaved_medians(fns, reps, setup)
    return [(f"(c) chunked / plain time, fwd+bwd, {n} × {v}, D = 512",
             f"{ts['chunked'] / ts['from_hidden']:.2f}  "
             f"({ts['chunked']:.3f} vs {ts['from_hidden']:.3f} s)")]


def loss_time(quick: bool, reps: int, setup: Setup) -> list[tuple[str, str]]:
    """(d): the α-mix against F.cross_entropy, forward + backward, same logits."""
    n, v = (64, 4096) if quick else (256, T5_VOCAB_SIZE)
    torch.manual_seed(0)
    s0 = torch.randn(n, v, device=setup.device, dtype=setup.logit_dtype)
    t = torch.randn(n, v, device=setup.device, dtype=setup.logit_dtype)
    y = torch.randint(0, v, (n,), device=setup.device)

    def fwd_bwd(loss_fn: Callable) -> Callable[[], None]:
        def run() -> None:
            s = s0.clone().requires_grad_(True)
            loss_fn(s).backward()
        return run

    def exact(s: torch.Tensor) -> torch.Tensor:
        previous = losses.set_exact_arithmetic(True)
        try:
            return losses.distillation_loss(s, t, y, T=2.0, alpha=0.5)
        finally:
            losses.set_exact_arithmetic(previous)

    fns = {"ce": fwd_bwd(lambda s: F.cross_entropy(s, y)),
           "mix": fwd_bwd(lambda s: losses.distillation_loss(s, t, y, T=2.0, alpha=0.5)),
           "exact": fwd_bwd(exact)}
    if setup.compile:
        fns["compiled"] = fwd_bwd(torch.compile(exact))
    ts = interleaved_medians(fns, reps, setup)
    default = "exact" if setup.bf16 else "textbook"  # the "auto" default for these logits
    row = (f"default ({default}) {ts['mix'] / ts['ce']:.1f}×, exact path "
           f"{ts['exact'] / ts['ce']:.1f}× ({ts['exact'] * 1e3:.1f} vs {ts['ce'] * 1e3:.1f} ms)")
    if setup.compile:
        row += f", exact compiled {ts['compiled'] / ts['ce']:.1f}×"
    dtype = str(setup.logit_dtype)[6:]
    return [(f"(d) distillation_loss / F.cross_entropy, fwd+bwd, {n} × {v} {dtype}", row)]


def _machine(setup: Setup) -> str:
    if setup.device.type == "cuda":
        where = f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
    else:
        where = f"{platform.machine()}, {platform.processor() or 'cpu'}, " \
                f"{torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}; {'bf16' if setup.bf16 else 'fp32'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per variant")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast and logits (CUDA)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the torch.compile'd steps in (a) and (b)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled loss in (d)")
    parser.add_argument("--batch", type=int, default=8, help="(a) examples per step")
    parser.add_argument("--src", type=int, default=128, help="(a) source tokens per example")
    parser.add_argument("--tgt", type=int, default=32, help="(a) target tokens per example")
    parser.add_argument("--peak-tflops", type=float, help="the chip's dense peak, for MFU")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.bf16 and args.device != "cuda":
        parser.error("--bf16 needs --device cuda (kdkit autocasts to bf16 on CUDA only)")
    reps = args.reps or (2 if args.quick else 7)
    setup = Setup(torch.device(args.device), args.bf16, args.compile, args.peak_tflops)
    shape = Shape(4, 16, 8) if args.quick else Shape(args.batch, args.src, args.tgt)
    rows = [("machine", _machine(setup)), ("date", time.strftime("%Y-%m-%d"))]
    rows += kd_step_vs_floor(args.quick, reps, shape, setup)
    rows += loss_memory(args.quick, setup)
    rows += chunked_time(args.quick, max(3, reps // 2), setup)
    rows += loss_time(args.quick, reps, replace(setup, compile=not args.no_compile))
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows), f, indent=2)


if __name__ == "__main__":
    main()
