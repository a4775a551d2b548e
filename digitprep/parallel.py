"""The one parallel map: ``function(task)`` for every task on worker processes, results in order.

Every command that works file by file or row by row (`build`, `mnist`, `augment`, `render`) cuts
its work into tasks and runs them through ``parallel_map``: the standard library's process pool,
one BLAS and OpenCV thread per worker (the pool already uses every core), ``jobs`` capped at the
number of tasks, and ``jobs`` <= 1 run in this process. A task's result must depend on the task
alone, so the output is the same bytes whatever ``jobs`` is.

A task of many items tells how far it has got with ``advance``: the counts reach the caller's
``on_progress`` while the task still runs (through a queue from the workers), so a progress bar
moves file by file rather than chunk by chunk.
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
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from digitprep.atomic import signals_held

RESULTS_AHEAD = 2  # per worker: tasks handed out before the oldest result is taken
POLL_SECONDS = 0.1  # how often the workers' counts are passed on while a result is awaited

_report: Callable[[int], None] | None = None  # where ``advance`` sends its counts


@dataclass(frozen=True)
class Feedback:
    """What a run tells its caller as it goes: each input skipped (path, reason), how many inputs
    there are, and how many more are done (as the workers finish them, in any order: the counts
    add up to the total)."""

    on_skip: Callable[[str, str], None] = lambda path, reason: None
    on_start: Callable[[int], None] = lambda total: None
    on_progress: Callable[[int], None] = lambda n: None


NO_FEEDBACK = Feedback()


class WorkerDied(RuntimeError):
    """A worker process ended while tasks were left (killed, out of memory, a crash in native code)."""


def worker_count(jobs: int, tasks: int) -> int:
    """``jobs`` (0: every core), never more than there are tasks."""
    return max(1, min(jobs or os.cpu_count() or 1, tasks))


def advance(n: int = 1) -> None:
    """Count ``n`` more items of the running task done: passed on to the ``on_progress`` of the
    ``parallel_map`` running it, from this process or a worker (nothing when it was given none)."""
    if _report is not None and n:
        _report(n)


def _start_worker(counts) -> None:
    """Set up a worker process: single-threaded libraries, Ctrl-C left to the main process (which
    ends the workers), ``advance`` counting on ``counts`` (a SimpleQueue, or None), and an exit
    without a traceback as soon as the main process is gone."""
    global _report
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _report = None if counts is None else counts.put
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


def _passed_on(counts, on_progress: Callable[[int], None]) -> None:
    """Every count the workers have sent so far, to ``on_progress``."""
    while not counts.empty():
        on_progress(counts.get())


def _awaited(future: Future, counts, on_progress: Callable[[int], None] | None):
    """The future's result; meanwhile the workers' counts passed on every POLL_SECONDS. A worker's
    counts are in the queue before its result is sent (SimpleQueue.put writes at once), so all of
    this task's have been passed on when it returns."""
    if counts is None:
        return future.result()
    while not wait([future], POLL_SECONDS).done:
        _passed_on(counts, on_progress)
    _passed_on(counts, on_progress)
    return future.result()


@contextlib.contextmanager
def parallel_map(
    function: Callable, tasks: Iterable, jobs: int = 0, on_progress: Callable[[int], None] | None = None
) -> Iterator[Iterator]:
    """A context giving the iterator of ``function(task)`` for each task, in task order, computed
    on ``worker_count(jobs, len(tasks))`` processes (``function`` must be a module-level function).
    The counts ``function`` gives ``advance`` reach ``on_progress`` in this process, as they come
    (while the iterator is being read). Leaving the block early ends the workers at once. An
    exception raised by a task is raised here; a worker that dies raises WorkerDied."""
    global _report
    tasks = list(tasks)
    jobs = worker_count(jobs, len(tasks))
    if jobs == 1:
        outer, _report = _report, on_progress
        try:
            yield map(function, tasks)
        finally:
            _report = outer
        return
    context = _context()
    counts = None if on_progress is None else context.SimpleQueue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(counts,))
    finished = False

    def results() -> Iterator:
        nonlocal finished
        pending: deque = deque()
        try:
            for task in tasks:
                with signals_held():  # a worker it starts is known to the pool before Ctrl-C can end the run
                    pending.append(pool.submit(function, task))
                if len(pending) > RESULTS_AHEAD * jobs:
                    yield _awaited(pending.popleft(), counts, on_progress)
            while pending:
                yield _awaited(pending.popleft(), counts, on_progress)
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
        if counts is not None:
            counts.close()
