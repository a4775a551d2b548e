"""The Python API: digitprep.load_csv on a data set `digitprep build` made, digittrain.load_model's
predict/predict_proba/preprocess against a plain NumPy forward pass over the model file's arrays,
and `digittrain predict --top K --csv`."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, write_image
from sklearn.utils import Bunch

import digitprep
import digittrain
from digitprep.classes import DIGIT_NAMES
from digitprep.cli import main as digitprep_main
from digittrain.cli import main as digittrain_main
from digittrain.data import Scaler
from digittrain.fit import TrainingOptions, fit_network
from digittrain.modelio import model_bytes

SIZE = 8
# Each digit drawn three ways: place, stroke and size differ, so deskew and centring have work to do.
VARIANTS = [((20, 70), 6, 2.0), ((34, 86), 8, 1.8), ((12, 60), 4, 2.2)]


def invoke(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`digitprep build` over raw/<digit>/<n>.png (120x120, dark ink on light paper) at 8x8 with
    deskew and centring: (CSV path, {png path: raw image})."""
    folder = tmp_path_factory.mktemp("api")
    raw = {}
    for digit in range(10):
        for n, (at, thickness, scale) in enumerate(VARIANTS):
            image = drawn_digit(str(digit), at=at, thickness=thickness, scale=scale)
            raw[str(write_image(folder / "raw" / str(digit) / f"{n}.png", image))] = image
    out = folder / "digits.csv"
    result = invoke(
        digitprep_main, ["build", folder / "raw", "--sizes", SIZE, "--deskew", "--center", "--out", out, "-q"]
    )
    assert result.exit_code == 0, result.output
    return out, raw


def save_model(path, pixels, labels, classes, scale, build):
    """A [N, 16, len(classes)] relu model trained a little on the rows, as `digittrain --save` stores it."""
    scaler = Scaler.fit(scale, pixels)
    index = np.searchsorted(classes, labels)
    options = TrainingOptions(hidden=(16,), epochs=60, batch_size=5, lr=0.01, seed=2)
    model, _ = fit_network(scaler.transform(pixels), index, len(classes), options)
    metadata = {"classes": list(classes), "input_size": pixels.shape[1], "preprocessing": build}
    path.write_bytes(model_bytes(model, scaler, metadata))
    return path


@pytest.fixture(scope="module", params=["unit", "mnist", "standard"])
def model_path(request, built, tmp_path_factory):
    digits = digitprep.load_csv(built[0])
    path = tmp_path_factory.mktemp("model") / f"{request.param}.npz"
    return save_model(path, digits.data, digits.target, digits.classes, request.param, digits.build)


