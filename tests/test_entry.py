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
    for i in range(300):  # more than one chunk: the worker pool is used
        image = np.zeros((12, 12), np.uint8)
        image[2:10, 3 + i % 4 : 6 + i % 4] = 255
        write_image(tmp_path / "src" / str(i % 10) / f"{i}.png", image)
    command = [sys.executable, "-m", "digitprep", "build", "src", "--size", "8", "--jobs", "2", "--out", "d.csv"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote 300 rows" in result.stderr
    assert len((tmp_path / "d.csv").read_text().splitlines()) == 301
