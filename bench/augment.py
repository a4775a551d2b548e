"""Speed of `digitprep.augment` against the plain per-image loop, on MNIST's test images (28x28).

Both are measured in the same run, in one process, on the same images and with the same kinds of
transforms at the default strengths:

- reference: what one would write first, per image: a ``np.random.default_rng([seed, image,
  copy])`` for its random numbers, ``cv2.warpAffine`` for rotation/shift/scale/shear,
  ``cv2.GaussianBlur`` of two uniform fields and ``cv2.remap`` for the elastic distortion, and
  ``cv2.dilate``/``cv2.erode`` blended for the stroke thickness;
- project: ``augment_stack`` on chunks of the stack: the same generator per copy for its random
  numbers, then one sampling map per image and one ``cv2.remap`` per batch of about a thousand.

The two do not produce the same pixels (different random numbers, one interpolation instead of two);
the comparison is of the work per image. Then ``digitprep augment`` on a CSV of the same images is
timed end to end with --jobs 1 and with all cores (interpreter start, reading, writing included).

Usage: .venv/bin/python bench/augment.py [--images N] [--copies K] [--repeats R]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from digitprep.augment import REFERENCE_SIDE, AugmentStrengths, augment_stack, copy_keys
from digitprep.augment_data import CHUNK_OUTPUTS
from digitprep.csvio import write_onehot_csv

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
LABELS = REPO.parent / "shared" / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=10000, metavar="N", help="MNIST test images used [10000]")
    parser.add_argument("--copies", type=int, default=1, metavar="K", help="augmented copies per image [1]")
    parser.add_argument("--repeats", type=int, default=3, metavar="R", help="timings per side, best kept [3]")
    return parser.parse_args()


def load_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    if not IMAGES.exists():
        sys.exit(f"{IMAGES} is missing: this benchmark needs ../shared/data")
    pixels = np.frombuffer(gzip.open(IMAGES).read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    labels = np.frombuffer(gzip.open(LABELS).read(), np.uint8, offset=8)[:n].astype(np.int64)
    return pixels, labels


def reference_copy(image: np.ndarray, index: int, copy: int, s: AugmentStrengths) -> np.ndarray:
    """One augmented copy the straightforward way: a generator and several OpenCV calls per image."""
    rng = np.random.default_rng([SEED, index, copy])
    side = image.shape[0]
    pixel = side / REFERENCE_SIDE
    angle, shear = rng.uniform(-s.rotation, s.rotation), rng.uniform(-s.shear, s.shear)
    scale = (1 + s.scale) ** rng.uniform(-1, 1)
    dx, dy = rng.uniform(-s.shift, s.shift, 2) * pixel
    centre = ((side - 1) / 2, (side - 1) / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 1] += matrix[:, 0] * np.tan(np.deg2rad(shear))
    matrix[:, 2] += (dx, dy)
    warped = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR)
    field = rng.uniform(-1, 1, (2, side, side)).astype(np.float32)
    sigma = s.elastic_sigma * pixel
    ksize = 2 * int(np.ceil(4 * sigma)) + 1
    alpha = s.elastic * pixel**2
    fx = cv2.GaussianBlur(field[0], (ksize, ksize), sigma) * alpha
    fy = cv2.GaussianBlur(field[1], (ksize, ksize), sigma) * alpha
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    distorted = cv2.remap(warped, xs + fx, ys + fy, cv2.INTER_LINEAR)
    amount = rng.uniform(-s.thickness, s.thickness) * pixel
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    stepped = cv2.dilate(distorted, kernel) if amount > 0 else cv2.erode(distorted, kernel)
    return cv2.addWeighted(distorted, 1 - abs(amount), stepped, abs(amount), 0)


def time_reference(images: np.ndarray, copies: int, s: AugmentStrengths) -> float:
    start = time.perf_counter()
    for copy in range(1, copies + 1):
        for index, image in enumerate(images):
            reference_copy(image, index, copy, s)
    return time.perf_counter() - start


def time_project(images: np.ndarray, copies: int, s: AugmentStrengths) -> float:
    start = time.perf_counter()
    for copy in range(1, copies + 1):
        keys = copy_keys(SEED, np.arange(len(images)), copy)
        for begin in range(0, len(images), CHUNK_OUTPUTS):  # the chunk size a task gets
            augment_stack(images[begin : begin + CHUNK_OUTPUTS], s, keys[begin : begin + CHUNK_OUTPUTS])
    return time.perf_counter() - start


def time_command(csv_path: Path, out: Path, copies: int, jobs: int) -> float:
    command = [str(Path(sys.executable).with_name("digitprep")), "augment", str(csv_path), "--out", str(out)]
    command += ["--copies", str(copies), "--jobs", str(jobs), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    cv2.setNumThreads(1)  # both sides on one core: the pool is measured separately below
    images, labels = load_mnist(args.images)
    strengths = AugmentStrengths()
    n = len(images) * args.copies
    print(f"{len(images)} MNIST test images x {args.copies} copies, default strengths, one process")
    # Alternated and repeated, best of each kept: other processes on the machine slow whichever
    # side happens to run while they do.
    reference, project = float("inf"), float("inf")
    for _ in range(args.repeats):
        reference = min(reference, time_reference(images, args.copies, strengths))
        project = min(project, time_project(images, args.copies, strengths))
    print(f"reference (per-image loop): {reference:6.2f} s  {n / reference:8.0f} images/s")
    print(f"project (augment_stack):    {project:6.2f} s  {n / project:8.0f} images/s")
    print(f"ratio: project is {reference / project:.1f}x the reference's speed")
    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / "in.csv"
        write_onehot_csv(csv_path, images.reshape(len(images), -1), labels, tuple(range(10)))
        one, every = float("inf"), float("inf")
        for _ in range(args.repeats):
            one = min(one, time_command(csv_path, Path(scratch) / "one.csv", args.copies, 1))
            every = min(every, time_command(csv_path, Path(scratch) / "all.csv", args.copies, 0))
        cores = os.cpu_count() or 1
        same = (Path(scratch) / "one.csv").read_bytes() == (Path(scratch) / "all.csv").read_bytes()
    print(f"digitprep augment CSV end to end: --jobs 1 {one:.2f} s, --jobs 0 ({cores} cores) {every:.2f} s, "
          f"ratio {one / every:.2f}; outputs byte-identical: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
