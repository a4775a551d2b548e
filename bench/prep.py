"""Speed and memory of `digitprep build` against the original project's plain loop, on MNIST's PNGs.

Both are measured in the same run, on the same files (the 70 000 MNIST PNGs, 28x28 grey):

- reference: the loop the original project used, in one process: per file ``cv2.imread`` (grey),
  ``cv2.resize`` to 20x20 with ``INTER_AREA`` and a ``csv.writer`` row of 400 pixels + 10 one-hot
  values;
- project: ``digitprep build ... --sizes 20 --deskew --center --labels folder`` run as a subprocess
  and timed end to end (interpreter start, imports, file discovery, worker pool, sidecar files).

The project does more per image (a size guard on the header, format sniffing, polarity and paper
detection, ink bounding box, deskew, centring, a sha256 for the manifest); the target is at least
2 times the loop's images per second on the standard process pool, under 400 MB.

CPU time per image is printed for both sides as well: the reference loop's own process time, and
for the project the user + system time of every process in its tree (main process, forkserver,
workers), sampled from /proc like the memory. Unlike wall time it hardly depends on what else the
machine is running, so it shows where a slow run's time went; the targets stay on wall time.

Peak memory is the summed RSS of the whole process tree (the pool forks its workers), sampled every
50 ms from /proc. Pages a forked worker shares with its parent count once per process, so the sum
overstates the real footprint: it is the conservative figure the target is checked against. The
largest single process, ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, is reported beside it.

The files are read again right before each timed run, so neither side pays for a cold page cache:
these machines page out file data left unread for a few seconds (DAMON), so a single warm-up
before both runs left the project, timed second, reading part of its files from disk. The two
sides alternate ``--repeats`` times and the medians are compared, so a slow moment of the machine
falls on both.

Usage: .venv/bin/python bench/prep.py [--files N] [--jobs J] [--repeats R]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
TARBALL = REPO.parent / "shared" / "data" / "mnist" / "mnist_png.tar.gz"
CACHE = REPO / "data" / "cache"
SPLITS = ("training", "testing")
SIZE = 20
N_CLASSES = 10
TARGET_RATIO = 2.0  # project img/s over reference img/s, at least
TARGET_PEAK_MB = 400  # summed RSS of the project's process tree, below
SAMPLE_SECONDS = 0.05  # a sample reads every /proc/PID/stat (1-2 ms of CPU): taken from the project
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--files",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N files (sorted) of each split, training and testing [default: all]",
    )
    parser.add_argument("--jobs", type=int, default=0, help="passed to digitprep build --jobs [default: 0 = all cores]")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side, alternating [default: 3]")
    return parser.parse_args()


def ensure_extracted(tarball: Path, cache: Path) -> None:
    """Extract the MNIST PNGs into cache/training and cache/testing unless both are there.

    Extraction goes to a scratch folder first, so an interrupted run leaves no half-filled split.
    """
    if all((cache / split).is_dir() for split in SPLITS):
        return
    print(f"extracting {tarball} into {cache} (once) ...", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache))
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        for split in SPLITS:
            if not (cache / split).is_dir():
                (scratch / split).rename(cache / split)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def select_files(cache: Path, limit: int | None) -> list[Path]:
    """The PNGs of both splits as one sorted list; with ``limit``, the first N of each split."""
    files: list[Path] = []
    for split in SPLITS:
        files += sorted((cache / split).glob("*/*.png"))[:limit]
    return sorted(files)


def link_subset(files: list[Path], cache: Path, dest: Path) -> list[Path]:
    """Mirror ``files`` as symbolic links under dest/<split>/<digit>/; returns the split folders."""
    for path in files:
        link = dest / path.relative_to(cache)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return [dest / split for split in SPLITS]


def warm_page_cache(files: list[Path]) -> None:
    """Read every file once so that both timed runs find them in memory."""
    for path in files:
        path.read_bytes()


def run_reference(files: list[Path], out: Path) -> tuple[float, float]:
    """The original plain loop over ``files``; returns its wall time and CPU time in seconds."""
    start, start_cpu = time.perf_counter(), time.process_time()
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        for path in files:
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            small = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            onehot = [0] * N_CLASSES
            onehot[int(path.parent.name)] = 1
            writer.writerow(small.ravel().tolist() + onehot)
    return time.perf_counter() - start, time.process_time() - start_cpu


def tree_usage(root: int) -> tuple[int, dict[int, float]]:
    """Summed resident memory in bytes of process ``root`` and all its descendants, and the CPU
    seconds (user + system) each of them has used so far, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # the process ended between the listing and the read
            continue
        # After the ")" closing the command name: state, ppid, ... utime, stime at 11, 12 (clock
        # ticks) and rss (pages) at index 21.
        fields = stat.rsplit(b")", 1)[1].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE_BYTES
        cpu[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, tree, pending = 0, {}, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        tree[pid] = cpu.get(pid, 0.0)
        pending += children.get(pid, [])
    return total, tree


def run_project(command: list[str]) -> tuple[float, int, int, float, subprocess.CompletedProcess]:
    """Run ``command``; returns (wall seconds, peak summed RSS of its tree, largest single
    process's maxrss, both in bytes, CPU seconds of the whole tree, and the completed process
    with its captured output). The CPU time is the last sample of each process, so a process's
    final SAMPLE_SECONDS may be missing: a slight underestimate."""
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample(pid: int) -> None:
        nonlocal peak
        while not done.is_set():
            rss, tree = tree_usage(pid)
            peak = max(peak, rss)
            for child, seconds in tree.items():
                cpu[child] = max(cpu.get(child, 0.0), seconds)
            done.wait(SAMPLE_SECONDS)

    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = threading.Thread(target=sample, args=(process.pid,), daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return seconds, peak, maxrss, sum(cpu.values()), completed


def check_output(csv_path: Path, expected_rows: int) -> str | None:
    """None when the CSV has a header and ``expected_rows`` rows of 400 + 10 columns, else why not."""
    columns = SIZE * SIZE + N_CLASSES
    with open(csv_path, "rb") as handle:
        header = handle.readline()
        if header.count(b",") + 1 != columns:
            return f"header has {header.count(b',') + 1} columns, expected {columns}"
        rows = 0
        for line in handle:
            rows += 1
            if line.count(b",") + 1 != columns:
                return f"row {rows} has {line.count(b',') + 1} columns, expected {columns}"
    if rows != expected_rows:
        return f"{rows} rows, expected {expected_rows}"
    return None


def verdict(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def table_line(measure: str, value: str, target: str = "", result: str = "") -> str:
    """One aligned line of the result table."""
    return f"{measure:<44}{value:>22}  {target:>8}  {result}".rstrip()


def print_report(
    n_files: int,
    jobs: int,
    reference_s: tuple[float, float],
    project_s: tuple[float, float],
    peak: int,
    maxrss: int,
    problem: str | None,
) -> None:
    """The result table: speeds, ratio and memory against their targets, and the output check."""
    (reference_s, reference_cpu), (project_s, project_cpu) = reference_s, project_s
    reference_rate, project_rate = n_files / reference_s, n_files / project_s
    ratio = project_rate / reference_rate
    peak_mb = peak / MB
    columns = SIZE * SIZE + N_CLASSES
    print(f"\nMNIST, {n_files} PNGs -> {SIZE}x{SIZE} one-hot CSV; {os.cpu_count()} CPUs; digitprep --jobs {jobs}")
    print("median run of each side:")
    print(table_line("measure", "value", "target", "result"))
    print(table_line("reference: imread + resize + csv.writer", f"{reference_rate:.0f} img/s ({reference_s:.2f} s)"))
    print(table_line("project: digitprep build --deskew --center", f"{project_rate:.0f} img/s ({project_s:.2f} s)"))
    print(table_line("ratio project / reference", f"{ratio:.2f}", f">= {TARGET_RATIO}", verdict(ratio >= TARGET_RATIO)))
    # CPU time does not depend on what else the machine runs: it says where the wall time went.
    print(table_line("CPU per image: reference (1 process)", f"{reference_cpu / n_files * 1e6:.1f} us"))
    print(table_line("CPU per image: project (all processes)", f"{project_cpu / n_files * 1e6:.1f} us"))
    memory = verdict(peak_mb < TARGET_PEAK_MB)
    print(table_line("peak memory, summed RSS of process tree", f"{peak_mb:.0f} MB", f"< {TARGET_PEAK_MB}", memory))
    print(table_line("largest single process (ru_maxrss)", f"{maxrss / MB:.0f} MB"))
    check = "OK" if problem is None else f"FAIL, {problem}"
    print(f"output check: {n_files} rows + header, {columns} columns: {check}")


def main() -> int:
    """Extract, select, time both sides, check the output, print the table; 0 whatever the verdict."""
    args = parse_args()
    if not TARBALL.exists():
        print(f"MNIST tarball not found at {TARBALL}; nothing to measure (the benchmark needs ../shared/data).")
        return 0
    digitprep = Path(sys.executable).parent / "digitprep"
    if not digitprep.exists():
        print(f"no digitprep entry point next to {sys.executable}; run this with the project's .venv/bin/python")
        return 1
    ensure_extracted(TARBALL, CACHE)
    files = select_files(CACHE, args.files)
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        tmp = Path(tmp)
        sources = [CACHE / split for split in SPLITS] if args.files is None else link_subset(files, CACHE, tmp / "src")
        out = tmp / "mnist.csv"
        command = [str(digitprep), "build", *map(str, sources), "--sizes", str(SIZE), "--deskew", "--center"]
        command += ["--labels", "folder", "--quiet", "--jobs", str(args.jobs), "--out", str(out)]
        print(f"reference: plain loop over {len(files)} files; project: {' '.join(command[1:])}", flush=True)
        references, projects, peak, maxrss = [], [], 0, 0
        for repeat in range(1, args.repeats + 1):
            warm_page_cache(files)
            references.append(run_reference(files, tmp / "reference.csv"))
            warm_page_cache(files)
            project_s, run_peak, maxrss, project_cpu, completed = run_project(command)
            if completed.returncode != 0:
                reason = completed.stderr.decode(errors="replace")
                print(f"digitprep build failed (exit {completed.returncode}):\n{reason}")
                return 1
            projects.append((project_s, project_cpu))
            peak = max(peak, run_peak)
            ratio = references[-1][0] / project_s
            print(f"  run {repeat}: reference {references[-1][0]:.2f} s, project {project_s:.2f} s, ratio {ratio:.2f}")
        problem = check_output(out, len(files))
    print_report(len(files), args.jobs, median_run(references), median_run(projects), peak, maxrss, problem)
    return 0


def median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The (wall, CPU) of the run with the median wall time."""
    return sorted(runs)[len(runs) // 2]


if __name__ == "__main__":
    sys.exit(main())
