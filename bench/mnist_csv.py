"""Speed of the project's Kaggle MNIST CSV loader against a bare ``pandas.read_csv``, same run, same file.

The file is the 60 000 MNIST training images in the Kaggle layout (``label,1x1,...,28x28`` header,
then one row per image in IDX order), written once from the extracted MNIST PNGs into data/cache/
(from synthetic digits when ../shared/data is absent). Then, alternately so that both see the same
machine load:

- reference: ``pandas.read_csv(path, dtype=numpy.uint8)``, nothing else;
- project: ``digitprep.mnist.load_mnist(path)``: sniffing gzip/IDX/CSV, header detection, the same
  C parser, the label check and the reshape to (n, 28, 28) uint8 arrays.

Target: the project's median time at most 1.2x the reference's.

Usage: .venv/bin/python bench/mnist_csv.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np
from prep import CACHE, TARBALL, ensure_extracted  # bench/prep.py: the script's folder is on sys.path

from digitprep.mnist import load_mnist
from digitprep.tables import write_kaggle_csv

ROWS = 60_000
TARGET_RATIO = 1.2  # project seconds over reference seconds, at most
CSV_PATH = CACHE / "mnist_train_kaggle.csv"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed loads per side [default: 5]")
    return parser.parse_args()


def mnist_training_images() -> tuple[np.ndarray, np.ndarray, str]:
    """The 60 000 training images in IDX order and their labels, from the extracted PNGs."""
    ensure_extracted(TARBALL, CACHE)
    images = np.zeros((ROWS, 28, 28), np.uint8)
    labels = np.full(ROWS, -1, np.int64)
    for path in (CACHE / "training").glob("*/*.png"):
        index = int(path.stem)
        images[index] = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        labels[index] = int(path.parent.name)
    if (labels < 0).any():
        raise SystemExit(f"{CACHE / 'training'}: {int((labels < 0).sum())} of the {ROWS} PNGs are missing")
    return images, labels, "MNIST training PNGs"


def synthetic_images() -> tuple[np.ndarray, np.ndarray, str]:
    """Digit-like rows with MNIST's share of zero pixels (about 80%), when the real ones are absent."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, ROWS)
    images = rng.integers(1, 256, (ROWS, 28, 28)).astype(np.uint8)
    images[rng.random((ROWS, 28, 28)) < 0.8] = 0
    return images, labels, "synthetic rows (../shared/data absent)"


def ensure_csv() -> str:
    """Write the 60 000-row Kaggle CSV into data/cache once; returns where its rows came from."""
    if CSV_PATH.exists():
        return f"cached {CSV_PATH.name}"
    print(f"writing {CSV_PATH} (once) ...", flush=True)
    images, labels, origin = mnist_training_images() if TARBALL.exists() else synthetic_images()
    write_kaggle_csv(CSV_PATH, images, labels)
    return origin


def time_call(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    """Write the file if needed, time both sides alternately, print the medians and the ratio."""
    args = parse_args()
    import pandas as pd

    origin = ensure_csv()
    images, labels = load_mnist(CSV_PATH)  # also warms the page cache and checks the file
    if images.shape != (ROWS, 28, 28) or labels.shape != (ROWS,):
        print(f"{CSV_PATH}: loaded {images.shape} / {labels.shape}, expected ({ROWS}, 28, 28) / ({ROWS},)")
        return 1
    bare = pd.read_csv(CSV_PATH, dtype=np.uint8).to_numpy()
    if not (np.array_equal(bare[:, 0], labels) and np.array_equal(bare[:, 1:], images.reshape(ROWS, -1))):
        print("the loader's arrays differ from pandas' values")
        return 1
    del bare
    sides = {
        "reference": lambda: pd.read_csv(CSV_PATH, dtype=np.uint8),
        "project": lambda: load_mnist(CSV_PATH),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]  # neither side always goes first
        for name in order:
            times[name].append(time_call(sides[name]))
    size_mb = CSV_PATH.stat().st_size / 1e6
    print(f"\nKaggle CSV, {ROWS} rows x 785 columns, {size_mb:.0f} MB ({origin}); median of {args.repeats} each")
    print(f"{'':44}{'wall s':>8}{'CPU s':>8}  wall runs")
    labels = {"reference": "reference: pandas.read_csv(dtype=uint8)", "project": "project: digitprep.mnist.load_mnist"}
    medians = {}
    for name, runs in times.items():
        medians[name] = [statistics.median(run[kind] for run in runs) for kind in (0, 1)]
        wall, cpu = medians[name]
        print(f"{labels[name]:44}{wall:8.3f}{cpu:8.3f}  {' '.join(f'{run[0]:.3f}' for run in runs)}")
    wall_ratio = medians["project"][0] / medians["reference"][0]
    cpu_ratio = medians["project"][1] / medians["reference"][1]
    verdict = "PASS" if wall_ratio <= TARGET_RATIO else "FAIL"
    print(f"{'ratio project / reference':44}{wall_ratio:8.3f}{cpu_ratio:8.3f}  wall <= {TARGET_RATIO}: {verdict}")
    print("(CPU seconds barely depend on other processes' load: compare them when the wall times are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
