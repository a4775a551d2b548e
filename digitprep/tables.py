"""Tables of images, one image per row (CSV, TSV, semicolon- or space-separated text, gzipped or not), read
into ``(images uint8 (n, h, w), labels int64 (n,) or None)`` by ``read_table``: separator, header, label
column, value range and image shape told from the file (or given), every problem a one-line
TableFormatError naming the file, the first bad row and value, and the option that settles it.
And the Kaggle MNIST CSV (``label,1x1,...,28x28``) written by ``write_kaggle_csv``."""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.atomic import write_atomic
from digitprep.csvio import encode_uint8_rows
from digitprep.mnist import MnistFormatError, is_gzip, read_head

SIDE = 28
KAGGLE_HEADER = ",".join(["label"] + [f"{row}x{col}" for row in range(1, SIDE + 1) for col in range(1, SIDE + 1)])
SNIFF_BYTES = 64 * 1024  # separator, header and integers-or-floats are told from this much of the start
LONGEST_SNIFF = 16 << 20  # ... or more, up to this, until it holds two lines
MISSING = ("", "na", "n/a", "nan", "null", "none")  # a missing value, not a column name
LABEL_NAMES = ("label", "class", "target", "digit", "y")  # header names of a label column, any case
SMALLEST_SIDE = 2  # a square table of fewer columns is not taken for images
BYTE_RANGE = (0.0, 255.0)
UNIT_RANGE = (0.0, 1.0)
LABEL_COLUMN_HINT = "--label-column first|last|none"
READ_ERRORS = (ValueError, OverflowError)  # pandas' ParserError is a ValueError


class TableFormatError(MnistFormatError):
    """A table that cannot be read as images: one line, ``<path>: <what is wrong>; <what settles it>``."""


@dataclass(frozen=True)
class Layout:
    """What the first lines of a table say about how to read the rest."""

    separator: str  # ",", ";", "\t" or r"\s+" (runs of spaces and tabs)
    decimal: str  # "." or "," (a semicolon or tab table written with decimal commas)
    names: tuple[str, ...] | None  # the header's column names; None when the first line is data
    columns: int
    floats: bool  # some value in the first 64 KB has a decimal mark or an exponent

    def pandas_options(self, path: Path) -> dict:
        """``pandas.read_csv`` keyword arguments: the C engine, this layout, gzip told from the bytes."""
        return {
            "sep": self.separator,
            "decimal": self.decimal,
            "header": 0 if self.names else None,
            "index_col": False,  # never take a first column for row names when the header is shorter
            "engine": "c",
            "compression": "gzip" if is_gzip(path) else None,
        }

    def column_name(self, column: int) -> str:
        """`` ('name')`` of a 0-based column for messages, or nothing without a header."""
        return f" ({self.names[column]!r})" if self.names else ""


