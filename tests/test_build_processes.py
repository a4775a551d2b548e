"""`digitprep build` as a process: parallel runs give the same bytes, and killing, terminating or
flooding a run ends it cleanly (one line, no output, no temporaries, no process left)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import descendants, drawn_digit, gone_within, png_of_zeros, write_image

BUILD = [sys.executable, "-m", "digitprep", "build"]


def children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return {int(p) for p in handle.read().split()}
    except OSError:
        return set()


def wait_for_workers(process: subprocess.Popen, count: int = 2, timeout: float = 60) -> list[int]:
    """The pids of the run's worker processes (the forkserver's children) once ``count`` run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        workers = [pid for pid in descendants(process.pid) if pid not in children(process.pid)]
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    raise AssertionError("the workers never started")


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory):
    """600 large drawings (hard links to a few files): seconds of work for two workers."""
    root = tmp_path_factory.mktemp("slow")
    for digit in range(3):
        image = cv2.resize(drawn_digit(str(digit)), (900, 900), interpolation=cv2.INTER_LINEAR)
        first = write_image(root / str(digit) / "0.png", image)
        for n in range(1, 200):
            os.link(first, root / str(digit) / f"{n}.png")
    return root


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_killed_worker_is_a_one_line_error_with_nothing_left(slow_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = [*BUILD, slow_source, "--sizes", "20", "--jobs", "2", "--quiet", "--out", out / "x.csv"]  # no Found line
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = wait_for_workers(process)
    family = descendants(process.pid)
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.splitlines() == [
        "Error: build: a worker process died (killed or out of memory); rerun with --jobs 1 to see which file"
    ]
    assert listing(out) == [] and gone_within(family)


def test_sigterm_stops_a_build_cleanly_with_exit_143(slow_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.csv").write_text("previous\n")
    command = [*BUILD, slow_source, "--sizes", "20", "--deskew", "--center", "--jobs", "2", "--out", out / "x.csv"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_workers(process)
    family = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in stderr
    assert listing(out) == ["x.csv"] and (out / "x.csv").read_text() == "previous\n"
    assert gone_within(family)


def test_sigterm_while_the_pool_is_still_starting_ends_the_run_too(slow_source, tmp_path):
    # A signal landing while a worker is being started once hung the run (the worker could not be
    # terminated), then let a half-started worker print a traceback.
    for attempt in range(3):
        out = tmp_path / str(attempt)
        command = [*BUILD, slow_source, "--sizes", "20", "--jobs", "2", "--out", out / "x.csv"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not descendants(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        family = descendants(process.pid)
        time.sleep(0.05 * attempt)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143 and "Traceback" not in stderr, stderr
        assert gone_within(family + descendants(process.pid))
        assert not out.exists() or listing(out) == []


def test_a_killed_run_leaves_workers_that_exit_quietly_and_temporaries_the_next_run_sweeps(slow_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = [*BUILD, slow_source, "--sizes", "20", "--jobs", "2", "--quiet", "--out", out / "x.csv"]  # no Found line
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_workers(process)
    family = descendants(process.pid)
    time.sleep(0.5)  # the outputs' temporaries exist by now
    process.kill()
    _, stderr = process.communicate(timeout=60)
    assert gone_within(family)  # the workers saw their parent go
    # ... and said nothing; Python's resource tracker may note the pool's semaphores it cleaned up.
    assert all("resource_tracker" in line for line in stderr.splitlines()), stderr
    left = listing(out)
    assert left and all(name.startswith(".x") and name.endswith(".tmp") for name in left)
    small = tmp_path / "small"
    write_image(small / "1" / "a.png", drawn_digit("1"))
    rerun = subprocess.run([*BUILD, small, "--out", out / "x.csv"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert listing(out) == ["x.build.json", "x.csv", "x.errors.csv", "x.manifest.csv"]


def test_ten_thousand_unusable_files_under_long_paths(tmp_path):
    # Every chunk's error list is more than half a megabyte: it used to fill the pool's pipe and hang.
    folder = tmp_path / "src" / ("a" * 200) / ("b" * 200) / ("c" * 180) / "3"
    folder.mkdir(parents=True)
    for n in range(10_000):
        (folder / f"{n}.png").touch()
    write_image(tmp_path / "src" / "1" / "a.png", drawn_digit("1"))  # a row: a build of none writes nothing
    out = tmp_path / "e.csv"
    result = subprocess.run(
        [*BUILD, tmp_path / "src", "--out", out, "--quiet", "--jobs", "2"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "e.errors.csv").read_text().splitlines()
    assert len(lines) == 10_001 and all(line.endswith(".png,empty file") for line in lines[1:])
    assert len(lines[1]) > 600 and "wrote 1 rows" in result.stderr


def test_a_small_png_that_decodes_to_half_a_gigabyte_is_refused_before_decoding(tmp_path):
    big = png_of_zeros(8000, 8000, bit_depth=16, colour_type=6)  # 16-bit RGBA, 8000x8000
    (tmp_path / "src" / "1").mkdir(parents=True)
    (tmp_path / "src" / "1" / "big.png").write_bytes(big)
    write_image(tmp_path / "src" / "2" / "fine.png", drawn_digit("2"))
    command = ["/usr/bin/time", "-f", "%M", *BUILD, tmp_path / "src", "--out", tmp_path / "b.csv", "--jobs", "1"]
    if not os.path.exists("/usr/bin/time"):
        command = command[3:]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.errors.csv").read_text().splitlines()[1] == (
        "src/1/big.png,refused: 8000x8000 x 4 channels x 2 bytes = 488 MB decoded: over the limit of 256 MB"
    ).replace("src/", f"{os.path.relpath(tmp_path / 'src')}/")
    if command[0] == "/usr/bin/time":
        assert int(result.stderr.splitlines()[-1]) < 300_000  # KB: nothing near 512 MB was allocated


def varied_digits(root, count: int, seed: int = 0):
    """``count`` drawn digits of varied size, slant, thickness and position."""
    rng = np.random.default_rng(seed)
    for n in range(count):
        digit = int(rng.integers(10))
        canvas = int(rng.integers(40, 140))
        image = drawn_digit(str(digit), canvas, (canvas // 5, canvas * 3 // 4), canvas / 50, int(rng.integers(2, 9)))
        shear = np.float32([[1, rng.uniform(-0.4, 0.4), 0], [0, 1, 0]])
        image = cv2.warpAffine(image, shear, (canvas, canvas), borderValue=255)
        write_image(root / str(digit) / f"{n}.png", image)


def test_a_row_is_the_same_built_alone_or_among_two_thousand_files_and_whatever_the_jobs(tmp_path):
    varied_digits(tmp_path / "src", 2000)
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"all{jobs}"
        command = [*BUILD, tmp_path / "src", "--sizes", "20,8", "--deskew", "--center", "--quiet"]
        result = subprocess.run([*command, "--jobs", jobs, "--out", out / "d.csv"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        outputs[jobs] = {name: (out / name).read_bytes() for name in listing(out)}
    assert outputs["1"] == outputs["2"] and len(outputs["1"]) == 8
    rows = {size: outputs["2"][f"d_{size}.csv"].decode().splitlines()[1:] for size in (20, 8)}
    paths = [line.split(",")[0] for line in outputs["2"]["d_20.manifest.csv"].decode().splitlines()[1:]]
    for position in (0, 777, 1999):
        alone = tmp_path / f"alone{position}"
        source = tmp_path / "src" / paths[position].split("src/", 1)[1]
        command = [*BUILD, source, "--sizes", "20,8", "--deskew", "--center", "--out", alone / "d.csv"]
        assert subprocess.run(command, capture_output=True).returncode == 0
        for size in (20, 8):
            assert (alone / f"d_{size}.csv").read_text().splitlines()[1] == rows[size][position]


def test_the_full_mnist_test_set_with_default_jobs_equals_one_job(mnist_png_root, tmp_path):
    outputs = []
    for jobs in ([], ["--jobs", "1"]):
        out = tmp_path / f"run{len(outputs)}"
        command = [*BUILD, mnist_png_root / "testing", "--sizes", "20", "--deskew", "--center", "--out", out / "t.csv"]
        result = subprocess.run([*command, "--quiet", *jobs], capture_output=True, text=True)
        assert result.returncode == 0 and "wrote 10000 rows" in result.stderr, result.stderr
        outputs.append({name: (out / name).read_bytes() for name in listing(out)})
    assert outputs[0] == outputs[1]
    shutil.rmtree(tmp_path)
