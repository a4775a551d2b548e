"""`digitprep.tables.read_table`: every MNIST-like table layout (separators, headers, label columns, labels
files, value ranges, shapes, transposed images), each on a small table written by the test with known
labels and pixels, and each ambiguous or bad table a one-line error naming the option that settles it,
from the library and from `digitprep mnist`."""

import gzip
import subprocess
import sys

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO

from digitprep import options
from digitprep.cli import main
from digitprep.csvio import read_onehot_csv
from digitprep.mnist import MnistFormatError, load_mnist, load_sklearn_digits, write_idx
from digitprep.tables import TableFormatError, read_table, write_kaggle_csv

OPENML_FIELD = REPO.parent / "shared" / "field" / "openml-label-last" / "mnist_784.csv"


def digits(n: int, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, side, side) images with a blank one-pixel border, as MNIST's, and int64 labels 0-9 with
    at least one non-zero)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side), np.uint8)
    images[:, 1:-1, 1:-1] = rng.integers(0, 256, (n, side - 2, side - 2))
    labels = rng.integers(0, 10, n)
    labels[0] = 7
    return images, labels.astype(np.int64)


def write_rows(path, rows, sep=",", header=None, fmt=str, gz=False):
    """A table: one line per row of ``rows`` (values formatted by ``fmt``), the header first if given."""
    lines = [sep.join(header)] if header else []
    lines += [sep.join(fmt(value) for value in row) for row in rows]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def pixel_names(count, first=1):
    return [f"pixel{i}" for i in range(first, first + count)]


def flat(images):
    return images.reshape(len(images), -1)


