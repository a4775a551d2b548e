"""One-hot CSV format: exact text, round trip, and atomic replacement."""

import csv
import io
import os

import numpy as np
import pytest

from digitprep.classes import format_classes, onehot_column_names, parse_classes
from digitprep.csvio import (
    AtomicWriter,
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


def test_interrupted_write_leaves_previous_file_untouched(tmp_path):
    path = tmp_path / "keep.csv"
    path.write_bytes(b"previous\n")
    writer = AtomicWriter(path)
    writer.write(b"half a fi")
    writer.abort()  # what build does on an exception or Ctrl-C
    assert path.read_bytes() == b"previous\n"
    assert list(tmp_path.iterdir()) == [path]
    writer = AtomicWriter(path)
    writer.write(b"new\n")
    assert path.read_bytes() == b"previous\n"  # not visible before commit
    writer.commit()
    assert path.read_bytes() == b"new\n"


def test_long_writes_ask_for_writeback_as_they_go(tmp_path, monkeypatch):
    import digitprep.textfiles as textfiles

    nudged = []
    real = textfiles.start_writeback
    monkeypatch.setattr(textfiles, "WRITEBACK_BYTES", 10)
    monkeypatch.setattr(textfiles, "start_writeback", lambda fd: nudged.append(fd) or real(fd))
    writer = AtomicWriter(tmp_path / "long.csv")
    for part in (b"0123", b"456789", b"abc", b"defghijklmnop", b"q"):
        writer.write(part)
    writer.commit()
    assert (tmp_path / "long.csv").read_bytes() == b"0123456789abcdefghijklmnopq"
    assert len(nudged) == 2  # after 10 bytes, then after the next 17


def test_files_committed_together_all_land_or_none_does(tmp_path, monkeypatch):
    from digitprep.textfiles import commit_all

    names = ["a.csv", "a.manifest.csv", "a.errors.csv"]
    for name in names:
        (tmp_path / name).write_bytes(b"previous\n")
    writers = [AtomicWriter(tmp_path / name) for name in names]
    for writer in writers:
        writer.write(b"new " + writer.path.name.encode() + b"\n")
    commit_all(writers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary files left
    assert all((tmp_path / name).read_bytes() == b"new " + name.encode() + b"\n" for name in names)

    writers = [AtomicWriter(tmp_path / name) for name in names]
    for writer in writers:
        writer.write(b"newer\n")
    real_fsync = os.fsync

    def failing_fsync(fd):  # the disk fills up while the second file is synced
        if "manifest" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        commit_all(writers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all((tmp_path / name).read_bytes().startswith(b"new ") for name in names)  # none replaced


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
