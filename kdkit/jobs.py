"""Run several independent jobs in worker processes that never outlive their parent.

A notebook that trains several models side by side must not leave workers behind when it is
interrupted, its kernel restarted, or its process killed. Two guards:

- the parent terminates its pool on any exception, ``KeyboardInterrupt`` included;
- each worker watches its parent's process id and exits at once when the parent is gone
  (killed with SIGKILL or SIGTERM, where no clean-up of the parent runs).

Workers ignore SIGINT: Ctrl-C in a terminal, and Jupyter's "interrupt kernel", signal the whole
process group, and the parent alone turns that into a ``KeyboardInterrupt`` and stops them
(otherwise each worker would print a traceback and the pool would start replacements).
tests/test_jobs.py kills parents these ways and checks that no worker is left.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

__all__ = ["exit_with_parent", "run_jobs"]

_PARENT_POLL_SECONDS = 0.2


def exit_with_parent(parent_pid: int | None = None) -> None:
    """Exit this process as soon as the process that started it (``parent_pid``, default: the
    current parent) is gone: it is then reparented and ``os.getppid`` changes. A daemon thread
    polls every 0.2 s; no clean-up runs, since whoever wanted the result is gone."""
    parent_pid = os.getppid() if parent_pid is None else parent_pid

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="kdkit-parent-watch", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """In a worker, first: ignore SIGINT (the parent handles it) and exit with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _call(job: tuple[int, Callable[..., Any], tuple]) -> tuple[int, Any]:
    index, fn, args = job
    return index, fn(*args)


def run_jobs(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "runs",
) -> list[Any]:
    """``[fn(*a) for a in args]``, ``workers`` at a time, results in the order of ``args``.

    ``workers == 1`` runs them here, one by one. Otherwise each runs in a ``spawn``ed worker
    process (``fork`` with torch's thread pools can hang); ``fn`` and its arguments must be
    picklable (a module-level function). Workers die with their parent: on an exception or
    ``KeyboardInterrupt`` here the pool is terminated, and a worker whose parent was killed
    exits within a fraction of a second. In a script, call this under
    ``if __name__ == "__main__":`` (spawned workers re-import the script).
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}.")
    bar = tqdm(total=len(args), desc=desc, disable=not progress)
    results: list[Any] = [None] * len(args)
    try:
        if workers == 1:
            for i, a in enumerate(args):
                results[i] = fn(*a)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            jobs = [(i, fn, tuple(a)) for i, a in enumerate(args)]
            for i, result in pool.imap_unordered(_call, jobs):
                results[i] = result
                bar.update()
            pool.close()
        except BaseException:
            pool.terminate()  # SIGTERM to every worker, now: nothing keeps training
            raise
        finally:
            pool.join()
        return results
    finally:
        bar.close()
