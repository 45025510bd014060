"""Word-level KD through Hugging Face's Trainer (kdkit.hf) next to kdkit's own loop, same settings.

    python benchmarks/trainer_vs_loop.py --quick          # tiny models on the CPU: seconds
    python benchmarks/trainer_vs_loop.py --device cuda --bf16 --steps 300 --batch 16 \
        --src 512 --tgt 128 --json results.json           # t5-small student, t5-base teacher

Both train the same student initialisation (t5-small's shape, random init, vocabulary 32,128)
with the same frozen teacher (t5-base's shape) on the same random token batches: the same
steps, batch, learning rate, T, α, clipping and linear decay. Each first runs a few untimed
warm-up steps (kernels, allocator), then ``--steps`` timed ones (the Trainer is built before
the clock starts); the rows give target tokens per second, the ratio Trainer / loop, and on a
GPU each one's peak memory (``torch.cuda.max_memory_allocated``). The two run one after the
other in one process, so a busy machine can tilt the ratio: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from bench import student_and_teacher  # benchmarks/bench.py: the same two models

from kdkit.config import TrainConfig
from kdkit.seq2seq import Seq2SeqObjective, train_seq2seq

T, ALPHA, LR = 2.0, 0.5, 3e-4
Features = list[dict[str, list[int]]]


def features(n: int, src: int, tgt: int, vocab: int) -> Features:
    """``n`` random examples of ``src`` source and ``tgt`` target token ids (no padding)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (n, src + tgt), generator=gen).tolist()
    return [{"input_ids": row[:src], "attention_mask": [1] * src, "labels": row[src:]}
            for row in ids]


def loop(student, teacher, data: Features, steps: int, batch: int, bf16: bool):
    """kdkit's explicit loop (:func:`kdkit.seq2seq.train_seq2seq`), ready to run."""
    config = TrainConfig(max_steps=steps, batch_size=batch, lr=LR, weight_decay=0.0,
                         schedule="linear", max_grad_norm=1.0, bf16=bf16)
    objective = Seq2SeqObjective(teacher=teacher, T=T, alpha=ALPHA)
    return lambda: train_seq2seq(student, data, config, objective=objective, progress=False)


def trainer(student, teacher, data: Features, steps: int, batch: int, bf16: bool,
            device: torch.device, out: str):
    """The same through :class:`kdkit.hf.DistillationSeq2SeqTrainer`, built, ready to run."""
    import datasets
    from transformers import default_data_collator

    from kdkit.hf import DistillationArguments, DistillationSeq2SeqTrainer

    args = DistillationArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=LR, weight_decay=0.0, lr_scheduler_type="linear", max_grad_norm=1.0,
        temperature=T, alpha=ALPHA, bf16=bf16, use_cpu=device.type == "cpu",
        save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no",
        dataloader_pin_memory=device.type == "cuda", seed=0,
    )
    return DistillationSeq2SeqTrainer(
        model=student, teacher=teacher, args=args, data_collator=default_data_collator,
        train_dataset=datasets.Dataset.from_list(data),
    ).train


def timed(fn, device: torch.device) -> tuple[float, float | None]:
    """Seconds ``fn()`` takes, and its peak GPU memory in MiB (None on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tick = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - tick, torch.cuda.max_memory_allocated() / 2**20
    return time.perf_counter() - tick, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models on the CPU: seconds")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps each")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps each, first")
    parser.add_argument("--batch", type=int, default=8, help="examples per step")
    parser.add_argument("--src", type=int, default=128, help="source tokens per example")
    parser.add_argument("--tgt", type=int, default=32, help="target tokens per example")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.bf16 and args.device != "cuda":
        parser.error("--bf16 needs --device cuda (kdkit autocasts to bf16 on CUDA only)")
    device = torch.device(args.device)
    src, tgt = (16, 8) if args.quick else (args.src, args.tgt)
    student, teacher, vocab = student_and_teacher(args.quick, device)
    teacher.requires_grad_(False)
    data = features(args.batch * (args.warmup + args.steps), src, tgt, vocab)
    init = {k: v.clone() for k, v in student.state_dict().items()}
    rows = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "shape": f"batch {args.batch} x {src} src / {tgt} tgt tokens, V = {vocab}, "
                     f"{'bf16' if args.bf16 else 'fp32'}, {args.steps} steps"}
    rates = {}
    for name in ("loop", "trainer"):
        for steps in (args.warmup, args.steps):  # untimed, then timed
            student.load_state_dict(init)
            with tempfile.TemporaryDirectory() as out:
                fn = (loop(student, teacher, data, steps, args.batch, args.bf16)
                      if name == "loop" else
                      trainer(student, teacher, data, steps, args.batch, args.bf16, device, out))
                seconds, peak = timed(fn, device)
        rates[name] = args.steps * args.batch * tgt / seconds
        rows[f"{name} target tokens/s"] = f"{rates[name]:,.0f}"
        rows[f"{name} peak memory (MiB)"] = "n/a on the CPU" if peak is None else f"{peak:,.0f}"
    rows["trainer / loop tokens/s"] = f"{rates['trainer'] / rates['loop']:.2f}"
    width = max(map(len, rows))
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