def run(*args):
    """`digitprep ARGS` in process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_table(result, images, labels):
    got_images, got_labels = result
    assert got_images.dtype == np.uint8 and got_images.shape == images.shape
    assert np.array_equal(got_images, images)
    if labels is None:
        assert got_labels is None
    else:
        assert got_labels.dtype == np.int64 and np.array_equal(got_labels, labels)


# --- layouts -----------------------------------------------------------------------------------


def test_openml_layout_label_last_found_by_header_name(tmp_path):
    images, labels = digits(6)
    rows = np.hstack((flat(images), labels[:, None]))
    path = write_rows(tmp_path / "openml.csv", rows, header=[*pixel_names(64), "class"])
    assert_table(read_table(path), images, labels)


def test_openml_field_file_reads_its_true_labels():
    if not OPENML_FIELD.exists():
        pytest.skip("../shared/field is absent")
    images, labels = read_table(OPENML_FIELD)
    assert labels.tolist() == [3, 1, 4, 5, 9]
    raw = pd.read_csv(OPENML_FIELD).to_numpy()
    assert images.shape == (5, 28, 28) and np.array_equal(flat(images), raw[:, :784])


def test_openml_field_file_through_digitprep_mnist(tmp_path):
    if not OPENML_FIELD.exists():
        pytest.skip("../shared/field is absent")
    code, _, stderr = run("mnist", OPENML_FIELD, "--sizes", 28, "--out", tmp_path / "x.csv")
    assert code == 0, stderr
    pixels, labels, classes = read_onehot_csv(tmp_path / "x.csv")
    assert labels.tolist() == [3, 1, 4, 5, 9] and classes == tuple(range(10))
    assert np.array_equal(pixels, pd.read_csv(OPENML_FIELD).to_numpy()[:, :784])


def test_space_separated_ten_decimal_floats_with_one_hot_labels_file(tmp_path):
    images, labels = digits(5, side=28)
    table = write_rows(tmp_path / "digits.txt", flat(images), sep=" ", fmt=lambda v: f"{v:.10f}")
    assert table.read_text().startswith("0.0000000000 0.0000000000 ")  # the top border, as the set writes it
    one_hot = np.eye(10, dtype=int)[labels]
    labels_file = write_rows(tmp_path / "labels.txt", one_hot, sep=" ")
    assert labels_file.read_text().splitlines()[0] == "0 0 0 0 0 0 0 1 0 0"  # the first label is 7
    assert_table(read_table(table, labels_file=labels_file), images, labels)


def test_plain_labels_file_and_labels_file_with_a_header(tmp_path):
    images, labels = digits(4)
    table = write_rows(tmp_path / "t.csv", flat(images))
    plain = write_rows(tmp_path / "labels.txt", labels[:, None])
    assert_table(read_table(table, labels_file=plain), images, labels)
    named = write_rows(tmp_path / "labels.csv", np.c_[np.arange(1, 5), labels], header=["ImageId", "Label"])
    assert_table(read_table(table, labels_file=named), images, labels)


def test_unit_floats_give_the_bytes_of_the_integers(tmp_path):
    images, labels = digits(8, side=28, seed=1)
    images[0, 5, 5:8] = (255, 1, 128)  # both ends and a middle value, exactly
    ints = write_rows(tmp_path / "ints.csv", np.c_[labels, flat(images)])
    ten = write_rows(tmp_path / "ten.csv", np.c_[labels, flat(images) / 255], fmt=lambda v: f"{v:.10g}")
    full = write_rows(tmp_path / "full.csv", np.c_[labels, flat(images) / 255], fmt=lambda v: repr(float(v)))
    assert "0.003921568627" in ten.read_text()  # 1/255, ten significant digits
    for path in (ints, ten, full):
        assert_table(read_table(path), images, labels)


def test_binary_integer_table_is_a_unit_range(tmp_path):
    images, labels = digits(3)
    binary = (images > 127).astype(np.uint8)
    path = write_rows(tmp_path / "bits.csv", np.c_[labels, flat(binary)], header=["label", *pixel_names(64)])
    assert_table(read_table(path), binary * 255, labels)


@pytest.mark.parametrize("sep", [",", ";", "\t", " ", "   "])
@pytest.mark.parametrize("header", [True, False])
def test_separators_with_and_without_header(tmp_path, sep, header):
    images, labels = digits(5, seed=2)
    names = ["label", *pixel_names(64)] if header else None
    path = write_rows(tmp_path / "t.txt", np.c_[labels, flat(images)], sep=sep, header=names)
    assert_table(read_table(path), images, labels)


def test_semicolon_table_with_decimal_commas(tmp_path):
    images, labels = digits(3, seed=3)
    path = write_rows(tmp_path / "eu.csv", np.c_[labels, flat(images) / 255], sep=";", fmt=lambda v: f"{v:.6f}")
    path.write_text(path.read_text().replace(".", ","))
    assert "0,000000;" in path.read_text()
    got_images, got_labels = read_table(path)
    assert np.array_equal(got_labels, labels) and np.array_equal(got_images, images)


def test_gzip_bom_and_windows_line_ends(tmp_path):
    images, labels = digits(4, seed=4)
    path = write_rows(tmp_path / "t.csv", np.c_[labels, flat(images)], header=["Label", *pixel_names(64)])
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n")))
    assert_table(read_table(path), images, labels)


def test_label_found_by_name_in_the_middle(tmp_path):
    images, labels = digits(4, seed=5)
    rows = np.hstack((flat(images)[:, :30], labels[:, None], flat(images)[:, 30:]))
    names = [*pixel_names(30), "Digit", *pixel_names(34, first=31)]
    path = write_rows(tmp_path / "middle.csv", rows, header=names)
    assert_table(read_table(path), images, labels)


def test_label_column_first_last_name_and_none(tmp_path):
    images, labels = digits(4, seed=6)
    first = write_rows(tmp_path / "first.csv", np.c_[labels, flat(images)])
    last = write_rows(tmp_path / "last.csv", np.c_[flat(images), labels])
    assert_table(read_table(first, label_column="first"), images, labels)
    assert_table(read_table(last, label_column="last"), images, labels)
    named = write_rows(tmp_path / "named.csv", np.c_[flat(images), labels], header=[*pixel_names(64), "answer"])
    assert_table(read_table(named, label_column="answer"), images, labels)
    assert_table(read_table(named, label_column="ANSWER"), images, labels)  # any case when unambiguous
    pixels_only = write_rows(tmp_path / "pixels.csv", np.c_[labels[:, None] * 0 + 9, flat(images)[:, 1:]])
    expected = flat(images).copy()
    expected[:, 0] = 9  # the "label" column read as the first pixel
    assert_table(read_table(pixels_only, label_column="none"), expected.reshape(-1, 8, 8), None)


def test_kaggle_test_layout_has_no_labels(tmp_path):
    images, _ = digits(3, side=28, seed=7)
    path = write_rows(tmp_path / "test.csv", flat(images), header=pixel_names(784, first=0))
    assert_table(read_table(path), images, None)
    headerless = write_rows(tmp_path / "headerless.csv", flat(images))
    assert_table(read_table(headerless), images, None)


def test_headerless_label_column_told_from_the_data(tmp_path):
    images, labels = digits(6, seed=8)
    first = write_rows(tmp_path / "first.csv", np.c_[labels, flat(images)])
    last = write_rows(tmp_path / "last.csv", np.c_[flat(images), labels])
    assert_table(read_table(first), images, labels)  # the last column (a border pixel) is all zeros
    assert_table(read_table(last), images, labels)
    inverted = 255 - images  # border pixels 255: not digits, so the label side is the one of digits
    assert_table(read_table(write_rows(tmp_path / "inv.csv", np.c_[flat(inverted), labels])), inverted, labels)


def test_numbered_column_header_as_pandas_writes_it(tmp_path):
    images, _ = digits(2, side=28, seed=9)
    path = tmp_path / "frame.csv"
    pd.DataFrame(flat(images)).to_csv(path, index=False)
    assert path.read_text().startswith("0,1,2,")
    assert_table(read_table(path), images, None)


@pytest.mark.parametrize("side", [16, 20, 8])
def test_square_pixel_counts_give_square_images(tmp_path, side):
    images, labels = digits(3, side=side, seed=side)
    path = write_rows(tmp_path / "t.csv", np.c_[labels, flat(images)], header=["label", *pixel_names(side * side)])
    got_images, got_labels = read_table(path)
    assert got_images.shape == (3, side, side)
    assert_table((got_images, got_labels), images, labels)


def test_shape_option_for_non_square_images(tmp_path):
    rng = np.random.default_rng(10)
    images, labels = rng.integers(0, 256, (4, 6, 4)).astype(np.uint8), np.array([1, 2, 3, 4])
    path = write_rows(tmp_path / "t.csv", np.c_[labels, flat(images)], header=["label", *pixel_names(24)])
    with pytest.raises(TableFormatError, match=r"25 columns less the label column leave 24 pixels, not a square image"):
        read_table(path)
    assert_table(read_table(path, shape=(6, 4)), images, labels)
    assert_table(read_table(path, shape=(4, 6)), images.reshape(4, 4, 6), labels)
    with pytest.raises(TableFormatError, match=r"leave 24 pixels, not the 25 of --shape 5x5; give another --shape"):
        read_table(path, shape=(5, 5))


def test_transpose_turns_each_image_of_tables_and_idx(tmp_path):
    rng = np.random.default_rng(11)
    images, labels = rng.integers(0, 256, (5, 6, 4)).astype(np.uint8), np.arange(5)
    path = write_rows(tmp_path / "t.csv", np.c_[labels, flat(images)], header=["label", *pixel_names(24)])
    got_images, got_labels = read_table(path, shape=(6, 4), transpose=True)
    assert got_images.shape == (5, 4, 6) and got_images.flags.c_contiguous and np.array_equal(got_labels, labels)
    assert all(np.array_equal(got, np.transpose(image)) for got, image in zip(got_images, images))
    square, square_labels = digits(4, seed=12)
    write_idx(tmp_path / "e-labels-idx1-ubyte", square_labels.astype(np.uint8))
    write_idx(tmp_path / "e-images-idx3-ubyte", square)
    transposed, idx_labels = load_mnist(tmp_path / "e-images-idx3-ubyte", transpose=True)
    assert np.array_equal(transposed, square.transpose(0, 2, 1)) and np.array_equal(idx_labels, square_labels)
    code, _, stderr = run(
        "mnist", tmp_path / "e-images-idx3-ubyte", "--transpose", "--sizes", 8, "--out", tmp_path / "e.csv"
    )
    assert code == 0, stderr
    pixels, csv_labels, _ = read_onehot_csv(tmp_path / "e.csv")
    assert np.array_equal(pixels, flat(square.transpose(0, 2, 1))) and np.array_equal(csv_labels, square_labels)


def test_value_range_override_for_scikit_learn_digits(tmp_path):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rows = np.c_[bunch.target, bunch.data.astype(int)][:50]
    headerless = write_rows(tmp_path / "sk.csv", rows)
    # Its last pixel column holds small whole numbers too: the label column must be said, or named.
    assert "both hold digits 0-9 only: cannot tell the label column" in error_of(headerless, value_range="0-16")
    named = write_rows(tmp_path / "sk_named.csv", rows, header=["target", *pixel_names(64)])
    expected_images, expected_labels = load_sklearn_digits()
    for path, column in ((headerless, "first"), (named, "auto")):
        assert_table(
            read_table(path, label_column=column, value_range="0-16"), expected_images[:50], expected_labels[:50]
        )
    assert_table(read_table(named, value_range="0-255"), bunch.images[:50].astype(np.uint8), expected_labels[:50])
    assert bunch.data[0, :4].tolist() == [0, 0, 5, 13]
    expected = "data row 1, column 5 ('pixel4'): '13' is not an integer 0-8; give --value-range LOW-HIGH for another"
    assert expected in error_of(named, value_range="0-8")


def test_wide_range_and_float_pixels_scale_and_round(tmp_path):
    path = write_rows(tmp_path / "t.csv", [[3, 0, 4095, 2047, 1000]], header=["label", "a", "b", "c", "d"])
    images, labels = read_table(path, value_range="0-4095")
    assert labels.tolist() == [3] and images.ravel().tolist() == [0, 255, 127, 62]  # 127.47..., 62.27...
    floats = write_rows(tmp_path / "f.csv", [[3, 0.4, 254.6, 2.5, 100.0]], header=["label", "a", "b", "c", "d"])
    assert read_table(floats)[0].ravel().tolist() == [0, 255, 2, 100]  # rounded half to even, as np.round


def test_a_row_longer_than_the_sniffed_64_kb(tmp_path):
    images, labels = digits(2, side=72, seed=13)
    path = write_rows(tmp_path / "big.txt", flat(images) / 255, sep=" ", fmt=lambda v: f"{v:.12f}")
    assert len(path.read_text().splitlines()[0]) > 64 * 1024
    labels_file = write_rows(tmp_path / "labels.txt", labels[:, None])
    assert_table(read_table(path, labels_file=labels_file), images, labels)


# --- errors ------------------------------------------------------------------------------------


def error_of(path, culprit=None, **options) -> str:
    """read_table's one-line error, which names CULPRIT (default: the table)."""
    with pytest.raises(TableFormatError) as caught:
        read_table(path, **options)
    message = str(caught.value)
    assert message.startswith(f"{culprit or path}: ") and "\n" not in message
    return message


