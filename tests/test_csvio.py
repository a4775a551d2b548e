"""One-hot CSV format: exact text and round trip."""

import csv
import io

import numpy as np
import pytest

from digitprep.classes import format_classes, onehot_column_names, parse_classes
from digitprep.csvio import (
    DatasetFormatError,
    encode_uint8_rows,
    read_onehot_csv,
    write_onehot_csv,
)


def test_encoder_matches_the_csv_module():
    matrix = np.random.default_rng(1).integers(0, 256, (50, 17)).astype(np.uint8)
    matrix[0] = [0, 9, 10, 99, 100, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255]
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows(matrix.tolist())
    assert encode_uint8_rows(matrix) == expected.getvalue().encode()


def test_file_text_is_the_original_format(tmp_path):
    path = tmp_path / "d.csv"
    write_onehot_csv(path, np.array([[0, 255, 7, 30]], np.uint8), np.array([2]), (1, 2, 3, 4, 5))
    assert path.read_text() == "pixel1,pixel2,pixel3,pixel4,isOne,isTwo,isThree,isFour,isFive\n0,255,7,30,0,1,0,0,0\n"


def test_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (30, 64)).astype(np.uint8)
    labels = rng.integers(0, 10, 30)
    write_onehot_csv(tmp_path / "r.csv", pixels, labels, tuple(range(10)))
    back_pixels, back_labels, classes = read_onehot_csv(tmp_path / "r.csv")
    assert np.array_equal(back_pixels, pixels) and np.array_equal(back_labels, labels)
    assert classes == tuple(range(10))


def test_bad_csv_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("pixel1,pixel2,isOne,isTwo\n1,2,1,1\n")
    with pytest.raises(DatasetFormatError, match="row 1 is not a valid one-hot"):
        read_onehot_csv(path)
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DatasetFormatError, match="pixel1"):
        read_onehot_csv(path)


@pytest.mark.parametrize(
    "spec, classes", [("0-9", tuple(range(10))), ("1-5", (1, 2, 3, 4, 5)), ("0,3,7-9", (0, 3, 7, 8, 9))]
)
def test_class_sets(spec, classes):
    assert parse_classes(spec) == classes
    assert parse_classes(format_classes(classes)) == classes


def test_class_column_names():
    assert onehot_column_names((1, 2, 3, 4, 5)) == ["isOne", "isTwo", "isThree", "isFour", "isFive"]
    with pytest.raises(ValueError):
        parse_classes("5-1")
