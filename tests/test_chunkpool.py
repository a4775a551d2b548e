"""The worker pool: results in task order, errors and dead workers reported in the main process."""

import contextlib
import multiprocessing
import os
import threading
import time

import pytest

from digitprep.chunkpool import TASKS_IN_FLIGHT, WorkerDied, WorkerPool, report_progress
from digitprep.workers import worker_context

_offset = 0


def set_offset(config):
    global _offset
    _offset = config


def slow_square(n):
    time.sleep(0.002 * (n % 3))  # later tasks often finish first
    return n * n + _offset


def fail_on_five(n):
    if n == 5:
        raise ValueError(f"task {n} is bad")
    return n


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("carries a lock")
        self.lock = threading.Lock()


def raise_unpicklable(n):
    raise Unpicklable()


def die_on_three(n):
    if n == 3:
        os._exit(70)
    return n


@pytest.fixture
def fork():
    return multiprocessing.get_context("fork")


@contextlib.contextmanager
def ended_after(pool):
    """The pool, its workers ended whatever the test's outcome."""
    try:
        yield pool
    finally:
        pool.terminate()


def test_results_come_back_in_task_order(fork):
    pool = WorkerPool(2, fork, set_offset, 1000)
    try:
        assert list(pool.map(slow_square, range(40))) == [n * n + 1000 for n in range(40)]
        assert list(pool.map(slow_square, [])) == []
        assert list(pool.map(slow_square, iter(range(3)), take_all=True)) == [1000, 1001, 1004]
    finally:
        pool.close()
    assert all(worker.process.exitcode == 0 for worker in pool.workers)


def test_tasks_are_taken_as_workers_have_room_unless_all_are_asked_for(fork):
    taken = []

    def tasks():
        for n in range(20):
            taken.append(n)
            yield n

    with ended_after(WorkerPool(2, fork, set_offset, 0)) as pool:
        results = pool.map(slow_square, tasks())
        assert len(taken) == 2 * TASKS_IN_FLIGHT  # handed out at once, before any result is asked for
        assert next(results) == 0 and len(taken) < 20
        taken.clear()
        pool.map(slow_square, tasks(), take_all=True)
        assert len(taken) == 20


def test_an_exception_in_a_task_is_raised_here(fork):
    with ended_after(WorkerPool(2, fork, set_offset, 0)) as pool, pytest.raises(ValueError, match="task 5 is bad"):
        list(pool.map(fail_on_five, range(10)))
    with ended_after(WorkerPool(1, fork, set_offset, 0)) as pool, pytest.raises(RuntimeError, match="carries a lock"):
        list(pool.map(raise_unpicklable, range(2)))


def test_a_worker_that_dies_is_reported(fork):
    with ended_after(WorkerPool(2, fork, set_offset, 0)) as pool, pytest.raises(WorkerDied, match="exit code 70"):
        list(pool.map(die_on_three, range(10)))


def test_the_build_s_own_workers_start_from_the_worker_server():
    pool = WorkerPool(2, worker_context(), set_offset, 7)
    try:
        assert list(pool.map(slow_square, range(5))) == [7, 8, 11, 16, 23]
    finally:
        pool.close()


def test_stopped_workers_end_once_their_tasks_are_done(fork):
    pool = WorkerPool(2, fork, set_offset, 0)
    results = list(pool.map(slow_square, range(6)))
    pool.stop()
    for worker in pool.workers:
        worker.process.join(timeout=30)
    assert results == [n * n for n in range(6)]
    assert [worker.process.exitcode for worker in pool.workers] == [0, 0]
    pool.close()  # after stop: nothing left to do but join


def test_a_task_for_a_worker_that_has_died_is_reported(fork):
    pool = WorkerPool(1, fork, set_offset, 0)
    worker = pool.workers[0]
    worker.process.terminate()
    worker.process.join()
    with pytest.raises(WorkerDied, match="ended with exit code -15"):
        worker.send(0, slow_square, 1)
    pool.close()


def report_twice(n):
    report_progress(1)
    report_progress(2)
    return n


def test_progress_reported_by_tasks_comes_as_it_is_made(fork):
    counts = []
    with ended_after(WorkerPool(2, fork, set_offset, 0)) as pool:
        assert list(pool.map(report_twice, range(5), on_progress=counts.append)) == list(range(5))
    assert sorted(counts) == [1] * 5 + [2] * 5
    report_progress(3)  # outside a worker: nothing to send to, nothing happens
