"""digittrain predict on tables (Kaggle's test.csv), folders and many files: the CSV it writes."""

from __future__ import annotations

import csv
import gzip
import io
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_MNIST, write_image

from digitprep.cli import main as digitprep_main
from digitprep.csvio import read_onehot_csv
from digitprep.options import NormalizeOptions
from digittrain.cli import main
from digittrain.data import Scaler
from digittrain.fit import TrainingOptions, fit_network
from digittrain.modelio import load_model, model_bytes
from digittrain.predict import is_table, table_rows

KAGGLE_SAMPLE = SHARED_MNIST / "mnist_test_sample_kaggle.csv"
FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX]


def invoke(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


def train(data, folder, *options):
    """`digittrain` on a one-hot CSV, tested on itself, the model saved as FOLDER/m.npz."""
    result = invoke(
        main, ["--train", data, "--test", data, *options, "--save", folder / "m.npz", "--results", folder / "r.csv"]
    )
    assert result.exit_code == 0, result.output


def glyph(digit, font=0, at=(7, 22), scale=0.8, thickness=2, shear=0.0):
    """A clean 28x28 MNIST-like digit: white ink on black, peak 255 (digitprep leaves it as it is
    at 28x28 without deskew/centre), optionally sheared."""
    image = np.zeros((28, 28), np.uint8)
    cv2.putText(image, str(digit), at, FONTS[font], scale, 255, thickness)
    if shear:
        image = cv2.warpAffine(image, np.float32([[1, shear, -14 * shear], [0, 1, 0]]), (28, 28))
    return image


def glyph_set():
    """(images (30, 28, 28), labels): each digit in three fonts and places."""
    images, labels = [], []
    for f, at in zip(range(3), [(7, 22), (5, 20), (9, 24)]):
        for digit in range(10):
            images.append(glyph(digit, f, at))
            labels.append(digit)
    return np.stack(images), np.array(labels)


def write_table(path, images, labels=None, header="pixel"):
    """Kaggle's layouts: ``pixel0..pixel783`` (test.csv, no label; train.csv with ``label`` first)
    or, with header "1x1", the MNIST-as-CSV layout ``label,1x1..28x28``; header None: no header."""
    n, height, width = images.shape
    names = (
        [f"pixel{i}" for i in range(height * width)]
        if header == "pixel"
        else [f"{r}x{c}" for r in range(1, height + 1) for c in range(1, width + 1)]
    )
    rows = images.reshape(n, -1).astype(int)
    if labels is not None:
        names, rows = ["label", *names], np.hstack([np.asarray(labels)[:, None], rows])
    lines = ([",".join(names)] if header else []) + [",".join(map(str, row)) for row in rows.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A [784, 16, 10] relu model trained a little on clean glyphs, recorded as built by `digitprep
    mnist` at 28x28 without deskew or centring."""
    images, labels = glyph_set()
    scaler = Scaler.fit("unit", images.reshape(len(images), -1))
    options = TrainingOptions(hidden=(16,), epochs=40, batch_size=10, lr=0.01, seed=1)
    model, _ = fit_network(scaler.transform(images.reshape(len(images), -1)), labels, 10, options)
    metadata = {
        "classes": list(range(10)),
        "input_size": 784,
        "preprocessing": {"size": 28, "deskew": False, "center": False, "labels": "mnist"},
    }
    path = tmp_path_factory.mktemp("model") / "m.npz"
    path.write_bytes(model_bytes(model, scaler, metadata))
    return path


def forward(model_path, images):
    """(digits, probabilities) by a plain NumPy forward pass over the saved arrays (relu, /255)."""
    with np.load(model_path) as arrays:
        w1, b1, w2, b2 = (arrays[name].astype(np.float64) for name in ("W1", "b1", "W2", "b2"))
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    return probabilities.argmax(axis=1), probabilities


def read_csv(text):
    return list(csv.reader(io.StringIO(text)))


def five_images():
    return np.stack([glyph(3), glyph(7, 1, (5, 20)), glyph(0, 2), glyph(1), glyph(8, 1, (9, 24))])


def test_table_suffixes_decide_what_is_a_table(tmp_path):
    for name in ("test.csv", "T.CSV", "x.tsv", "x.txt", "test.csv.gz", "X.TXT.GZ"):
        assert is_table(tmp_path / name), name
    for name in ("a.png", "csv", "a.gz", "a.csv.png", "a.png.gz"):
        assert not is_table(tmp_path / name), name
    (tmp_path / "folder.csv").mkdir()
    assert not is_table(tmp_path / "folder.csv")


def test_unlabelled_table_gives_the_kaggle_submission(tmp_path, model_file):
    images = five_images()
    table = write_table(tmp_path / "test.csv", images)
    digits, _ = forward(model_file, images)
    assert len(set(digits.tolist())) > 1  # a model that tells rows apart, so the order is tested
    result = invoke(main, ["predict", model_file, table, "--out", tmp_path / "submission.csv"])
    assert result.exit_code == 0, result.output
    expected = "ImageId,Label\n" + "".join(f"{i},{d}\n" for i, d in enumerate(digits.tolist(), 1))
    assert (tmp_path / "submission.csv").read_text() == expected
    assert "5 predictions written to" in result.stderr
    printed = invoke(main, ["predict", model_file, table])  # no --out: the same CSV on stdout
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == expected


def test_probabilities_sum_to_one_and_their_argmax_is_the_label(tmp_path, model_file):
    images = five_images()
    table = write_table(tmp_path / "test.csv", images, header=None)
    result = invoke(main, ["predict", model_file, table, "--out", tmp_path / "p.csv", "--probabilities"])
    assert result.exit_code == 0, result.output
    header, *rows = read_csv((tmp_path / "p.csv").read_text())
    assert header == ["ImageId", "Label", *map(str, range(10))]
    assert [int(row[0]) for row in rows] == [1, 2, 3, 4, 5]
    values = np.array([[float(v) for v in row[2:]] for row in rows])
    assert all(re.fullmatch(r"\d\.\d{6}", v) for row in rows for v in row[2:])  # fixed decimals
    np.testing.assert_allclose(values.sum(axis=1), 1, atol=1e-5)
    assert values.argmax(axis=1).tolist() == [int(row[1]) for row in rows]
    _, expected = forward(model_file, images)
    np.testing.assert_allclose(values, expected, atol=2e-6)


def test_several_tables_continue_the_ids(tmp_path, model_file):
    images = five_images()
    first = write_table(tmp_path / "a.csv", images[:3])
    second = tmp_path / "b.csv.gz"
    second.write_bytes(gzip.compress(write_table(tmp_path / "b.csv", images[3:]).read_bytes()))
    whole = write_table(tmp_path / "whole.csv", images)
    result = invoke(main, ["predict", model_file, first, second, "--out", tmp_path / "two.csv"])
    assert result.exit_code == 0, result.output
    single = invoke(main, ["predict", model_file, whole, "--out", tmp_path / "one.csv"])
    assert single.exit_code == 0, single.output
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
    assert [row[0] for row in read_csv((tmp_path / "two.csv").read_text())[1:]] == ["1", "2", "3", "4", "5"]


def test_labelled_table_predicts_the_same_as_its_pixels(tmp_path, model_file):
    images = five_images()
    unlabelled = write_table(tmp_path / "test.csv", images)
    labelled = write_table(tmp_path / "train.csv", images, labels=[9, 9, 9, 9, 9])  # labels play no part
    for name, table in (("u.csv", unlabelled), ("l.csv", labelled)):
        result = invoke(main, ["predict", model_file, table, "--out", tmp_path / name])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "u.csv").read_text() == (tmp_path / "l.csv").read_text()


def test_table_options_read_other_layouts(tmp_path, model_file):
    images = five_images()
    write_table(tmp_path / "test.csv", images)
    plain = invoke(main, ["predict", model_file, tmp_path / "test.csv"])
    # Tab-separated, no header, 0-1 floats, the label last: the options `digitprep mnist` takes say so.
    values = np.hstack([images.reshape(5, -1) / 255, np.array([[4], [4], [4], [4], [4]])])
    lines = ["\t".join(repr(float(v)) if i < 784 else str(int(v)) for i, v in enumerate(row)) for row in values]
    (tmp_path / "other.tsv").write_text("\n".join(lines) + "\n")
    other = invoke(
        main, ["predict", model_file, tmp_path / "other.tsv", "--label-column", "last", "--value-range", "0-1"]
    )
    assert other.exit_code == 0, other.output
    assert plain.exit_code == 0 and other.stdout == plain.stdout


def test_unreadable_table_is_one_line_and_writes_nothing(tmp_path, model_file):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    result = invoke(main, ["predict", model_file, tmp_path / "bad.csv", "--out", tmp_path / "s.csv"])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"Error: {tmp_path / 'bad.csv'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no submission, no temporary


def test_blank_rows_still_get_a_label_and_one_warning(tmp_path, model_file):
    images = five_images()
    images[[1, 3]] = 0  # no ink at all
    table = write_table(tmp_path / "test.csv", images)
    result = invoke(main, ["predict", model_file, table, "--out", tmp_path / "s.csv"])
    assert result.exit_code == 0, result.output
    rows = read_csv((tmp_path / "s.csv").read_text())[1:]
    assert [int(row[0]) for row in rows] == [1, 2, 3, 4, 5]
    digits, _ = forward(model_file, images)  # the blank rows: the all-zero image's prediction
    assert [int(row[1]) for row in rows] == digits.tolist()
    assert result.stderr.splitlines() == [
        f"{table}: 2 of 5 rows blank after normalisation (no ink found; ImageId 2, 4): "
        "predicted from an all-zero image",
        f"5 predictions written to {tmp_path / 's.csv'}",
    ]


def test_folder_of_images_in_natural_order(tmp_path, model_file):
    folder = tmp_path / "imgs"
    pictures = {"img10.png": glyph(7, 1, (5, 20)), "img2.png": glyph(3), "sub/img1.png": glyph(0, 2)}
    for name, image in pictures.items():
        write_image(folder / name, image)
    (folder / "notes.md").write_text("not an image: not walked\n")
    (folder / "broken.png").write_bytes(b"nope")
    loose = write_image(tmp_path / "loose.png", glyph(1))
    result = invoke(main, ["predict", model_file, f"{folder}/", loose, "--out", tmp_path / "f.csv"])
    assert result.exit_code == 1  # broken.png could not be used; the others are still written
    assert f"{folder}/broken.png: cannot use: not an image" in result.stderr
    order = ["img2.png", "img10.png", "sub/img1.png"]  # natural order, subfolders where they fall
    digits, _ = forward(model_file, np.stack([pictures[name] for name in order] + [glyph(1)]))
    keys = [f"{folder}/{name}" for name in order] + [str(loose)]
    expected = [["File", "Label"]] + [[key, str(digit)] for key, digit in zip(keys, digits.tolist())]
    assert read_csv((tmp_path / "f.csv").read_text()) == expected
    printed = invoke(main, ["predict", model_file, folder])  # no --out: a line per image, as before
    assert printed.stdout.splitlines()[0].startswith(f"{folder}/img2.png: {digits[0]} (")
    assert len(printed.stdout.splitlines()) == 3


def test_tables_and_images_are_not_mixed(tmp_path, model_file):
    table = write_table(tmp_path / "test.csv", five_images())
    image = write_image(tmp_path / "a.png", glyph(3))
    result = invoke(main, ["predict", model_file, image, table])
    assert result.exit_code == 1
    assert "predict tables and images in separate runs" in result.stderr


def test_unwritable_out_fails_before_any_work(tmp_path, model_file):
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "file" / "submission.csv"
    # The table does not exist: reading it first would name it; the output is checked before.
    result = invoke(main, ["predict", model_file, tmp_path / "missing.csv", "--out", out])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {out}: cannot write ({tmp_path / 'file'} is a file, not a folder)"]


def slanted_set():
    """Off-centre, slanted glyphs, each distinct: deskew and centring change every one."""
    images, labels = [], []
    for i, (digit, shear) in enumerate((d, s) for s in (-0.3, 0.25) for d in range(10)):
        images.append(glyph(digit, i % 3, (2 + i % 9, 18 + i % 8), 0.6 + 0.02 * (i % 5), 2, shear))
        labels.append(digit)
    return np.stack(images), np.array(labels)


def test_deskewed_centred_table_gives_the_rows_digitprep_mnist_writes(tmp_path):
    images, labels = slanted_set()
    labelled = write_table(tmp_path / "mnist.csv", images, labels, header="1x1")
    built = invoke(
        digitprep_main,
        ["mnist", labelled, "--out", tmp_path / "d20.csv", "--sizes", 20, "--deskew", "--center", "--jobs", 1],
    )
    assert built.exit_code == 0, built.output
    pixels, built_labels, _ = read_onehot_csv(tmp_path / "d20.csv")
    assert built_labels.tolist() == labels.tolist()  # none dropped: the rows correspond one to one
    rows, blank = table_rows(images, 20, NormalizeOptions(deskew=True, center=True))
    assert not blank.any()
    np.testing.assert_array_equal(rows, pixels)
    plain, _ = table_rows(images, 20, NormalizeOptions())
    assert (plain != rows).any(axis=1).all()  # deskew and centring changed every row
    train(tmp_path / "d20.csv", tmp_path, "--hidden", 16, "--epochs", 5, "--batch-size", 8, "--lr", 0.01)
    unlabelled = write_table(tmp_path / "test.csv", images)
    result = invoke(main, ["predict", tmp_path / "m.npz", unlabelled, "--out", tmp_path / "s.csv"])
    assert result.exit_code == 0, result.output
    model, scaler, _ = load_model(tmp_path / "m.npz")
    expected = model.predict(scaler.transform(pixels))
    assert [int(row[1]) for row in read_csv((tmp_path / "s.csv").read_text())[1:]] == expected.tolist()


@pytest.mark.skipif(not KAGGLE_SAMPLE.exists(), reason="../shared/data/mnist is absent")
def test_kaggle_sample_without_labels_agrees_with_evaluate(tmp_path):
    lines = KAGGLE_SAMPLE.read_text().splitlines()
    labels = np.array([int(line.split(",", 1)[0]) for line in lines[1:]])
    unlabelled = tmp_path / "test.csv"
    unlabelled.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    built = invoke(digitprep_main, ["mnist", KAGGLE_SAMPLE, "--out", tmp_path / "k28.csv", "--quiet"])
    assert built.exit_code == 0, built.output
    pixels, built_labels, _ = read_onehot_csv(tmp_path / "k28.csv")
    assert built_labels.tolist() == labels.tolist()
    train(tmp_path / "k28.csv", tmp_path, "--hidden", 32, "--epochs", 2)
    result = invoke(main, ["predict", tmp_path / "m.npz", unlabelled, "--out", tmp_path / "submission.csv"])
    assert result.exit_code == 0, result.output
    rows = read_csv((tmp_path / "submission.csv").read_text())
    assert rows[0] == ["ImageId", "Label"]
    assert [int(row[0]) for row in rows[1:]] == list(range(1, len(labels) + 1))
    predicted = np.array([int(row[1]) for row in rows[1:]])
    model, scaler, _ = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(predicted, model.predict(scaler.transform(pixels)))
    evaluated = invoke(
        main, ["evaluate", tmp_path / "m.npz", "--test", tmp_path / "k28.csv", "--confusion", tmp_path / "c.png"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert f"accuracy = {(predicted == labels).mean():.4f}" in evaluated.stdout