def read_table(
    path: Path,
    *,
    label_column: str = "auto",
    labels_file: Path | None = None,
    value_range: str = "auto",
    shape: tuple[int, int] | None = None,
    transpose: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 (n, h, w), labels int64 (n,) or None) from a table with one image per row.

    - Separator: comma, semicolon, tab or runs of spaces, told from the first line; gzip told from the
      bytes; a UTF-8 BOM is ignored. A first line with a field that is not a number (or consecutive
      column numbers 0,1,2... / 1,2,3..., as pandas writes for unnamed columns) is a header.
    - ``label_column``: ``auto`` takes the header's column named label, class, target, digit or y (any
      case, any position); without one, a table whose width is a square number of pixels has no labels,
      and a headerless one of square + 1 columns gets its label column from the data: the first or the
      last column, whichever holds whole numbers 0-9 and is not all zeros (an all-zero column is a
      border pixel). ``first``, ``last``, ``none`` (every column a pixel) or a header NAME say it.
    - ``labels_file``: the labels, one per line (a plain number, or the column a header names as above)
      or one-hot (ten 0/1 columns), as many as the table has rows. The table then holds pixels only:
      a header naming a label column, or ``label_column`` other than auto/none, is an error (two
      sources of labels).
    - Labels must be whole numbers 0-9; pixels numbers within the value range, scaled to 0-255 and
      rounded. ``value_range``: ``auto`` (0-255, or 0-1 when no value exceeds 1: 0-1 floats that are
      k/255 give exactly the bytes k), ``0-1``, ``0-255`` or any ``LOW-HIGH`` (``0-16`` for
      scikit-learn's digits). Integer tables are read by pandas' C parser straight into uint8.
    - ``shape`` (h, w) for the images; default: the pixel count's square root (784 -> 28 x 28).
      ``transpose``: each image ``np.transpose``d (EMNIST stores images transposed against MNIST).

    Raises TableFormatError (a MnistFormatError, so a ValueError) naming the file, the first bad
    data row (1-based, header not counted), column and value, and the option that settles it;
    ValueError for a ``value_range`` that is not auto or LOW-HIGH."""
    path = Path(path)
    span = parse_value_range(value_range)
    layout = sniff_layout(path)
    label = _label_column(path, layout, label_column, labels_file, shape)
    pixel_count = layout.columns - (label is not None)
    height, width = _image_shape(path, layout, pixel_count, shape, label, labels_file)
    values = _read_values(path, layout, span)
    if label == "data":
        label = _label_column_from_data(path, values)
    labels = None if label is None else _checked_labels(path, layout, values[:, label], label)
    if labels_file is not None:
        labels = read_labels_file(labels_file, len(values), path)
    if label is None:
        pixels, columns = values, np.arange(layout.columns)
    elif label in (0, layout.columns - 1):  # slices, not a fancy-indexed copy of every column
        pixels = values[:, 1:] if label == 0 else values[:, :-1]
        columns = np.arange(1, layout.columns) if label == 0 else np.arange(layout.columns - 1)
    else:
        columns = np.delete(np.arange(layout.columns), label)
        pixels = values[:, columns]
    images = _scaled_pixels(path, layout, pixels, columns, span).reshape(-1, height, width)
    if transpose:
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images), labels


def parse_value_range(text: str) -> tuple[float, float] | None:
    """``auto`` -> None, ``LOW-HIGH`` (e.g. 0-1, 0-255, 0-16, -1-1) -> (low, high); ValueError otherwise."""
    if text.strip().lower() == "auto":
        return None
    number = r"(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    if match := re.fullmatch(rf"\s*{number}\s*-\s*{number}\s*", text):
        low, high = float(match.group(1)), float(match.group(2))
        if low < high and math.isfinite(high - low):
            return low, high
    raise ValueError(f"{text!r} is not auto or LOW-HIGH with LOW < HIGH (e.g. 0-1, 0-255, 0-16)")


def sniff_layout(path: Path) -> Layout:
    """The separator, decimal mark, header and width of a table, from its first 64 KB (decompressed)."""
    size = SNIFF_BYTES
    while len(head := read_head(path, size)) == size and head.count(b"\n") < 2 and size < LONGEST_SNIFF:
        size *= 4  # rows longer than 64 KB (large images written as floats): read on to the second line
    head = head.removeprefix(b"\xef\xbb\xbf")
    if b"\0" in head:
        raise TableFormatError(f"{path}: binary data, not a text table (nor an IDX file)")
    lines = [line for line in head.decode("utf-8", "replace").splitlines() if line.strip()]
    if len(head) == size and not head.endswith(b"\n") and len(lines) > 1:
        lines.pop()  # cut short by the sniff
    if not lines:
        raise TableFormatError(f"{path}: empty file")
    first = lines[0]
    # Semicolons and tabs first: their tables may write decimal commas; runs of spaces last.
    separator = next((s for s in (";", "\t", ",") if s in first), r"\s+")
    data_text = "\n".join(lines[1:])
    decimal = "," if separator in (";", "\t") and "," in data_text else "."
    fields = _fields(first, separator)
    named = (field.lower() not in MISSING and not _is_number(field, decimal) for field in fields)
    header = any(named) or _numbered_columns(fields)
    if not header:
        data_text = first + "\n" + data_text
    elif len(lines) > 1 and (count := len(_fields(lines[1], separator))) != len(fields):
        raise TableFormatError(f"{path}: the header names {len(fields)} columns, data row 1 has {count} values")
    floats = decimal == "," or any(mark in data_text for mark in ".eE")
    return Layout(separator, decimal, tuple(fields) if header else None, len(fields), floats)


def _fields(line: str, separator: str) -> list[str]:
    parts = line.split() if separator == r"\s+" else line.split(separator)
    return [part.strip().strip('"').strip() for part in parts]


def _is_number(field: str, decimal: str) -> bool:
    try:
        float(field.replace(decimal, "."))
    except ValueError:
        return False
    return True


def _numbered_columns(fields: list[str]) -> bool:
    """True for 0,1,2,...,N-1 or 1,2,...,N over more than 256 columns: pandas' names for unnamed
    columns, not pixels (a row of pixels 0-255 cannot count that far)."""
    if len(fields) <= 256 or not all(field.isdigit() for field in fields):
        return False
    numbers = [int(field) for field in fields]
    return numbers in (list(range(len(fields))), list(range(1, len(fields) + 1)))


def _fits(pixels: int, shape: tuple[int, int] | None) -> bool:
    """Whether this many pixel columns make images: ``shape``'s, or a square of side >= 2."""
    if shape is not None:
        return pixels == shape[0] * shape[1]
    return pixels >= SMALLEST_SIDE**2 and math.isqrt(pixels) ** 2 == pixels


def _label_column(
    path: Path, layout: Layout, label_column: str, labels_file: Path | None, shape: tuple[int, int] | None
) -> int | str | None:
    """The 0-based label column, None (no labels in the table) or "data" (to be told from the values)."""
    columns, names = layout.columns, layout.names
    if label_column == "none":
        return None
    if labels_file is not None and label_column != "auto":
        raise TableFormatError(
            f"{path}: --label-column {label_column} and --labels-file {labels_file} both give labels; keep one "
            "(--label-column none reads every column as a pixel)"
        )
    if label_column in ("first", "last"):
        return 0 if label_column == "first" else columns - 1
    if label_column != "auto":
        if names is None:
            raise TableFormatError(f"{path}: no header to find column {label_column!r} in; give {LABEL_COLUMN_HINT}")
        found = [i for i, name in enumerate(names) if name == label_column]
        found = found or [i for i, name in enumerate(names) if name.lower() == label_column.lower()]
        if not found:
            raise TableFormatError(f"{path}: the header names no column {label_column!r}; give another --label-column")
        return found[0]
    if names:
        found = [i for i, name in enumerate(names) if name.lower() in LABEL_NAMES]
        if len(found) > 1:
            listed = ", ".join(repr(names[i]) for i in found)
            message = f"the header names several label columns ({listed}); give --label-column NAME"
            raise TableFormatError(f"{path}: {message}")
        if found and labels_file is not None:
            raise TableFormatError(
                f"{path}: column {found[0] + 1} ({names[found[0]]!r}) holds labels and --labels-file {labels_file} "
                "gives them too; drop --labels-file (or give --label-column none if that column is a pixel)"
            )
        if found:
            return found[0]
    if labels_file is not None or _fits(columns, shape) or not _fits(columns - 1, shape):
        return None  # pixels only (the shape check says so when they do not make images)
    if names:
        raise TableFormatError(
            f"{path}: the header names no label column ({', '.join(LABEL_NAMES)}) yet its {columns} columns fit "
            f"a label and {columns - 1} pixels; give --label-column first|last|NAME, or none with --shape HxW"
        )
    return "data"


def _image_shape(
    path: Path,
    layout: Layout,
    pixels: int,
    shape: tuple[int, int] | None,
    label: int | str | None,
    labels_file: Path | None,
) -> tuple[int, int]:
    """(height, width) of the images: ``shape``, else the square root of the pixel count."""
    if _fits(pixels, shape):
        return shape or (math.isqrt(pixels), math.isqrt(pixels))
    what = f"{layout.columns} columns" + (" less the label column" if label is not None else "")
    if shape is not None:
        raise TableFormatError(
            f"{path}: {what} leave {pixels} pixels, not the {shape[0] * shape[1]} of --shape {shape[0]}x{shape[1]}; "
            f"give another --shape or {LABEL_COLUMN_HINT}"
        )
    reason = " (with --labels-file every column is a pixel)" if labels_file is not None else ""
    raise TableFormatError(
        f"{path}: {what} leave {pixels} pixels, not a square image{reason}; give --shape HxW or {LABEL_COLUMN_HINT}"
    )


def _read_values(path: Path, layout: Layout, span: tuple[float, float] | None) -> np.ndarray:
    """Every value, (rows, columns): uint8 when the first 64 KB holds integers only and the range fits a
    byte (pandas' C parser reads them straight into uint8), else float64; errors describe the first bad
    value (reading the file again, as text: only after a failure)."""
    import pandas as pd  # imported here: it costs 0.4 s and only tables need it

    options = layout.pandas_options(path)
    integers = not layout.floats and (span is None or (span[0] >= 0 and span[1] <= 255))
    try:
        if integers:
            try:
                values = pd.read_csv(path, dtype=np.uint8, **options).to_numpy()
            except READ_ERRORS:  # a value past 255, a float after the first 64 KB, text: read again below
                values = pd.read_csv(path, dtype=np.float64, **options).to_numpy()
        else:
            values = pd.read_csv(path, dtype=np.float64, **options).to_numpy()
    except READ_ERRORS as exc:
        raise TableFormatError(f"{path}: {_describe_unreadable(path, layout, not layout.floats, exc)}") from None
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt gzip
        raise TableFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if not len(values):
        raise TableFormatError(f"{path}: a header and no data rows: no images")
    if values.dtype != np.uint8 and np.isnan(values).any():  # empty fields and NaN: say which, from the text
        raise TableFormatError(f"{path}: {_describe_unreadable(path, layout, not layout.floats, None)}")
    return values


def _describe_unreadable(path: Path, layout: Layout, integers: bool, error: Exception | None) -> str:
    """Why pandas refused the file (or read a NaN), as a user would say it: the first missing value or
    value that is not a number, row by row. Reads the file again as text."""
    import pandas as pd

    message = (str(error).splitlines() or [error.__class__.__name__])[0] if error else "a NaN value"
    if fields := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        return f"line {fields.group(2)} has {fields.group(3)} values, expected {fields.group(1)}"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, **layout.pandas_options(path))
    except READ_ERRORS:
        return f"bad data ({message})"
    first_bad = []
    for column, (_, text) in enumerate(frame.items()):
        numbers = pd.to_numeric(text.str.strip().str.replace(layout.decimal, ".", regex=False), errors="coerce")
        ok = np.isfinite(numbers.to_numpy(np.float64, na_value=np.nan))
        if not ok.all():
            first_bad.append((int(ok.argmin()), column))
    if not first_bad:
        return f"bad data ({message})"
    row, column = min(first_bad)  # row-major first
    value = frame.iat[row, column]
    value = value.strip() if isinstance(value, str) else ""  # a short row's missing fields are NaN
    if not value:
        return f"data row {row + 1}: missing value in column {column + 1} of {layout.columns}"
    kind = "an integer 0-255" if integers else "a number"
    return f"data row {row + 1}, column {column + 1}{layout.column_name(column)}: {value!r} is not {kind}"


