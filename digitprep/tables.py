"""The Kaggle MNIST CSV (``label,1x1,...,28x28``, one image per row, header optional, gzipped or not)
read into ``(images uint8 (n, 28, 28), labels int64 (n,))``, or a MnistFormatError naming the file and
the first bad row and value; and written."""

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


def read_kaggle_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64 (n,)) from a Kaggle MNIST CSV, the header told from the first
    field; pandas' C parser reads straight into uint8, so this costs little more than a bare ``read_csv``."""
    import pandas as pd  # imported here: it costs 0.4 s and only CSV reading needs it

    path = Path(path)
    head = read_head(path, 64 * 1024)
    if not head:
        raise MnistFormatError(f"{path}: empty file")
    first_line = head.split(b"\n", 1)[0]
    if (columns := first_line.count(b",") + 1) != KAGGLE_COLUMNS:
        raise MnistFormatError(f"{path}: {columns} columns, expected {KAGGLE_COLUMNS} (a label then 28x28 pixels)")
    header = not first_line.removeprefix(b"\xef\xbb\xbf").split(b",", 1)[0].strip().isdigit()  # a name, not a label
    options = {"header": 0 if header else None, "engine": "c", "compression": "gzip" if is_gzip(path) else None}
    try:
        values = pd.read_csv(path, dtype=np.uint8, **options).to_numpy()
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        raise MnistFormatError(f"{path}: {_describe_bad_csv(path, options, exc)}") from None
    except (EOFError, OSError) as exc:  # a truncated or corrupt gzip
        raise MnistFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if not len(values):
        raise MnistFormatError(f"{path}: a header and no data rows: no images")
    check_digits(values[:, 0], path, "data row", first=1)
    return np.ascontiguousarray(values[:, 1:]).reshape(-1, SIDE, SIDE), values[:, 0].astype(np.int64)


def _describe_bad_csv(path: Path, options: dict, error: Exception) -> str:
    """Why pandas refused the file, as a user would say it: the first bad row and value. Only after a
    failure, so it may read the file again, letting pandas pick each column's type."""
    import pandas as pd

    message = str(error).splitlines()[0] if str(error) else error.__class__.__name__
    if fields := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        return f"line {fields.group(2)} has {fields.group(3)} values, expected {fields.group(1)}"
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False, **options)
    except (ValueError, pd.errors.ParserError):
        return f"bad data ({message})"
    # Per column, whether each value is an integer 0-255 (text and missing values are NaN by then).
    good = (pd.to_numeric(values, errors="coerce").isin(range(256)) for _, values in frame.items())
    first_bad = [(int(ok.argmin()), column) for column, ok in enumerate(good) if not ok.all()]
    if not first_bad:
        return f"bad data ({message})"
    row, column = min(first_bad)  # row-major first
    value = frame.iat[row, column]
    if pd.isna(value) or not str(value).strip():
        return f"data row {row + 1}: missing value in column {column + 1} of {KAGGLE_COLUMNS}"
    return f"data row {row + 1}, column {column + 1}: {str(value).strip()!r} is not an integer 0-255"


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray, header: bool = True) -> None:
    """Write images (n, 28, 28) and labels in the Kaggle layout, atomically."""
    rows = np.hstack((np.asarray(labels, np.uint8)[:, None], np.asarray(images, np.uint8).reshape(len(images), -1)))
    text = (KAGGLE_HEADER + "\n").encode() if header else b""
    write_atomic(Path(path), text + encode_uint8_rows(rows))
