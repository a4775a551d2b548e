"""Digit tables: the Kaggle MNIST CSV (``label,1x1,...,28x28``, one image per row, the header row
optional, gzipped or not) read into ``(images uint8 (n, 28, 28), labels int64 (n,))`` and written.

A bad file is a MnistFormatError naming the file and the first bad row and value.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from digitprep.atomic import write_atomic
from digitprep.csvio import encode_uint8_rows
from digitprep.mnist import MnistFormatError, check_digits, is_gzip, read_head

SIDE = 28
KAGGLE_COLUMNS = 1 + SIDE * SIDE  # label, then the pixels row by row
KAGGLE_HEADER = ",".join(["label"] + [f"{row}x{col}" for row in range(1, SIDE + 1) for col in range(1, SIDE + 1)])


def has_header(first_line: bytes) -> bool:
    """A Kaggle CSV's first line is a header when its first field is not a number."""
    first = first_line.removeprefix(b"\xef\xbb\xbf").split(b",", 1)[0].strip()
    return not first.isdigit()


def read_kaggle_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64) from a Kaggle MNIST CSV: ``label,1x1,...,28x28``
    rows, the header row optional (told from the first field), gzipped or not. Pandas' C parser
    reads straight into uint8, so this costs little more than a bare ``read_csv``."""
    import pandas as pd  # imported here: it costs 0.4 s and only CSV reading needs it

    path = Path(path)
    head = read_head(path, 64 * 1024)
    if not head:
        raise MnistFormatError(f"{path}: empty file")
    first_line = head.split(b"\n", 1)[0]
    columns = first_line.count(b",") + 1
    if columns != KAGGLE_COLUMNS:
        raise MnistFormatError(
            f"{path}: {columns} columns, expected {KAGGLE_COLUMNS} (a label then {SIDE}x{SIDE} pixels)"
        )
    header = has_header(first_line)
    options = {"header": 0 if header else None, "engine": "c", "compression": "gzip" if is_gzip(path) else None}
    try:
        values = pd.read_csv(path, dtype=np.uint8, **options).to_numpy()
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        raise MnistFormatError(f"{path}: {_describe_bad_csv(path, options, exc)}") from None
    except (EOFError, OSError) as exc:  # a truncated or corrupt gzip
        raise MnistFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if not len(values):
        raise MnistFormatError(f"{path}: a header and no data rows: no images")
    labels = values[:, 0]
    check_digits(labels, path, "data row", first=1)
    images = np.ascontiguousarray(values[:, 1:]).reshape(len(values), SIDE, SIDE)
    return images, labels.astype(np.int64)


def _describe_bad_csv(path: Path, options: dict, error: Exception) -> str:
    """Why pandas refused the file, as a user would say it: the first bad row and value. Runs
    only after a failure, so it may read the file again, letting pandas pick each column's type:
    numeric columns stay fast, only columns holding text are looked at value by value."""
    import pandas as pd

    message = str(error).splitlines()[0] if str(error) else error.__class__.__name__
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        return f"line {fields.group(2)} has {fields.group(3)} values, expected {fields.group(1)}"
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False, **options)
    except (ValueError, pd.errors.ParserError):
        return f"bad data ({message})"
    first_bad: tuple[int, int] | None = None  # (row, column), row-major first
    for column in range(frame.shape[1]):
        values = frame.iloc[:, column]
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers >= 0) & (numbers <= 255))
        if bad.any():
            row = int(bad.argmax())
            if first_bad is None or row < first_bad[0]:
                first_bad = (row, column)
    if first_bad is None:
        return f"bad data ({message})"
    row, column = first_bad
    value = frame.iat[row, column]
    if pd.isna(value) or not str(value).strip():
        return f"data row {row + 1}: missing value in column {column + 1} of {KAGGLE_COLUMNS}"
    return f"data row {row + 1}, column {column + 1}: {str(value).strip()!r} is not an integer 0-255"


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray, header: bool = True) -> None:
    """Write images (n, 28, 28) and labels in the Kaggle layout, atomically."""
    rows = np.hstack((np.asarray(labels, np.uint8)[:, None], np.asarray(images, np.uint8).reshape(len(images), -1)))
    text = (KAGGLE_HEADER + "\n").encode() if header else b""
    write_atomic(Path(path), text + encode_uint8_rows(rows))