def _label_column_from_data(path: Path, values: np.ndarray) -> int:
    """The first or the last column, for a headerless table of square + 1 columns: an all-zero column is a
    border pixel; of the others, the one holding whole numbers 0-9 only."""
    sides = {"first": 0, "last": values.shape[1] - 1}
    inked = {name: column for name, column in sides.items() if values[:, column].any()}
    if len(inked) == 1:
        return next(iter(inked.values()))  # the other is blank: a border pixel (checked as labels next)
    digits = {name: column for name, column in inked.items() if _whole_digits(values[:, column]).all()}
    if len(digits) == 1:
        return next(iter(digits.values()))
    if not inked:
        why = "the first and the last columns are all zeros"
    elif digits:
        why = "the first and the last columns both hold digits 0-9 only"
    else:
        why = "neither the first nor the last column holds digits 0-9 only"
    raise TableFormatError(f"{path}: no header, and {why}: cannot tell the label column; give {LABEL_COLUMN_HINT}")


def _whole_digits(values: np.ndarray) -> np.ndarray:
    """Per value: a whole number 0-9."""
    return (values <= 9) if values.dtype == np.uint8 else (values >= 0) & (values <= 9) & (values == np.round(values))


def _checked_labels(path: Path, layout: Layout, values: np.ndarray, column: int) -> np.ndarray:
    """int64 labels from the label column's values, or TableFormatError naming the first that is not 0-9."""
    good = _whole_digits(values)
    if not good.all():
        row = int(good.argmin())
        raise TableFormatError(
            f"{path}: data row {row + 1}: label {_number(values[row])} is not a digit 0-9 (column {column + 1}"
            f"{layout.column_name(column)}); give {LABEL_COLUMN_HINT} or NAME if the labels are elsewhere"
        )
    return values.astype(np.int64)


