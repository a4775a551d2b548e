"""The one parallel map: results in task order, workers capped at the work, errors carried over."""

import multiprocessing
import time

import pytest

from digitprep.parallel import parallel_map, worker_count


def slow_square(n: int) -> int:
    time.sleep(0.05 * (n % 3))  # later tasks often finish first
    return n * n


def workers_now(_: int) -> int:
    return 0


def fails_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("task 3 is bad")
    return n


def test_jobs_are_capped_at_the_tasks_and_zero_means_every_core():
    assert worker_count(1000, 5) == 5
    assert worker_count(0, 10_000) == (multiprocessing.cpu_count() or 1)
    assert worker_count(4, 0) == 1


def test_results_come_in_task_order_on_one_or_several_processes():
    for jobs in (1, 2, 3):
        with parallel_map(slow_square, range(12), jobs) as results:
            assert list(results) == [n * n for n in range(12)]


def test_a_thousand_jobs_for_three_tasks_start_three_workers():
    with parallel_map(slow_square, [1, 2, 3], 1000) as results:
        assert list(results) == [1, 4, 9]
        assert len(multiprocessing.active_children()) <= 3


def test_an_error_in_a_task_is_raised_here_and_the_workers_end():
    with pytest.raises(ValueError, match="task 3 is bad"), parallel_map(fails_on_three, range(8), 2) as results:
        list(results)
    assert multiprocessing.active_children() == []


def test_leaving_early_ends_the_workers():
    with parallel_map(slow_square, range(50), 2) as results:
        assert next(results) == 0
    assert multiprocessing.active_children() == []
