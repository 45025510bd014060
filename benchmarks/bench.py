"""`make bench`: what a KD step and the KD losses cost, as ratios measured side by side.

    python benchmarks/bench.py            # everything (a few minutes on a 2-core CPU)
    python benchmarks/bench.py --quick    # small sizes: checks the script runs (seconds)

Every ratio compares variants timed in the same run, interleaved (A, B, A, B, ...) and
reduced to medians, so a busy machine slows both sides alike. Rows:

(a) a word-level KD step of a t5-small-size student with a t5-base-size teacher (random init,
    vocabulary 32,128) against its floor: the student's CE step plus the teacher's forward;
(c) the extra peak memory of ``kd_kl_loss`` forward + backward at 4,096 × 32,128 (peak RSS of a
    fresh process above its inputs), next to the textbook formula and ``F.cross_entropy``,
    and the chunked α-mix from hidden states against the plain one on ``h @ W.T``;
(d) the α-mix ``distillation_loss`` forward + backward at 256 × 32,128 against
    ``F.cross_entropy`` on the same logits (eager, and compiled with ``torch.compile``).
(b) the KD step from a top-64 teacher cache (the teacher is not run) against the CE step.
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
from dataclasses import asdict

import torch
import torch.nn.functional as F

from kdkit import losses
from kdkit.config import T5_SIZES, T5_VOCAB_SIZE, T5Size
from kdkit.seq2seq import Seq2SeqObjective, backward_accumulated
from kdkit.t5 import build_t5


def interleaved_medians(fns: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn ``reps`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def kd_step_vs_floor(quick: bool, reps: int) -> list[tuple[str, str]]:
    """(a): the KD step against the student's CE step plus the teacher's forward."""
    if quick:
        small = T5Size(d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=2,
                       d_kv=32)
        sizes, vocab, batch, src, tgt = (small, small), 512, 4, 16, 8
    else:
        sizes, vocab = (T5_SIZES["t5-small"], T5_SIZES["t5-base"]), T5_VOCAB_SIZE
        batch, src, tgt = 8, 128, 32
    torch.manual_seed(0)
    student = build_t5(vocab, **{**asdict(sizes[0]), "dropout_rate": 0.0})
    teacher = build_t5(vocab, **{**asdict(sizes[1]), "dropout_rate": 0.0}).eval()
    data = {
        "input_ids": torch.randint(3, vocab, (batch, src)),
        "attention_mask": torch.ones(batch, src, dtype=torch.long),
        "labels": torch.randint(3, vocab, (batch, tgt)),
    }
    ce, kd = Seq2SeqObjective(), Seq2SeqObjective(teacher=teacher, T=2.0, alpha=0.5)
    inputs = {**data, "decoder_input_ids": student.prepare_decoder_input_ids_from_labels(
        labels=data["labels"])}
    inputs.pop("labels")

    def teacher_forward() -> None:
        with torch.no_grad():
            teacher(**inputs)

    def step(objective: Seq2SeqObjective) -> Callable[[], None]:
        def run() -> None:
            student.zero_grad(set_to_none=True)
            backward_accumulated(student, [data], objective)
        return run

    k = 64
    cache = {"topk_logits": torch.randn(batch, tgt, k).half(),
             "topk_indices": torch.randint(0, vocab, (batch, tgt, k), dtype=torch.int32),
             "lse": torch.full((batch, tgt), 12.0)}
    cached = Seq2SeqObjective(T=2.0, alpha=0.5, cached=True)

    def cached_step() -> None:
        student.zero_grad(set_to_none=True)
        backward_accumulated(student, [data | cache], cached)

    t = interleaved_medians(
        {"ce": step(ce), "teacher": teacher_forward, "kd": step(kd), "cached": cached_step}, reps
    )
    floor = t["ce"] + t["teacher"]
    what = f"batch {batch} × {src} src / {tgt} tgt tokens, V = {vocab}"
    return [
        ("(a) KD step / (CE step + teacher forward)", f"{t['kd'] / floor:.2f}  "
         f"({t['kd']:.2f} s vs {t['ce']:.2f} + {t['teacher']:.2f} s; {what})"),
        (f"(b) top-{k} cached KD step / CE step", f"{t['cached'] / t['ce']:.2f}  "
         f"({t['cached']:.2f} vs {t['ce']:.2f} s; the teacher is not run)"),
    ]


PEAK_CODE = """
import sys, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from kdkit import losses
torch.set_num_threads(1)

def status(key):  # kB, from /proc/self/status
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))

def textbook(s, t, T):
    log_s, log_t = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    return T**2 * (log_t.exp() * (log_t - log_s)).sum(-1).mean()

N, V, D, which = {n}, {v}, 512, {which!r}
s = torch.randn(N, V, requires_grad=True); t = torch.randn(N, V); y = torch.randint(0, V, (N,))
h = torch.randn(N, D, requires_grad=True); w = torch.randn(V, D, requires_grad=True)
open("/proc/self/clear_refs", "w").write("5")  # reset the peak: it counts from here
before = status("VmRSS:")
if which == "exact": losses.set_exact_arithmetic(True); losses.kd_kl_loss(s, t, T=2.0).backward()
elif which == "kdkit": losses.kd_kl_loss(s, t, T=2.0).backward()
elif which == "textbook": textbook(s, t, 2.0).backward()
elif which == "from_hidden": losses.distillation_loss(h @ w.T, t, y, T=2.0).backward()
elif which == "chunked":
    losses.chunked_distillation_loss(h, w, y, teacher_logits=t, T=2.0).backward()
