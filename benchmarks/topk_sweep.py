"""What a top-k teacher cache costs: storage per target position and the KD student's score for
several k, against the live teacher, on the cpu preset with several seeds.

    python benchmarks/topk_sweep.py --out runs/topk_sweep            # 3 seeds, ~15 min, 2 cores
    python benchmarks/topk_sweep.py --out runs/q --preset smoke --seeds 0 1   # seconds

For each seed: the preset as it is (teacher, CE student, live-teacher KD student), then for each
k the same teacher loaded from that run (not retrained), the same student initialisation and
budget, and the KD student trained from the teacher's top-k cache. Differences are paired by
seed (kdkit.stats.paired_difference_ci).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from kdkit.config import get_preset
from kdkit.pipeline import distill_t5_jobs
from kdkit.stats import paired_difference_ci

KD = "student_seq_word_kd"  # the KD arm whose teacher the cache replaces


def sweep(preset: str, seeds: list[int], ks: list[int], out: Path, workers: int) -> dict:
    """Run every job; return ``{"live": {seed: metrics}, k: {seed: (metrics, history)}}``."""
    base = replace(get_preset(preset), arms=("ce", "seq_word_kd"), device="cpu")
    live = distill_t5_jobs(
        {f"live_s{s}": replace(base, seed=s) for s in seeds}, out, workers=workers, resume=True
    )
    jobs = {}
    for s in seeds:
        teacher_dir = out / f"live_s{s}" / "teacher"
        for k in ks:
            jobs[f"k{k}_s{s}"] = replace(
                base, seed=s, teacher=str(teacher_dir), hidden_weight=0.0, teacher_topk=k,
                teacher_train=replace(base.teacher_train, max_steps=0),
            )
    cached = distill_t5_jobs(jobs, out, workers=workers, resume=True)
    return {"live": live, "cached": cached}


def table(results: dict, preset: str, seeds: list[int], ks: list[int], out: Path) -> list[str]:
    """Markdown rows: k, bytes per position, KD score (mean ± sd), paired difference vs live."""
    live_kd = [results["live"][f"live_s{s}"][KD]["score"] for s in seeds]
    ce = [results["live"][f"live_s{s}"]["student_ce"]["score"] for s in seeds]
    rows = [
        f"| {preset} preset, {len(seeds)} seeds | bytes / target position "
        "| KD student, exact match % | vs live teacher (paired, 95% CI) |",
        "| --- | --- | --- | --- |",
        f"| CE student (no teacher) | | {statistics.mean(ce):.1f} ± {statistics.stdev(ce):.1f} | |",
        f"| live teacher | full logits | {statistics.mean(live_kd):.1f} ± "
        f"{statistics.stdev(live_kd):.1f} | |",
    ]
    for k in ks:
        scores = [results["cached"][f"k{k}_s{s}"][KD]["score"] for s in seeds]
        history = json.loads((out / f"k{k}_s{seeds[0]}" / "history.json").read_text())
        topk = history["teacher"]["topk"][KD]
        diff = paired_difference_ci(scores, live_kd)
        label = f"top-{k}" if topk["k"] == k else f"top-{k} (= all {topk['k']})"
        rows.append(
            f"| {label} cache | {topk['bytes_per_position']:.0f} | {statistics.mean(scores):.1f} "
            f"± {statistics.stdev(scores):.1f} | {diff.mean:+.1f} [{diff.low:+.1f}, "
            f"{diff.high:+.1f}] |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = sweep(args.preset, args.seeds, args.ks, args.out, args.workers)
    print("\n".join(table(results, args.preset, args.seeds, args.ks, args.out)))


if __name__ == "__main__":
    main()
