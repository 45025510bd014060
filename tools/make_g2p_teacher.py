"""Train the G2P teacher that notebook 06 loads, and ship it next to the notebooks.

    python tools/make_g2p_teacher.py                    # `make g2p-teacher`: ~5 min, one core
    python tools/make_g2p_teacher.py --smoke --dest DIR # seconds: the test's check of this path

Runs ``kdkit distill-t5 --preset cpu --arms none`` (the cpu preset's teacher, no students: it
trains the teacher and scores it on the test words), then copies the teacher's directory
(weights, config, tokenizer; ``kdkit.t5.load_t5`` reads it) to ``--dest`` with a
``provenance.json`` that records the command, the date, torch's version and the teacher's
scores. The weights are float32 and stay under 5 MB (tests/test_g2p.py checks both).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "notebooks" / "assets" / "g2p_teacher"
# the smoke form: the same path at a size that runs in seconds
SMOKE = ["--num-train", "64", "--num-test", "16", "--num-labelled", "all", "--teacher-steps", "4",
         "--batch-size", "16"]


def make_teacher(dest: Path, extra: list[str]) -> dict:
    """Train the teacher with ``extra`` flags after the cpu preset's; copy it to ``dest``."""
    from kdkit.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["distill-t5", "--preset", "cpu", *extra, "--arms", "none", "--out", tmp]
        if main(argv + ["--quiet"]) != 0:
            raise SystemExit(f"kdkit {' '.join(argv)} failed")
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())["teacher"]
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(Path(tmp) / "teacher", dest)
    provenance = {
        "command": "kdkit " + " ".join(argv[:-2]),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "scores": metrics["scores"],
        "params": metrics["params"],
        "num_test_words": metrics["num_examples"],
    }
    (dest / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEST, help=f"default: {DEST}")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (tests)")
    args, extra = parser.parse_known_args()
    torch.set_num_threads(1)
    provenance = make_teacher(args.dest, SMOKE + extra if args.smoke else extra)
    print(json.dumps(provenance, indent=2))
    size = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {size / 2**20:.2f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
