"""kdkit's own loop under ``torchrun`` (kdkit.distributed), on CPUs with the gloo backend:
two processes with a micro-batch of b train the weights one process trains with 2b; a run whose
rank is killed leaves a loadable checkpoint and no process behind, and resumes to the weights of
an uninterrupted run; the collectives deal out and gather back in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from kdkit import distributed
from kdkit.checkpoints import load_checkpoint
from kdkit.cli import main

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
SMOKE = ["-m", "kdkit", "distill-t5", "--preset", "smoke", "--quiet", "--arms", "ce,word_kd"]


def _run(argv: list[str], timeout: int = 300) -> None:
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_alone_every_collective_is_the_identity():
    assert distributed.world() == (0, 1) and distributed.is_main()
    assert distributed.share([3, 1, 2]) == [3, 1, 2]
    assert distributed.gather_shares(["a", "b"], 2) == ["a", "b"]
    w = torch.nn.Parameter(torch.zeros(2))
    w.grad = torch.ones(2)
    distributed.sum_gradients([w])
    assert w.grad.tolist() == [1.0, 1.0]
    assert distributed.init_from_env("cpu") is None  # not started by torchrun


@pytest.mark.slow
def test_two_processes_deal_out_and_gather_back_in_order(tmp_path):
    _run([*TORCHRUN, str(HERE / "dist_collectives.py"), str(tmp_path)])
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [[0, 2], [1, 2]]
    assert [r["mine"] for r in ranks] == [[0, 2, 4], [1, 3]]
    for r in ranks:
        assert r["gathered"] == [0, 10, 20, 30, 40]  # input order, on every process
        assert r["one"] == ["ONLY"]  # one item: rank 1 held nothing
        # summed over the processes; a gradient on rank 0 alone counts zeros elsewhere; a
        # parameter without a gradient anywhere keeps None (AdamW skips it, as alone)
        assert r["grads"] == [[3.0, 3.0, 3.0], [1.0, 1.0], None]
        assert r["summed"] == [3.0]
        assert r["broadcast"] == [0.0, 0.0]  # rank 0's weights everywhere


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_with_twice_the_batch(tmp_path):
    script = str(HERE / "dist_pipeline.py")
    _run([*TORCHRUN, script, str(tmp_path / "two"), "16"])
    _run([sys.executable, script, str(tmp_path / "one"), "32"])
    one, two = tmp_path / "one", tmp_path / "two"
    for name in ("teacher", "student_ce", "student_word_kd", "student_seq_kd",
                 "student_seq_word_kd"):
        # the same sums in another order: float rounding only (a step's worth is ~1e-3)
        assert _max_difference(_weights(one / name), _weights(two / name)) < 1e-4, name
    # the teacher's outputs, decoded half by each process, are gathered in input order
    outputs = json.loads((one / "teacher_outputs_train.json").read_text())
    assert json.loads((two / "teacher_outputs_train.json").read_text()) == outputs
    assert len({target for _, target in outputs}) > 5  # order matters: not all alike
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    for name in m1:
        assert m2[name]["samples"] == m1[name]["samples"] and m2[name]["score"] == m1[name]["score"]
    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (one, two))
    # the logged loss is the global per-token mean, not rank 0's share of it
    assert h2["student_word_kd"]["loss"] == pytest.approx(h1["student_word_kd"]["loss"], rel=1e-5)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def _start(out: Path, *extra: str) -> subprocess.Popen:
    argv = [*TORCHRUN, *SMOKE, "--out", str(out), "--student-steps", "60", *extra]
    return subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _workers(launcher: subprocess.Popen, timeout: float = 120) -> list[psutil.Process]:
    """The launcher's two worker processes, once both are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(launcher.pid).children(recursive=True)
        ranks = [p for p in children if _rank(p) is not None]
        if len(ranks) == 2:
            return sorted(ranks, key=_rank)
        time.sleep(0.1)
    raise AssertionError("torchrun did not start two workers")


def _rank(process: psutil.Process) -> int | None:
    try:
        return int(process.environ().get("RANK"))
    except (psutil.Error, TypeError, ValueError):
        return None


def _wait_for(path: Path, launcher: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert launcher.poll() is None, f"the run ended before {path} was written"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _gone(processes: list[psutil.Process], timeout: float = 30) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


@pytest.mark.slow
def test_a_killed_rank_leaves_a_loadable_checkpoint_no_process_and_an_exact_resume(tmp_path):
    killed = tmp_path / "killed"
    launcher = _start(killed)
    try:
        workers = _workers(launcher)
        checkpoint = killed / "checkpoints" / "student_ce" / "checkpoint.pt"
        _wait_for(checkpoint, launcher)
        workers[1].send_signal(signal.SIGKILL)  # rank 1 dies mid-run, no clean-up
        assert launcher.wait(timeout=120) != 0
    finally:
        launcher.kill()
    assert _gone(workers), "a worker outlived the run"
    state = load_checkpoint(checkpoint)  # atomic writes: the last one whole
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert 0 < state["step"] < 60 and not (killed / "student_ce").exists()

    with pytest.raises(ValueError, match="written by 2 process"):  # one process cannot go on
        main([*SMOKE[2:], "--out", str(killed), "--student-steps", "60", "--resume"])

    _run([*TORCHRUN, *SMOKE, "--out", str(killed), "--student-steps", "60", "--resume"])
    straight = tmp_path / "straight"
    _run([*TORCHRUN, *SMOKE, "--out", str(straight), "--student-steps", "60"])
    for name in ("teacher", "student_ce", "student_word_kd"):  # dropout 0.1: RNGs restored
        assert _max_difference(_weights(killed / name), _weights(straight / name)) == 0, name


@pytest.mark.slow
def test_the_workers_die_with_a_killed_launcher(tmp_path):
    launcher = _start(tmp_path / "run")
    try:
        workers = _workers(launcher)
        _wait_for(tmp_path / "run" / "teacher", launcher)
        launcher.send_signal(signal.SIGKILL)  # torchrun itself: it cannot stop its workers
        launcher.wait(timeout=30)
        assert _gone(workers, timeout=10), "a worker outlived its launcher"
    finally:
        launcher.kill()
