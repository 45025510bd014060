"""kdkit.jobs: worker processes that never outlive their parent.

The kill tests start a parent Python process that runs jobs in two workers, kill the parent,
and check the end state: every worker gone. Deadlines are generous (a loaded 2-core machine);
the asserts are on the outcome, never on how fast it came.
"""

from __future__ import annotations

import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kdkit.jobs import run_jobs

ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE = 120  # seconds for a parent to spawn its workers (each imports torch)
GONE_DEADLINE = 20  # seconds for orphaned workers to notice and exit
LONG = 600  # seconds a job would run if nothing stopped it
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the workers in Linux's /proc"
)


# --- /proc helpers (Linux; no psutil dependency)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """``(ppid, state, start time)`` of a process, or None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ... starttime(22nd field)"; comm may hold spaces and parentheses
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], int(fields[19])


def _workers_of(parent: int) -> dict[int, int]:
    """``{pid: start time}`` of the pool workers (``spawn_main``) that ``parent`` started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[0] != parent or stat[1] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:  # not the resource tracker, also a child of the parent
            found[int(entry.name)] = stat[2]
    return found


def _alive(workers: dict[int, int]) -> list[int]:
    """The processes of ``workers`` still running (a zombie that nobody reaps is gone; a
    recycled pid with another start time is someone else)."""
    alive = []
    for pid, start in workers.items():
        stat = _stat(pid)
        if stat is not None and stat[1] != "Z" and stat[2] == start:
            alive.append(pid)
    return alive


def _wait_until(condition, deadline: float, what: str, parent: subprocess.Popen | None = None):
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if parent is not None and parent.poll() is not None:
            out, err = parent.communicate()
            pytest.fail(f"the parent exited ({parent.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            pytest.fail(f"no {what} after {deadline} s")
        time.sleep(0.1)


def _kill_leftovers(workers: dict[int, int]) -> None:
    """A failing test must not leave workers training for minutes."""
    for pid in _alive(workers):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _end(parent: subprocess.Popen) -> None:
    if parent.poll() is None:
        parent.kill()
    parent.communicate()


# --- in-process behaviour


POWERS = [(2, 5), (3, 2), (7, 1), (2, 0)]


def test_one_worker_runs_the_jobs_here_in_order():
    assert run_jobs(pow, POWERS, workers=1, progress=False) == [32, 9, 7, 1]


@pytest.mark.slow  # each spawned worker imports torch: seconds on a loaded machine
def test_results_come_in_the_order_of_the_jobs():
    assert run_jobs(pow, POWERS * 3, workers=2, progress=False) == [32, 9, 7, 1] * 3


@pytest.mark.slow
def test_workers_leave_sigint_to_the_parent():
    # Ctrl-C and Jupyter's "interrupt kernel" signal the whole process group: only the parent
    # acts on it (it terminates the pool); a worker would only print a traceback.
    handlers = run_jobs(signal.getsignal, [(signal.SIGINT,)] * 2, workers=2, progress=False)
    assert handlers == [signal.SIG_IGN] * 2


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_int(workers):
    with pytest.raises(ValueError, match="workers"):
        run_jobs(pow, [(2, 2)], workers=workers, progress=False)


@pytest.mark.slow
def test_an_error_in_a_job_is_raised_here_and_stops_the_other_workers():
    # One worker sleeps LONG seconds, the other divides by zero: the error reaches the caller
    # and the pool is terminated and joined: when the call returns, no worker is left.
    jobs = [("time.sleep", LONG), ("operator.truediv", 1, 0)]
    with pytest.raises(ZeroDivisionError):
        run_jobs(_call_by_name, jobs, workers=2, progress=False)
    assert not _alive(_workers_of(os.getpid())), "a pool worker is still running"


def _call_by_name(name: str, *args):
    """A picklable job that calls ``module.function(*args)`` (``time.sleep``, ...)."""
    module, function = name.split(".")
    return getattr({"time": time, "operator": operator}[module], function)(*args)


# --- a parent process that dies or is interrupted


DISTILL_PARENT = """
    import dataclasses, signal, sys
    from kdkit.config import get_preset
    from kdkit.pipeline import distill_t5_jobs

    if __name__ == "__main__":
        # Python's own Ctrl-C handler, as in a terminal or a Jupyter kernel, even when this test
        # runs in a background job (a shell starts those with SIGINT ignored, and an ignored
        # signal stays ignored across exec)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        smoke = get_preset("smoke")
        # thousands of teacher steps: minutes of work, far longer than the test waits
        long = dataclasses.replace(
            smoke, device="cpu",
            teacher_train=dataclasses.replace(
                smoke.teacher_train, max_steps=5000, checkpoint_every=0
            ),
        )
        jobs = {"a": long, "b": dataclasses.replace(long, seed=1)}
        try:
            distill_t5_jobs(jobs, sys.argv[1], workers=2, progress=False)
        except KeyboardInterrupt:
            print("KeyboardInterrupt re-raised", flush=True)
            sys.exit(3)
"""


def _start_distilling(out_dir: Path) -> tuple[subprocess.Popen, dict[int, int]]:
    """A parent (in a session of its own, like a Jupyter kernel) running two long distillation
    jobs, once both workers have started their runs; and those workers."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DISTILL_PARENT), str(out_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        workers = _wait_until(
            lambda: len(found := _workers_of(parent.pid)) == 2 and found,
            START_DEADLINE, "two workers", parent,
        )
        # each run opens its log first: then the worker is set up and inside its job
        _wait_until(
            lambda: all((out_dir / name / "log.txt").exists() for name in "ab"),
            START_DEADLINE, "runs started in both workers", parent,
        )
    except BaseException:
        _kill_leftovers(_workers_of(parent.pid))
        _end(parent)
        raise
    assert len(_alive(workers)) == 2
    return parent, workers


def _wait_gone(workers: dict[int, int]) -> list[int]:
    end = time.monotonic() + GONE_DEADLINE
    while _alive(workers) and time.monotonic() < end:
        time.sleep(0.1)
    return _alive(workers)


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_die_when_the_parent_is_killed(tmp_path, signum):
    # no clean-up runs in the parent: the workers' watchdogs notice it is gone
    parent, workers = _start_distilling(tmp_path)
    try:
        parent.send_signal(signum)
        parent.wait(timeout=GONE_DEADLINE)
        assert not _wait_gone(workers), "workers outlived their parent"
    finally:
        _kill_leftovers(workers)
        _end(parent)


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["parent", "process-group"])
def test_keyboard_interrupt_stops_the_workers_and_is_re_raised(tmp_path, group):
    # SIGINT to the parent alone (`kill -INT`), or to its whole process group (Ctrl-C in a
    # terminal, Jupyter's "interrupt kernel"): the parent gets the KeyboardInterrupt,
    # terminates its workers and re-raises; the workers stay quiet.
    parent, workers = _start_distilling(tmp_path)
    try:
        if group:
            os.killpg(parent.pid, signal.SIGINT)
        else:
            parent.send_signal(signal.SIGINT)
        out, err = parent.communicate(timeout=START_DEADLINE)
        assert parent.returncode == 3, (out, err)
        assert "KeyboardInterrupt re-raised" in out
        assert "KeyboardInterrupt" not in err, err  # no worker died of it with a traceback
        # run_jobs terminated and joined its pool before re-raising: nothing left
        assert not _wait_gone(workers)
    finally:
        _kill_leftovers(workers)
        _end(parent)
