"""Where `digitprep build`'s worker processes come from: a forkserver that has imported the
worker module (NumPy, OpenCV and the image steps) once.

Only os and multiprocessing here, so that the console entry (``digitprep.entry``) can start the
server a few tens of milliseconds into the run, before the CLI and the build module load.
"""

from __future__ import annotations

import multiprocessing
import os

WORKER_MODULE = "digitprep.chunkwork"  # imported by the workers only
SERVER_EXIT_MODULE = "digitprep.serverexit"  # imported by the worker server only: it exits at once

# Thread pools of the libraries under NumPy, kept to one thread in the workers: the pool already
# runs one worker per core, and an OpenBLAS helper thread per worker spins between the small
# matrix products of each chunk, taking the core another worker needs (found with callgrind).
SINGLE_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_context():
    """Workers start from a clean forkserver that has imported the worker module once: a plain
    fork of a parent whose OpenCV thread pool is running can deadlock, and spawn would re-import
    per worker. Workers inherit the environment, read by NumPy's libraries when they load: a
    thread count the user set is kept."""
    for variable in SINGLE_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", WORKER_MODULE, SERVER_EXIT_MODULE])
    return context


def start_worker_server() -> None:
    """Start the forkserver now, without waiting for it: it imports the worker module while this
    process goes on (loading the CLI, walking the folders), and creating the pool then waits only
    for what is left."""
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver  # POSIX only, like the start method itself

        forkserver.ensure_running()