def assert_cli_refuses(tmp_path, sources, expected, *extra):
    """`digitprep mnist SOURCES --out` and `--out-dir`: exit 1, the one line on stderr, nothing written."""
    for output in (["--out", tmp_path / "out" / "x.csv"], ["--out-dir", tmp_path / "out" / "tree"]):
        code, stdout, stderr = run("mnist", *sources, *extra, *output)
        assert code == 1 and stdout == "", stderr
        assert stderr.startswith("Error: ") and stderr.count("\n") == 1 and expected in stderr, stderr
        assert not (tmp_path / "out").exists()


def ambiguous_tables(folder):
    """(table, options, words the one-line error must hold) for each layout read_table must not guess."""
    images, labels = digits(4, seed=20)
    both_digits = np.c_[labels, flat(images)[:, :-1], (labels + 1) % 10]  # first and last columns both digits
    zeros = np.c_[np.zeros(4, int), flat(images)]  # first and last columns both all zeros
    cases = {
        "header names no label column, 65 columns": (
            write_rows(folder / "nolabel.csv", np.c_[labels, flat(images)], header=pixel_names(65)),
            {},
            "the header names no label column (label, class, target, digit, y) yet its 65 columns fit a label and "
            "64 pixels; give --label-column first|last|NAME",
        ),
        "both ends digits": (
            write_rows(folder / "both.csv", both_digits),
            {},
            "the first and the last columns both hold digits 0-9 only: cannot tell the label column; "
            "give --label-column first|last|none",
        ),
        "both ends zeros": (
            write_rows(folder / "zeros.csv", zeros),
            {},
            "the first and the last columns are all zeros: cannot tell the label column; give --label-column",
        ),
        "not a square": (
            write_rows(folder / "odd.csv", np.c_[labels, flat(images)[:, :50]]),
            {},
            "51 columns leave 51 pixels, not a square image; give --shape HxW or --label-column first|last|none",
        ),
        "two label names": (
            write_rows(
                folder / "two.csv", np.c_[labels, flat(images), labels], header=["label", *pixel_names(64), "y"]
            ),
            {},
            "the header names several label columns ('label', 'y'); give --label-column NAME",
        ),
        "no header for a column name": (
            write_rows(folder / "noname.csv", np.c_[labels, flat(images)]),
            {"label_column": "label"},
            "no header to find column 'label' in; give --label-column first|last|none",
        ),
        "unknown column name": (
            write_rows(folder / "named.csv", np.c_[labels, flat(images)], header=["label", *pixel_names(64)]),
            {"label_column": "class"},
            "the header names no column 'class'; give another --label-column",
        ),
    }
    return cases


