"""On the real MNIST PNGs from ../shared/data (skipped when it is absent)."""

import numpy as np
import pandas as pd
from click.testing import CliRunner

from digitprep.cli import main
from digitprep.csvio import read_onehot_csv


def build(args):
    result = CliRunner().invoke(main, ["build", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def test_size_28_without_normalisation_reproduces_every_test_image(mnist_png_root, t10k, tmp_path):
    out = tmp_path / "t28.csv"
    build([mnist_png_root / "testing", "--size", 28, "--labels", "folder", "--out", out])
    pixels, labels, _ = read_onehot_csv(out)
    manifest = pd.read_csv(tmp_path / "t28.manifest.csv")
    index = manifest["path"].str.extract(r"/(\d+)\.png$")[0].astype(int).to_numpy()
    images, true_labels = t10k
    assert len(pixels) == 10_000 and sorted(index) == list(range(10_000))
    assert np.array_equal(pixels, images[index].reshape(10_000, 784))
    assert np.array_equal(labels, true_labels[index])


def test_size_20_deskew_center_gives_valid_rows(mnist_png_root, tmp_path):
    out = tmp_path / "t20.csv"
    build([mnist_png_root / "testing", "--size", 20, "--deskew", "--center", "--labels", "folder", "--out", out])
    frame = pd.read_csv(out)
    assert frame.shape == (10_000, 410)
    onehot = frame.iloc[:, 400:].to_numpy()
    assert ((onehot == 0) | (onehot == 1)).all() and (onehot.sum(axis=1) == 1).all()
    pixels = frame.iloc[:, :400].to_numpy().reshape(-1, 20, 20)
    assert pixels.max() == 255 and pixels[:, 0, :].mean() < 1  # ink inside, background at the edges
    assert (tmp_path / "t20.errors.csv").read_text() == "path,reason\n"
