"""One-hot CSV files: fast vectorised writing, reading back, and atomic replacement on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitprep.classes import classes_from_columns
from digitprep.textfiles import FILE_MODE, AtomicWriter, csv_text, onehot_header, write_atomic

__all__ = [  # the writers live in textfiles (no NumPy); everything is imported from here
    "FILE_MODE",
    "AtomicWriter",
    "DatasetFormatError",
    "csv_text",
    "encode_onehot_rows",
    "encode_uint8_rows",
    "onehot",
    "onehot_header",
    "read_onehot_csv",
    "write_atomic",
    "write_onehot_csv",
]


def _code_table(terminator: bytes) -> np.ndarray:
    """(256,) uint32 whose 4 bytes in memory are the decimal digits of each value then the
    terminator, NUL-padded: one lookup per value, then the NULs are dropped."""
    table = np.zeros((256, 4), np.uint8)
    for value in range(256):
        text = str(value).encode() + terminator
        table[value, : len(text)] = np.frombuffer(text, np.uint8)
    return table.view(np.uint32).ravel()


_VALUE_THEN_COMMA = _code_table(b",")
_VALUE_THEN_NEWLINE = _code_table(b"\n")


def encode_uint8_rows(matrix: np.ndarray) -> bytes:
    """CSV text of a uint8 matrix, one line per row, without Python loops over values."""
    if matrix.size == 0:
        return b""
    codes = _VALUE_THEN_COMMA.take(matrix)
    codes[:, -1] = _VALUE_THEN_NEWLINE.take(matrix[:, -1])
    return codes.tobytes().translate(None, b"\0")


def onehot(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """uint8 one-hot matrix (n, len(classes)) of digit labels."""
    index = np.full(10, -1, np.int64)
    index[list(classes)] = np.arange(len(classes))
    positions = index[np.asarray(labels, np.int64)]
    if (positions < 0).any():
        raise ValueError("label outside the class set")
    out = np.zeros((len(positions), len(classes)), np.uint8)
    out[np.arange(len(positions)), positions] = 1
    return out


def encode_onehot_rows(pixels: np.ndarray, labels: np.ndarray, classes: tuple[int, ...]) -> bytes:
    """Data lines of a one-hot CSV: pixels (n, N) uint8 then the one-hot columns."""
    return encode_uint8_rows(np.hstack((pixels.astype(np.uint8, copy=False), onehot(labels, classes))))


def write_onehot_csv(path: Path, pixels: np.ndarray, labels: np.ndarray, classes: tuple[int, ...]) -> None:
    """Write a whole one-hot CSV atomically."""
    write_atomic(path, onehot_header(pixels.shape[1], classes) + encode_onehot_rows(pixels, labels, classes))


class DatasetFormatError(ValueError):
    """A CSV that is not a one-hot digit data set; the message names the file and the reason."""


def read_onehot_csv(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Read a one-hot CSV -> (pixels uint8 (n, N), labels int64 (n,), classes)."""
    path = Path(path)
    try:
        with open(path, encoding="ascii") as handle:
            header = handle.readline().strip().split(",")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    pixel_columns = [c for c in header if c.startswith("pixel")]
    class_columns = header[len(pixel_columns) :]
    if not pixel_columns or pixel_columns != [f"pixel{i}" for i in range(1, len(pixel_columns) + 1)]:
        raise DatasetFormatError(f"{path}: header does not start with pixel1..pixelN")
    try:
        classes = classes_from_columns(class_columns)
    except ValueError as exc:
        raise DatasetFormatError(f"{path}: {exc}") from None
    if not classes:
        raise DatasetFormatError(f"{path}: no one-hot columns (isZero..isNine) after the pixels")
    import pandas as pd  # imported here: `build` never reads CSVs and pandas costs 0.4 s to import

    try:
        frame = pd.read_csv(path, dtype=np.uint8, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        raise DatasetFormatError(f"{path}: bad data ({str(exc).splitlines()[0]})") from None
    values = frame.to_numpy()
    pixels = np.ascontiguousarray(values[:, : len(pixel_columns)])
    targets = values[:, len(pixel_columns) :]
    if len(values) and not ((targets.sum(axis=1) == 1) & (targets.max(axis=1) == 1)).all():
        bad = int(np.flatnonzero((targets.sum(axis=1) != 1) | (targets.max(axis=1) != 1))[0])
        raise DatasetFormatError(f"{path}: row {bad + 1} is not a valid one-hot label")
    labels = np.asarray(classes, np.int64)[targets.argmax(axis=1)]
    return pixels, labels, classes