def forward(path, rows):
    """float64 probabilities (n, outputs) from the .npz alone, as the README documents the layout:
    x scaled as metadata["scale"] says, hidden = relu(x @ W + b), softmax of the last layer."""
    with np.load(path) as arrays:
        metadata = json.loads(arrays["metadata"].item())
        x = rows.astype(np.float64)
        if metadata["scale"] == "unit":
            x = x / 255
        elif metadata["scale"] == "mnist":
            x = 0.01 + 0.99 * x / 255
        else:
            x = (x - arrays["scale_mean"]) / arrays["scale_std"]
        layers = len([name for name in arrays.files if re.fullmatch(r"W\d+", name)])
        for i in range(1, layers + 1):
            x = x @ arrays[f"W{i}"].astype(np.float64) + arrays[f"b{i}"]
            if i < layers:
                assert metadata["activations"][i - 1] == "relu"
                x = np.maximum(x, 0)
    exp = np.exp(x - x.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def csv_rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_load_csv_gives_the_documented_types_and_the_built_rows(built):
    out, raw = built
    digits = digitprep.load_csv(out)
    assert isinstance(digits, Bunch)
    n = len(raw)
    assert digits.data.dtype == np.uint8 and digits.data.shape == (n, SIZE * SIZE)
    assert digits.images.dtype == np.uint8 and digits.images.shape == (n, SIZE, SIZE)
    assert digits.target.dtype == np.int64 and digits.target.shape == (n,)
    assert digits.classes == digits.target_names == tuple(range(10))
    assert digits.feature_names == [f"pixel{i}" for i in range(1, SIZE * SIZE + 1)]
    assert digits.frame is None and digits.filename == str(out)
    # The file read without digitprep: pixels, then one one-hot column per digit.
    header, *lines = csv_rows(out.read_text())
    values = np.array(lines, dtype=np.int64)
    np.testing.assert_array_equal(digits.data, values[:, : SIZE * SIZE])
    np.testing.assert_array_equal(digits.images, values[:, : SIZE * SIZE].reshape(n, SIZE, SIZE))
    np.testing.assert_array_equal(digits.target, values[:, SIZE * SIZE :].argmax(axis=1))
    assert header == digits.feature_names + [f"is{name}" for name in DIGIT_NAMES]
    # Every row's label is its image's folder, and the manifest names the image.
    assert isinstance(digits.manifest, pd.DataFrame) and len(digits.manifest) == n
    folders = [int(path.replace("\\", "/").split("/")[-2]) for path in digits.manifest["path"]]
    assert digits.target.tolist() == folders == sorted(folders)
    assert digits.manifest["label"].tolist() == [str(d) for d in folders]
    assert sorted(np.bincount(digits.target).tolist()) == [len(VARIANTS)] * 10
    assert digits.build["size"] == SIZE and digits.build["deskew"] is True and digits.build["rows"] == n
    # The images are the raw PNGs (dark on light) normalised: bright ink on black, corners empty.
    assert (digits.data.max(axis=1) > 200).all() and (digits.images[:, [0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()


def test_load_csv_as_frame_and_return_x_y(built):
    out, _ = built
    plain = digitprep.load_csv(out)
    framed = digitprep.load_csv(out, as_frame=True)
    frame = framed.frame
    assert list(frame.columns) == [*plain.feature_names, "label"]
    assert (frame.dtypes[:-1] == np.uint8).all() and frame.dtypes["label"] == np.int64
    np.testing.assert_array_equal(frame.to_numpy()[:, :-1], plain.data)
    np.testing.assert_array_equal(frame["label"], plain.target)
    assert isinstance(framed.data, pd.DataFrame) and isinstance(framed.target, pd.Series)
    assert framed.target.name == "label" and framed.images.shape == plain.images.shape
    X, y = digitprep.load_csv(out, return_X_y=True)
    assert X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X, plain.data)
    np.testing.assert_array_equal(y, plain.target)
    X, y = digitprep.load_csv(out, as_frame=True, return_X_y=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    assert X.shape == plain.data.shape and (X.dtypes == np.uint8).all() and y.dtype == np.int64


def test_load_csv_without_sidecars_and_on_a_bad_file(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("pixel1,pixel2,pixel3,isOne,isTwo\n0,128,255,0,1\n7,8,9,1,0\n")
    digits = digitprep.load_csv(path)
    assert digits.manifest is None and digits.build is None and digits.images is None  # 3 pixels: no square
    assert digits.classes == (1, 2) and digits.target.tolist() == [2, 1]
    assert digits.data.tolist() == [[0, 128, 255], [7, 8, 9]]
    path.write_text("pixel1,isOne\n256,1\n")
    with pytest.raises(digitprep.DatasetFormatError) as caught:
        digitprep.load_csv(path)
    assert str(caught.value).startswith(f"{path}: bad data") and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'none.csv'}: cannot read")):
        digitprep.load_csv(tmp_path / "none.csv")


def test_import_digitprep_loads_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, digitprep, digittrain; print(sorted({'numpy', 'pandas', 'cv2'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "[]\n"


def test_predict_is_the_argmax_of_a_numpy_forward_pass(built, model_path):
    digits = digitprep.load_csv(built[0])
    model = digittrain.load_model(model_path)
    expected = forward(model_path, digits.data)
    assert len(set(expected.argmax(axis=1).tolist())) > 3  # a model that tells rows apart
    predicted = model.predict(digits.data)
    assert predicted.dtype == np.int64 and predicted.shape == (len(digits.data),)
    np.testing.assert_array_equal(predicted, expected.argmax(axis=1))
    probabilities = model.predict_proba(digits.data)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(digits.data), 10)
    np.testing.assert_allclose(probabilities, expected, atol=2e-6)
    # The same rows as other numbers 0-255, and as the DataFrame load_csv gives.
    np.testing.assert_array_equal(model.predict(digits.data.astype(np.float64)), predicted)
    np.testing.assert_array_equal(model.predict(digitprep.load_csv(built[0], as_frame=True).data), predicted)
    assert model.classes == tuple(range(10)) and model.sizes == [SIZE * SIZE, 16, 10]
    assert model.metadata["preprocessing"] == digits.build and model.metadata["scale"] == model_path.stem
    assert model.predict(np.zeros((0, SIZE * SIZE), np.uint8)).shape == (0,)


def test_predict_gives_digits_not_class_positions(built, tmp_path):
    digits = digitprep.load_csv(built[0])
    keep = np.isin(digits.target, [3, 7])
    path = save_model(tmp_path / "m.npz", digits.data[keep], digits.target[keep], (3, 7), "unit", digits.build)
    model = digittrain.load_model(path)
    expected = np.array([3, 7])[forward(path, digits.data[keep]).argmax(axis=1)]
    assert set(expected.tolist()) == {3, 7}
    np.testing.assert_array_equal(model.predict(digits.data[keep]), expected)
    assert model.classes == (3, 7) and model.predict_proba(digits.data[keep]).shape == (keep.sum(), 2)


def test_preprocess_turns_raw_images_into_the_built_rows(built, model_path):
    out, raw = built
    digits = digitprep.load_csv(out)
    model = digittrain.load_model(model_path)
    # Written digit by digit, as build walks the folders: the rows' order.
    assert [Path(path).parts[-2:] for path in raw] == [Path(path).parts[-2:] for path in digits.manifest["path"]]
    images = np.stack(list(raw.values()))
    rows = model.preprocess(images)
    assert rows.dtype == np.uint8 and rows.shape == (len(images), SIZE * SIZE)
    np.testing.assert_array_equal(rows, digits.data)
    np.testing.assert_array_equal(model.predict(rows), model.predict(digits.data))
    blank = model.preprocess(np.full((1, 30, 30), 200, np.uint8))  # no ink: an all-zero row
    assert blank.tolist() == [[0] * SIZE * SIZE]


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((2, SIZE * SIZE + 1), np.uint8), f"X has {SIZE * SIZE + 1} columns, but this model takes 64: "),
        (np.zeros(SIZE * SIZE, np.uint8), "expected X of shape (n, 64), got (64,)"),
        (np.full((1, SIZE * SIZE), 256.0), "values of X outside 0-255 (0.0 to 256.0)"),
        (np.full((1, SIZE * SIZE), "1"), "expected X of numbers"),
    ],
)
def test_wrong_inputs_are_one_line_value_errors(built, tmp_path, X, message):
    digits = digitprep.load_csv(built[0])
    path = save_model(tmp_path / "m.npz", digits.data, digits.target, digits.classes, "unit", digits.build)
    model = digittrain.load_model(path)
    if message.startswith("values"):
        X[0, 0] = 0
    for method in (model.predict, model.predict_proba):
        with pytest.raises(ValueError) as caught:
            method(X)
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"expected images of shape \(n, height, width\)"):
        model.preprocess(np.zeros((30, 30), np.uint8))


def test_top_k_lines_and_csv(built, tmp_path):
    out, raw = built
    digits = digitprep.load_csv(out)
    model_file = save_model(tmp_path / "m.npz", digits.data, digits.target, digits.classes, "unit", digits.build)
    files = list(raw)[::4]
    rows = digittrain.load_model(model_file).preprocess(np.stack([raw[f] for f in files]))
    expected = forward(model_file, rows)
    order = np.argsort(-expected, axis=1)[:, :3]
    ranked = np.sort(expected, axis=1)[:, ::-1]
    assert (ranked[:, :3] - ranked[:, 1:4]).min() > 1e-4  # no near-ties: the order is well defined

    default = invoke(digittrain_main, ["predict", model_file, *files])
    assert default.exit_code == 0, default.output
    assert default.stdout.splitlines() == [
        f"{f}: {o[0]} ({p[o[0]]:.3f})" for f, o, p in zip(files, order.tolist(), expected.tolist())
    ]
    top = invoke(digittrain_main, ["predict", model_file, *files, "--top", 3])
    assert top.exit_code == 0, top.output
    assert top.stdout.splitlines() == [
        f"{f}: " + ", ".join(f"{d} ({p[d]:.3f})" for d in o)
        for f, o, p in zip(files, order.tolist(), expected.tolist())
    ]

    plain_csv = invoke(digittrain_main, ["predict", model_file, *files, "--csv"])
    assert plain_csv.exit_code == 0, plain_csv.output
    assert plain_csv.stdout == "File,Label\n" + "".join(f"{f},{o[0]}\n" for f, o in zip(files, order.tolist()))

    top_csv = invoke(digittrain_main, ["predict", model_file, *files, "--top", 3, "--csv"])
    assert top_csv.exit_code == 0, top_csv.output
    header, *lines = csv_rows(top_csv.stdout)
    assert header == ["File", "Label", "Probability", "Label_2", "Probability_2", "Label_3", "Probability_3"]
    assert [line[0] for line in lines] == files
    assert [[int(line[i]) for i in (1, 3, 5)] for line in lines] == order.tolist()
    values = np.array([[float(line[i]) for i in (2, 4, 6)] for line in lines])
    np.testing.assert_allclose(values, np.take_along_axis(expected, order, axis=1), atol=2e-6)
    assert all(re.fullmatch(r"\d\.\d{6}", line[i]) for line in lines for i in (2, 4, 6))

    # --out writes the same CSV; with --probabilities the per-class columns follow.
    written = invoke(digittrain_main, ["predict", model_file, *files, "--top", 3, "--out", tmp_path / "p.csv"])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "p.csv").read_text() == top_csv.stdout and written.stdout == ""
    both = invoke(digittrain_main, ["predict", model_file, *files, "--top", 2, "--probabilities"])
    header, *lines = csv_rows(both.stdout)
    assert header == ["File", "Label", "Probability", "Label_2", "Probability_2", *map(str, range(10))]
    assert all(line[2] == line[5 + int(line[1])] and line[4] == line[5 + int(line[3])] for line in lines)


def test_top_k_on_a_table_and_too_many(built, tmp_path):
    out, raw = built
    digits = digitprep.load_csv(out)
    model_file = save_model(tmp_path / "m.npz", digits.data, digits.target, digits.classes, "unit", digits.build)
    images = np.stack([cv2.resize(image, (28, 28), interpolation=cv2.INTER_AREA) for image in list(raw.values())[:5]])
    table = tmp_path / "test.csv"
    names = [f"pixel{i}" for i in range(784)]
    table.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in images.reshape(5, -1)))
    expected = forward(model_file, digittrain.load_model(model_file).preprocess(images))
    order = np.argsort(-expected, axis=1)[:, :2]
    result = invoke(digittrain_main, ["predict", model_file, table, "--top", 2])  # tables print the CSV
    assert result.exit_code == 0, result.output
    header, *lines = csv_rows(result.stdout)
    assert header == ["ImageId", "Label", "Probability", "Label_2", "Probability_2"]
    assert [[int(line[0]), int(line[1]), int(line[3])] for line in lines] == [
        [i, *o] for i, o in enumerate(order.tolist(), 1)
    ]
    too_many = invoke(digittrain_main, ["predict", model_file, table, "--top", 11, "--out", tmp_path / "x.csv"])
    assert too_many.exit_code == 2
    assert f"Invalid value for --top: 11: {model_file} has 10 classes" in too_many.output
    assert not (tmp_path / "x.csv").exists()


def test_a_table_of_blank_rows_is_predicted_from_zero_images(built, tmp_path):
    """Every image of a chunk blank: each still gets a label (from an all-zero row) and a warning."""
    digits = digitprep.load_csv(built[0])
    model_file = save_model(tmp_path / "m.npz", digits.data, digits.target, digits.classes, "unit", digits.build)
    table = tmp_path / "blank.csv"
    table.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 784) + "\n")
    result = invoke(digittrain_main, ["predict", model_file, table, "--top", 1])
    assert result.exit_code == 0, result.output
    probabilities = forward(model_file, np.zeros((1, SIZE * SIZE)))[0]
    best = int(probabilities.argmax())
    header, (image_id, label, probability) = csv_rows(result.stdout)
    assert header == ["ImageId", "Label", "Probability"] and [image_id, label] == ["1", str(best)]
    assert float(probability) == pytest.approx(probabilities[best], abs=2e-6)
    assert "1 of 1 rows blank after normalisation" in result.stderr