def test_each_ambiguous_layout_is_a_one_line_error_naming_the_option(tmp_path):
    for name, (path, given, expected) in ambiguous_tables(tmp_path).items():
        assert expected in error_of(path, **given), name
        extra = [f"--{key.replace('_', '-')}" if i == 0 else value for key, value in given.items() for i in (0, 1)]
        assert_cli_refuses(tmp_path, [path], expected, *extra)


def test_an_unlabelled_table_cannot_make_a_training_set(tmp_path):
    images, _ = digits(3, side=28, seed=21)
    path = write_rows(tmp_path / "test.csv", flat(images), header=pixel_names(784, first=0))
    expected = (
        f"{path}: no labels (no label column found); give --labels-file FILE or --label-column first|last|NAME, "
        "or use `digittrain predict MODEL FILE` for predictions"
    )
    with pytest.raises(MnistFormatError) as caught:
        load_mnist(path)
    assert str(caught.value) == expected
    assert_cli_refuses(tmp_path, [path], expected)
    done = subprocess.run(  # as a user runs it
        [sys.executable, "-m", "digitprep", "mnist", path.name, "--out", "x.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stderr == f"Error: {expected.replace(str(path), path.name)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv"]


def test_bad_labels_name_the_first_row_and_value(tmp_path):
    images, labels = digits(4, seed=22)
    values = np.c_[labels, flat(images)].astype(float)
    values[2, 0] = 3.5
    path = write_rows(tmp_path / "half.csv", values, header=["label", *pixel_names(64)], fmt=lambda v: f"{v:g}")
    expected = "data row 3: label 3.5 is not a digit 0-9 (column 1 ('label')); give --label-column"
    assert expected in error_of(path)
    assert_cli_refuses(tmp_path, [path], expected)
    for bad, shown in ((12, "12"), (-1, "-1")):
        rows = np.c_[flat(images), labels]
        rows[1, -1] = bad
        path = write_rows(tmp_path / f"label{shown}.csv", rows, header=[*pixel_names(64), "class"])
        assert f"data row 2: label {shown} is not a digit 0-9 (column 65 ('class'))" in error_of(path)
    labels_file = write_rows(tmp_path / "labels.txt", [[1], [2], [10], [3]])
    table = write_rows(tmp_path / "pixels.csv", flat(images))
    assert "data row 3: label 10 is not a digit 0-9" in error_of(table, labels_file, labels_file=labels_file)


def test_bad_pixels_name_the_first_row_column_and_value(tmp_path):
    images, labels = digits(3, seed=23)
    header = ["label", *pixel_names(64)]
    cases = {
        "nan": ("nan", "data row 2, column 6 ('pixel5'): 'nan' is not a number"),
        "text": ("ink", "data row 2, column 6 ('pixel5'): 'ink' is not a number"),
        "empty": ("", "data row 2: missing value in column 6 of 65"),
        "too big": ("255.5", "data row 2, column 6 ('pixel5'): '255.5' is not a number 0-255; give --value-range"),
        "negative": ("-0.5", "data row 2, column 6 ('pixel5'): '-0.5' is not a number 0-255; give --value-range"),
    }
    for name, (value, expected) in cases.items():
        text = [[str(v) + ".0" for v in row] for row in np.c_[labels, flat(images)]]
        text[1][5] = value
        path = write_rows(tmp_path / f"{name.replace(' ', '_')}.csv", text, header=header)
        assert expected in error_of(path), name
    unit = write_rows(tmp_path / "unit.csv", [[3] + [0.5] * 63 + [1.5]], header=header)
    assert "data row 1, column 65 ('pixel64'): '1.5' is not a number 0-1" in error_of(unit, value_range="0-1")


def test_labels_file_rules(tmp_path):
    images, labels = digits(4, seed=24)
    table = write_rows(tmp_path / "pixels.csv", flat(images))
    short = write_rows(tmp_path / "short.txt", labels[:3, None])
    expected = f"{short}: 3 labels for the 4 rows of {table}; --labels-file needs one label per row"
    assert error_of(table, short, labels_file=short) == expected
    assert_cli_refuses(tmp_path, [table], expected, "--labels-file", short)
    not_one_hot = write_rows(tmp_path / "soft.txt", [[0.5, 0.5] + [0] * 8] * 4, sep=" ")
    message = error_of(table, not_one_hot, labels_file=not_one_hot)
    assert "data row 1 (0.5 0.5 0 0 0 0 0 0 0 0) is not one-hot: ten 0/1, one of them 1" in message
    labelled = write_rows(tmp_path / "labelled.csv", np.c_[labels, flat(images)], header=["label", *pixel_names(64)])
    good = write_rows(tmp_path / "labels.txt", labels[:, None])
    message = error_of(labelled, labels_file=good)
    assert "column 1 ('label') holds labels and --labels-file" in message and "drop --labels-file" in message
    assert "and --labels-file" in error_of(labelled, labels_file=good, label_column="first")
    expected = "65 columns leave 65 pixels, not a square image (with --labels-file every column is a pixel)"
    assert expected in error_of(labelled, labels_file=good, label_column="none")
    other = write_rows(tmp_path / "other.csv", flat(images))
    assert_cli_refuses(
        tmp_path, [table, other], "--labels-file labels one table, and the sources hold 2", "--labels-file", good
    )


def test_shape_and_value_range_options_are_checked_by_the_command(tmp_path):
    assert options.table_arguments(shape="32x24", value_range="0-16") == {
        "label_column": "auto",
        "labels_file": None,
        "value_range": "0-16",
        "shape": (32, 24),
        "transpose": False,
    }
    for bad in ("28", "0x28", "axb", "28x28x1"):
        with pytest.raises(click.BadParameter, match="is not HxW"):
            options.table_arguments(shape=bad)
    with pytest.raises(click.BadParameter, match="is not auto or LOW-HIGH"):
        options.table_arguments(value_range="16-0")
    images, labels = digits(2)
    path = write_rows(tmp_path / "t.csv", np.c_[labels, flat(images)])
    code, _, stderr = run("mnist", path, "--shape", "8by8", "--out", tmp_path / "x.csv")
    assert code == 2 and stderr == (
        "Error: Invalid value for '--shape': '8by8' is not HxW with sides >= 1, e.g. 28x28\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_kaggle_rows_written_by_the_project_read_back(tmp_path):
    images, labels = digits(5, side=28, seed=25)
    write_kaggle_csv(tmp_path / "k.csv", images, labels)
    assert_table(read_table(tmp_path / "k.csv"), images, labels)
