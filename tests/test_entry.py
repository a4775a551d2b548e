"""The console entry: which command lines start `build`'s worker server before the CLI loads."""

import subprocess
import sys

import numpy as np
from conftest import write_image

from digitprep.entry import wants_workers


def test_only_a_multi_process_build_starts_the_worker_server_early():
    assert wants_workers(["build", "src", "--size", "20", "--out", "d.csv"])
    assert wants_workers(["build", "src", "--jobs", "2", "--out", "d.csv"])
    assert not wants_workers(["build", "src", "--jobs", "1", "--out", "d.csv"])
    assert not wants_workers(["build", "src", "--jobs=1"])
    assert not wants_workers(["build", "--help"])
    assert not wants_workers(["show", "d.csv"])
    assert not wants_workers([])


def test_python_dash_m_digitprep_builds_through_the_entry(tmp_path):
    for i in range(2100):  # more than one chunk (CHUNK_FILES): the worker pool is used
        image = np.zeros((12, 12), np.uint8)
        image[2:10, 3 + i % 4 : 6 + i % 4] = 255
        write_image(tmp_path / "src" / str(i % 10) / f"{i}.png", image)
    command = [sys.executable, "-m", "digitprep", "build", "src", "--size", "8", "--jobs", "2", "--out", "d.csv"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote 2100 rows" in result.stderr
    assert len((tmp_path / "d.csv").read_text().splitlines()) == 2101
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # the workers' spool is gone too
        ["src", "d.csv", "d.manifest.csv", "d.errors.csv", "d.build.json"]
    )


def test_the_worker_server_ends_without_tearing_down_its_imports():
    # Its exit hook runs first (hooks run last registered first) and ends the process at once:
    # hooks registered before it, and the interpreter's teardown, never run.
    code = "import atexit; atexit.register(print, 'torn down'); import digitprep.serverexit"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_the_worker_server_alone_imports_the_exit_hook():
    from digitprep import workers

    context = workers.worker_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        assert forkserver._forkserver._preload_modules[-1] == workers.SERVER_EXIT_MODULE
    code = "import sys, digitprep.entry, digitprep.cli, digitprep.build; print('digitprep.serverexit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