else: F.cross_entropy(s, y).backward()
print((status("VmHWM:") - before) / 1024)
"""


def loss_memory(quick: bool) -> list[tuple[str, str]]:
    """(c): extra peak RSS (MiB) of one forward + backward, each in a fresh process."""
    n, v = (256, 4096) if quick else (4096, T5_VOCAB_SIZE)
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    extra = {}
    for which in ("exact", "kdkit", "textbook", "cross_entropy", "from_hidden", "chunked"):
        code = PEAK_CODE.format(root=root, n=n, v=v, which=which)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        extra[which] = float(out.stdout.strip())
    grad = n * v * 4 / 2**20
    ratio = extra["chunked"] / max(extra["from_hidden"], 1.0)
    return [
        (f"(c) extra peak memory, logits {n} × {v} fp32 (MiB)",
         f"kd_kl_loss exact {extra['exact']:.0f}, default (textbook for fp32) "
         f"{extra['kdkit']:.0f}, F.cross_entropy {extra['cross_entropy']:.0f} "
         f"(the gradient alone: {grad:.0f})"),
        ("(c) chunked from hidden states (D = 512) / plain",
         f"{ratio:.2f}  ({extra['chunked']:.0f} vs {extra['from_hidden']:.0f} MiB above inputs "
         f"for the alpha-mix from h @ W.T)"),
    ]


def chunked_time(quick: bool, reps: int) -> list[tuple[str, str]]:
    """(c): the chunked α-mix from hidden states against the plain one on ``h @ W.T``."""
    n, v, d = (256, 4096, 64) if quick else (4096, T5_VOCAB_SIZE, 512)
    torch.manual_seed(0)
    h0, w0 = torch.randn(n, d), torch.randn(v, d) / d**0.5
    t, y = torch.randn(n, v), torch.randint(0, v, (n,))

    def run(chunked: bool) -> Callable[[], None]:
        def go() -> None:
            h, w = h0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
            if chunked:
                loss = losses.chunked_distillation_loss(h, w, y, teacher_logits=t, T=2.0)
            else:
                loss = losses.distillation_loss(h @ w.T, t, y, T=2.0)
            loss.backward()
        return go

    ts = interleaved_medians({"plain": run(False), "chunked": run(True)}, reps)
    return [(f"(c) chunked / plain time, fwd+bwd, {n} × {v}, D = {d}",
             f"{ts['chunked'] / ts['plain']:.2f}  ({ts['chunked']:.2f} vs {ts['plain']:.2f} s)")]


def loss_time(quick: bool, reps: int, compile_too: bool) -> list[tuple[str, str]]:
    """(d): the α-mix against F.cross_entropy, forward + backward, same logits."""
    n, v = (64, 4096) if quick else (256, T5_VOCAB_SIZE)
    torch.manual_seed(0)
    s0, t, y = torch.randn(n, v), torch.randn(n, v), torch.randint(0, v, (n,))

    def fwd_bwd(loss_fn: Callable) -> Callable[[], None]:
        def run() -> None:
            s = s0.clone().requires_grad_(True)
            loss_fn(s).backward()
        return run

    def mix(s):
        return losses.distillation_loss(s, t, y, T=2.0, alpha=0.5)

    def exact(s):
        previous = losses.set_exact_arithmetic(True)
        try:
            return losses.distillation_loss(s, t, y, T=2.0, alpha=0.5)
        finally:
            losses.set_exact_arithmetic(previous)

    fns = {"ce": fwd_bwd(lambda s: F.cross_entropy(s, y)), "mix": fwd_bwd(mix),
           "exact": fwd_bwd(exact)}
    if compile_too:
        fns["compiled"] = fwd_bwd(torch.compile(exact))
    ts = interleaved_medians(fns, reps)
    row = (f"fp32 default (textbook) {ts['mix'] / ts['ce']:.1f}×, exact path "
           f"{ts['exact'] / ts['ce']:.1f}× ({ts['exact'] * 1e3:.0f} vs {ts['ce'] * 1e3:.0f} ms)")
    if compile_too:
        row += f", exact compiled {ts['compiled'] / ts['ce']:.1f}×"
    return [(f"(d) distillation_loss / F.cross_entropy, fwd+bwd, {n} × {v}", row)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per variant")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 7)
    torch.set_num_threads(torch.get_num_threads())
    rows = [
        ("machine", f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                    f"{torch.get_num_threads()} threads; torch {torch.__version__}; fp32 on CPU"),
        ("date", time.strftime("%Y-%m-%d")),
    ]
    rows += kd_step_vs_floor(args.quick, reps)
    rows += loss_memory(args.quick)
    rows += chunked_time(args.quick, max(3, reps // 2))
    rows += loss_time(args.quick, reps, compile_too=not args.no_compile)
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows), f, indent=2)


if __name__ == "__main__":
    main()
