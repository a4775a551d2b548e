"""On the real MNIST from ../shared/data (skipped when it is absent): `build` on the MNIST PNGs, and
`digitprep mnist` on the t10k IDX files, run as a user runs it (a subprocess, default options)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from click.testing import CliRunner
from conftest import SHARED_MNIST

from digitprep.cli import main
from digitprep.csvio import read_onehot_csv

T10K_IMAGES = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
T10K_LABELS = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
SIDECARS = ("{}.csv", "{}.manifest.csv", "{}.errors.csv", "{}.build.json")


def build(args):
    result = CliRunner().invoke(main, ["build", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def digitprep(*args, cwd):
    """Run ``python -m digitprep ARGS`` in ``cwd``; returns its stderr and how long it took."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "digitprep", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr, time.monotonic() - started


def data_set(folder, stem="X"):
    """A data set's four files (name -> bytes)."""
    return {pattern.format(stem): (folder / pattern.format(stem)).read_bytes() for pattern in SIDECARS}


def test_size_28_without_normalisation_reproduces_every_test_image(mnist_png_root, t10k, tmp_path):
    out = tmp_path / "t28.csv"
    build([mnist_png_root / "testing", "--sizes", 28, "--labels", "folder", "--no-deskew", "--no-center", "--out", out])
    pixels, labels, _ = read_onehot_csv(out)
    manifest = pd.read_csv(tmp_path / "t28.manifest.csv")
    index = manifest["path"].str.extract(r"/(\d+)\.png$")[0].astype(int).to_numpy()
    images, true_labels = t10k
    assert len(pixels) == 10_000 and sorted(index) == list(range(10_000))
    assert np.array_equal(pixels, images[index].reshape(10_000, 784))
    assert np.array_equal(labels, true_labels[index])


def test_size_20_deskew_center_gives_valid_rows(mnist_png_root, tmp_path):
    out = tmp_path / "t20.csv"
    build([mnist_png_root / "testing", "--sizes", 20, "--deskew", "--center", "--labels", "folder", "--out", out])
    frame = pd.read_csv(out)
    assert frame.shape == (10_000, 410)
    onehot = frame.iloc[:, 400:].to_numpy()
    assert ((onehot == 0) | (onehot == 1)).all() and (onehot.sum(axis=1) == 1).all()
    pixels = frame.iloc[:, :400].to_numpy().reshape(-1, 20, 20)
    assert pixels.max() == 255 and pixels[:, 0, :].mean() < 1  # ink inside, background at the edges
    assert (tmp_path / "t20.errors.csv").read_text() == "path,reason\n"


def test_mnist_t10k_at_28_is_the_idx_pixels_and_the_same_on_one_job(t10k, tmp_path):
    stderr, seconds = digitprep("mnist", T10K_IMAGES, T10K_LABELS, "--sizes", 28, "--out", "all/X.csv", cwd=tmp_path)
    print(f"mnist t10k --sizes 28, default --jobs: {seconds:.1f} s")
    assert stderr == "wrote 10000 rows to all/X.csv\n"
    pixels, labels, classes = read_onehot_csv(tmp_path / "all" / "X.csv")
    assert classes == tuple(range(10)) and pixels.shape == (10_000, 784)
    assert np.array_equal(pixels, t10k[0].reshape(10_000, 784)) and np.array_equal(labels, t10k[1])
    manifest = (tmp_path / "all" / "X.manifest.csv").read_text().splitlines()
    source = Path(os.path.relpath(T10K_IMAGES, tmp_path)).as_posix()  # as given, relative to the run's folder
    assert len(manifest) == 10_001 and manifest[1].split(",")[:4] == [f"{source}#0", "7", "", "mnist"]
    assert manifest[-1].startswith(f"{source}#9999,6,")
    assert (tmp_path / "all" / "X.errors.csv").read_text() == "path,reason\n"
    record = json.loads((tmp_path / "all" / "X.build.json").read_text())
    assert (record["rows"], record["skipped"], record["size"], record["labels"]) == (10_000, 0, 28, "mnist")
    digitprep("mnist", T10K_IMAGES, T10K_LABELS, "--sizes", 28, "--jobs", 1, "--out", "one/X.csv", cwd=tmp_path)
    assert data_set(tmp_path / "one") == data_set(tmp_path / "all")


def test_mnist_t10k_deskewed_and_centred_is_the_same_on_one_and_two_jobs(t10k, tmp_path):
    options = ["--sizes", 20, "--deskew", "--center"]
    for jobs in (1, 2):
        _, seconds = digitprep("mnist", T10K_IMAGES, *options, "--jobs", jobs, "--out", f"j{jobs}/X.csv", cwd=tmp_path)
        print(f"mnist t10k --sizes 20 --deskew --center --jobs {jobs}: {seconds:.1f} s")
    assert data_set(tmp_path / "j1") == data_set(tmp_path / "j2")
    pixels, labels, _ = read_onehot_csv(tmp_path / "j2" / "X.csv")
    assert pixels.shape == (10_000, 400) and np.array_equal(labels, t10k[1])
    images = pixels.reshape(-1, 20, 20)
    assert images.max() == 255 and images[:, 0, :].mean() < 1  # ink inside, background at the edges
    assert json.loads((tmp_path / "j2" / "X.build.json").read_text())["deskew"] is True


def test_mnist_t10k_png_tree_is_the_same_on_one_and_two_jobs(t10k, tmp_path):
    trees = []
    for jobs in (1, 2):
        _, seconds = digitprep("mnist", T10K_IMAGES, "--out-dir", f"tree{jobs}", "--jobs", jobs, cwd=tmp_path)
        print(f"mnist t10k --out-dir --jobs {jobs}: {seconds:.1f} s")
        root = tmp_path / f"tree{jobs}"
        trees.append({p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.png")})
    assert trees[0] == trees[1] and len(trees[0]) == 10_000
    images, labels = t10k
    for name, data in trees[1].items():
        digit, index = name.removesuffix(".png").split("/")
        assert int(digit) == labels[int(index)]
        assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), images[int(index)])