def _number(value) -> str:
    """A value as it was probably written: 12 rather than 12.0."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _scaled_pixels(
    path: Path, layout: Layout, pixels: np.ndarray, columns: np.ndarray, span: tuple[float, float] | None
) -> np.ndarray:
    """uint8 pixels from values in ``span`` (None: 0-255, or 0-1 when none exceeds 1), (v - low) * 255 /
    (high - low) rounded; TableFormatError naming the first value outside the range."""
    if span is None:
        span = UNIT_RANGE if pixels.size and pixels.max() <= 1 else BYTE_RANGE
        if pixels.dtype == np.uint8 and span == BYTE_RANGE:
            return pixels  # the fast path: nothing to check or scale
    low, high = span
    if pixels.dtype != np.uint8 or low > 0 or high < 255:
        outside = (pixels < low) | (pixels > high)
        if outside.any():
            row, position = divmod(int(np.argmax(outside)), pixels.shape[1])  # row-major first
            column = int(columns[position])
            kind = "an integer" if pixels.dtype == np.uint8 or not layout.floats else "a number"
            raise TableFormatError(
                f"{path}: data row {row + 1}, column {column + 1}{layout.column_name(column)}: "
                f"{_number(pixels[row, position])!r} is not {kind} {_number(low)}-{_number(high)}; "
                "give --value-range LOW-HIGH for another range"
            )
    if pixels.dtype == np.uint8 and span == BYTE_RANGE:
        return pixels
    # float64 throughout, rounded (half to even, as np.round): k/255 written with 10 decimals comes back as k
    return np.round((pixels - low) * (255.0 / (high - low))).astype(np.uint8)


def read_labels_file(path: Path, rows: int, table: Path) -> np.ndarray:
    """int64 (rows,) labels from a file of one label per line (a plain number, or the column a header names
    label/class/target/digit/y) or of one-hot rows (ten 0/1 columns), any separator read_table takes.
    TableFormatError naming this file and the first bad row, or both counts when they differ."""
    import pandas as pd

    path = Path(path)
    layout = sniff_layout(path)
    try:
        values = pd.read_csv(path, dtype=np.float64, **layout.pandas_options(path)).to_numpy()
    except READ_ERRORS as exc:
        raise TableFormatError(f"{path}: {_describe_unreadable(path, layout, False, exc)}") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise TableFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if np.isnan(values).any():
        raise TableFormatError(f"{path}: {_describe_unreadable(path, layout, False, None)}")
    named = [i for i, name in enumerate(layout.names or ()) if name.lower() in LABEL_NAMES]
    if len(named) == 1:
        values = values[:, named]
    if values.shape[1] == 1:
        labels = values[:, 0]
        if not (good := _whole_digits(labels)).all():
            row = int(good.argmin())
            raise TableFormatError(f"{path}: data row {row + 1}: label {_number(labels[row])} is not a digit 0-9")
    elif values.shape[1] == 10:
        one_hot = ((values == 0) | (values == 1)).all(axis=1) & (values.sum(axis=1) == 1)
        if not one_hot.all():
            row = int(one_hot.argmin())
            shown = " ".join(_number(v) for v in values[row])
            raise TableFormatError(f"{path}: data row {row + 1} ({shown}) is not one-hot: ten 0/1, one of them 1")
        labels = values.argmax(axis=1)
    else:
        raise TableFormatError(f"{path}: {values.shape[1]} columns: expected one label per line or ten one-hot columns")
    if len(labels) != rows:
        raise TableFormatError(
            f"{path}: {len(labels)} labels for the {rows} rows of {table}; --labels-file needs one label per row"
        )
    return labels.astype(np.int64)


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray, header: bool = True) -> None:
    """Write images (n, 28, 28) and labels in the Kaggle layout, atomically."""
    rows = np.hstack((np.asarray(labels, np.uint8)[:, None], np.asarray(images, np.uint8).reshape(len(images), -1)))
    text = (KAGGLE_HEADER + "\n").encode() if header else b""
    write_atomic(Path(path), text + encode_uint8_rows(rows))
