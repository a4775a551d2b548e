"""The worker processes of `digitprep build` (and of the commands that reuse its pool).

A small pool of our own instead of ``concurrent.futures.ProcessPoolExecutor``: the executor runs
two helper threads in the main process (a manager and a queue feeder) that wake up several times
per task, and that process shares the cores with the workers. On 137 MNIST chunks the executor
cost the main process 0.11-0.14 s of CPU; a single thread waiting on one pipe per worker, with two
tasks in flight per worker so none waits for its next one, costs 0.03-0.04 s.

Each worker gets its own task pipe and result pipe; tasks go to whichever worker has room, and
results come back in task order. A task may also report progress on the way (``report_progress``:
a task of many large images takes minutes). A worker that dies raises ``WorkerDied`` here; an
exception raised by a task is raised again here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from multiprocessing.connection import Connection, wait

TASKS_IN_FLIGHT = 2  # per worker: the next task is already waiting when one is done
RESULT_PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged pipe


class WorkerDied(RuntimeError):
    """A worker process ended (killed, out of memory, a crash in native code) with tasks left."""


class WorkerPool:
    """``jobs`` processes from ``context``, each set up once by ``initializer(config)``."""

    def __init__(self, jobs: int, context, initializer: Callable, config):
        self.workers: list[_Worker] = []
        try:
            for _ in range(jobs):
                self.workers.append(_Worker(context, initializer, config))
        except BaseException:
            self.terminate()
            raise

    def map(
        self,
        function: Callable,
        tasks: Iterable,
        take_all: bool = False,
        on_progress: Callable[[int], None] = lambda count: None,
    ) -> Iterator:
        """``function(task)`` for each task, computed on the workers, results in task order.
        The first tasks go out at once; the others as workers have room for them, or, with
        ``take_all``, are all taken from ``tasks`` now (a lazy walk through folders finishes
        while the workers start on the first ones). What tasks report with ``report_progress``
        goes to ``on_progress`` as it comes."""
        tasks = iter(enumerate(tasks))
        self._hand_out(function, tasks)
        if take_all:
            tasks = iter(list(tasks))
        return self._results(function, tasks, on_progress)

    def _hand_out(self, function: Callable, tasks: Iterator) -> None:
        for worker in self.workers:
            for index, task in islice(tasks, TASKS_IN_FLIGHT - len(worker.pending)):
                worker.send(index, function, task)

    def _results(self, function: Callable, tasks: Iterator, on_progress: Callable[[int], None]) -> Iterator:
        done: dict[int, object] = {}
        next_result = 0
        while True:
            busy = [worker for worker in self.workers if worker.pending]
            if not busy:
                return
            ready = wait([w.results for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.results in ready or worker.process.sentinel in ready:
                    index, result = worker.receive()
                    if index is None:  # progress, the task goes on
                        on_progress(result)
                    else:
                        done[index] = result
            self._hand_out(function, tasks)
            while next_result in done:
                yield done.pop(next_result)
                next_result += 1

    def stop(self) -> None:
        """Tell the workers to end once their tasks are done, without waiting for them: they
        exit while this process goes on (committing the outputs, for build)."""
        for worker in self.workers:
            worker.stop()

    def close(self) -> None:
        """Let the workers finish and end."""
        self.stop()
        for worker in self.workers:
            worker.process.join()

    def terminate(self) -> None:
        """End the workers now (an error or an interrupt here)."""
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join()


class _Worker:
    def __init__(self, context, initializer: Callable, config):
        task_reader, self.tasks = context.Pipe(duplex=False)
        self.results, result_writer = context.Pipe(duplex=False)
        _widen_pipe(self.results)
        self.process = context.Process(
            target=_serve, args=(task_reader, result_writer, initializer, config), daemon=True
        )
        try:
            self.process.start()
        finally:
            task_reader.close()
            result_writer.close()
        self.pending: list[int] = []

    def send(self, index: int, function: Callable, task) -> None:
        try:
            self.tasks.send((function, task))
        except OSError:  # a broken pipe: it has died
            raise self._died() from None
        self.pending.append(index)

    def receive(self) -> tuple[int | None, object]:
        """The result of this worker's oldest task (raising what the task raised), or (None,
        count) for progress it reported."""
        try:
            outcome, value = self.results.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if outcome == "progress":
            return None, value
        index = self.pending.pop(0)
        if outcome == "error":
            raise value
        return index, value

    def _died(self) -> WorkerDied:
        self.process.join(timeout=10)
        return WorkerDied(f"pid {self.process.pid} ended with exit code {self.process.exitcode}")

    def stop(self) -> None:
        if self.tasks.closed:
            return
        try:
            self.tasks.send(None)
        except OSError:  # it has ended already
            pass
        self.tasks.close()


def _widen_pipe(connection: Connection) -> None:
    """Let a result pipe hold a whole result of up to a megabyte instead of 64 KiB: with the
    default, a worker sending a large result (commands without a spool) blocked per 64 KiB until
    the main process, which needs a core the workers are using, came round to read the next part.
    Best effort: the call is Linux's."""
    try:
        import fcntl

        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
    except (AttributeError, ImportError, OSError):
        pass


_progress: Connection | None = None  # in a worker: where report_progress sends


def report_progress(count: int) -> None:
    """From a task running in a worker: ``count`` more items done (``WorkerPool.map``'s
    ``on_progress``). Nothing elsewhere."""
    if _progress is not None:
        _progress.send(("progress", count))


def _serve(tasks: Connection, results: Connection, initializer: Callable, config) -> None:
    """A worker's life: set up, then run tasks until told to stop (None) or the pool is gone."""
    global _progress
    _progress = results
    try:
        initializer(config)
        while True:
            try:
                message = tasks.recv()
            except EOFError:  # the main process has gone
                return
            if message is None:
                return
            function, task = message
            try:
                reply = ("ok", function(task))
            except Exception as exc:
                reply = ("error", _portable(exc))
            results.send(reply)
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too: the main process ends them
        os._exit(1)


def _portable(exc: Exception) -> Exception:
    """The exception, or a RuntimeError with its text where it cannot be pickled."""
    import pickle
    import traceback

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return RuntimeError(f"a task failed in a worker process:\n{text}")
