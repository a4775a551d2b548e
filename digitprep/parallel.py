"""The one parallel map: ``function(task)`` for every task on worker processes, results in order.

Every command that works file by file or row by row (`build`, `mnist`, `augment`, `render`) cuts
its work into tasks and runs them through ``parallel_map``: the standard library's process pool,
one BLAS and OpenCV thread per worker (the pool already uses every core), ``jobs`` capped at the
number of tasks, and ``jobs`` <= 1 run in this process. A task's result must depend on the task
alone, so the output is the same bytes whatever ``jobs`` is.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from digitprep.atomic import signals_held

RESULTS_AHEAD = 2  # per worker: tasks handed out before the oldest result is taken


@dataclass(frozen=True)
class Feedback:
    """What a run tells its caller as it goes: each input skipped (path, reason), how many inputs
    there are, and how many more are done."""

    on_skip: Callable[[str, str], None] = lambda path, reason: None
    on_start: Callable[[int], None] = lambda total: None
    on_progress: Callable[[int], None] = lambda n: None


NO_FEEDBACK = Feedback()


class WorkerDied(RuntimeError):
    """A worker process ended while tasks were left (killed, out of memory, a crash in native code)."""


def worker_count(jobs: int, tasks: int) -> int:
    """``jobs`` (0: every core), never more than there are tasks."""
    return max(1, min(jobs or os.cpu_count() or 1, tasks))


def _start_worker() -> None:
    """Set up a worker process: single-threaded libraries, Ctrl-C left to the main process (which
    ends the workers), and an exit without a traceback as soon as the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _context():
    # A plain fork of a process whose OpenCV or BLAS threads are running can deadlock the child.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


@contextlib.contextmanager
def parallel_map(function: Callable, tasks: Iterable, jobs: int = 0) -> Iterator[Iterator]:
    """A context giving the iterator of ``function(task)`` for each task, in task order, computed
    on ``worker_count(jobs, len(tasks))`` processes (``function`` must be a module-level function).
    Leaving the block early ends the workers at once. An exception raised by a task is raised
    here; a worker that dies raises WorkerDied."""
    tasks = list(tasks)
    jobs = worker_count(jobs, len(tasks))
    if jobs == 1:
        yield map(function, tasks)
        return
    pool = ProcessPoolExecutor(jobs, mp_context=_context(), initializer=_start_worker)
    finished = False

    def results() -> Iterator:
        nonlocal finished
        pending: deque = deque()
        try:
            for task in tasks:
                with signals_held():  # a worker it starts is known to the pool before Ctrl-C can end the run
                    pending.append(pool.submit(function, task))
                if len(pending) > RESULTS_AHEAD * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise WorkerDied("a worker process died (killed or out of memory)") from None
        finished = True

    try:
        yield results()
    finally:
        if not finished:
            # Ended and waited for before the pool lets go of its queues: a worker still starting
            # up would otherwise fail to open them and print a traceback.
            workers = multiprocessing.active_children()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.join()
        pool.shutdown(wait=True, cancel_futures=True)
