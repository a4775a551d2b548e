"""The data set on disk: the one-hot CSV, its OUT.manifest.csv, OUT.errors.csv and OUT.build.json.

Derived data sets (`split`, `augment`, `mix`) keep a manifest that follows their rows line for line
and a build record that says how the pixels were made (the trainer stores it in its models).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet, write_atomic
from digitprep.classes import classes_from_columns, onehot_column_names


def output_paths(out: Path, sizes: tuple[int, ...]) -> list[Path]:
    """OUT.csv for one size; OUT_{size}.csv for each of several."""
    out = Path(out)
    if len(sizes) == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{size}{out.suffix or '.csv'}") for size in sizes]


def sidecar_path(csv_path: Path, kind: str) -> Path:
    """OUT.manifest.csv, OUT.errors.csv, OUT.build.json beside OUT.csv."""
    csv_path = Path(csv_path)
    suffix = ".json" if kind == "build" else ".csv"
    return csv_path.with_name(f"{csv_path.stem}.{kind}{suffix}")


def onehot_header(n_pixels: int, classes: tuple[int, ...]) -> bytes:
    """The header line: pixel1..pixelN then isZero..isNine (or the subset in ``classes``)."""
    names = [f"pixel{i}" for i in range(1, n_pixels + 1)] + onehot_column_names(classes)
    return (",".join(names) + "\n").encode()


def csv_lines(rows: list) -> bytes:
    """Rows as CSV lines (quoted as the csv module does), UTF-8."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def csv_text(header: list[str], rows: list) -> bytes:
    """A small CSV (manifest, errors) with its header line."""
    return csv_lines([header, *rows])


def build_json(record: dict) -> bytes:
    """OUT.build.json's bytes."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def _code_table(terminator: bytes) -> np.ndarray:
    """(256,) uint32 whose 4 bytes are each value's decimal digits, the terminator, NUL padding."""
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
    return np.eye(len(classes), dtype=np.uint8)[positions]


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
    bad = np.flatnonzero(targets.sum(axis=1) != 1)  # uint8 values summing to 1: exactly one 1
    if len(bad):
        raise DatasetFormatError(f"{path}: row {bad[0] + 1} is not a valid one-hot label")
    labels = np.asarray(classes, np.int64)[targets.argmax(axis=1)]
    return pixels, labels, classes


@dataclass
class StoredDataset:
    """Rows of a one-hot CSV with their manifest rows (strings) and the build record (or {})."""

    pixels: np.ndarray  # uint8 (n, N)
    labels: np.ndarray  # int64 (n,)
    classes: tuple[int, ...]
    manifest_header: list[str]
    manifest_rows: list[list[str]]
    record: dict = field(default_factory=dict)

    @property
    def side(self) -> int | None:
        """The image side when the pixel count is a square, else None."""
        side = round(self.pixels.shape[1] ** 0.5)
        return side if side * side == self.pixels.shape[1] else None

    def subset(self, rows: np.ndarray) -> StoredDataset:
        """The given rows, in the given order, manifest rows along."""
        rows = np.asarray(rows, np.int64)
        return StoredDataset(
            self.pixels[rows],
            self.labels[rows],
            self.classes,
            list(self.manifest_header),
            [self.manifest_rows[r] for r in rows.tolist()],
            dict(self.record),
        )

    def column(self, name: str) -> list[str]:
        """One manifest column's values; KeyError when the manifest has no such column."""
        if name not in self.manifest_header:
            raise KeyError(name)
        index = self.manifest_header.index(name)
        return [row[index] for row in self.manifest_rows]


def read_manifest(path: Path) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of a manifest CSV, or None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetFormatError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    if not lines:
        raise DatasetFormatError(f"{path}: empty manifest (no header line)")
    header, rows = lines[0], lines[1:]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DatasetFormatError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
    return header, rows


def read_build_record(csv_path: Path) -> dict:
    """The data set's OUT.build.json, or {} when there is none."""
    path = sidecar_path(csv_path, "build")
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict):
        raise DatasetFormatError(f"{path}: not a JSON object")
    return record


def read_dataset(csv_path: Path) -> StoredDataset:
    """A one-hot CSV with its manifest and build record; DatasetFormatError names the bad file.
    Without a manifest, each row gets ``path`` ``NAME.csv:ROW`` (1-based) and its ``label``."""
    csv_path = Path(csv_path)
    pixels, labels, classes = read_onehot_csv(csv_path)
    manifest_path = sidecar_path(csv_path, "manifest")
    manifest = read_manifest(manifest_path)
    if manifest is None:
        header = ["path", "label"]
        rows = [[f"{csv_path.name}:{i}", str(label)] for i, label in enumerate(labels.tolist(), start=1)]
    else:
        header, rows = manifest
        if len(rows) != len(labels):
            raise DatasetFormatError(f"{manifest_path}: {len(rows)} rows, but {csv_path} has {len(labels)}")
        if "label" in header:
            column = header.index("label")
            recorded = np.array([row[column] for row in rows])
            mismatch = np.flatnonzero(recorded != labels.astype(str))
            if len(mismatch):
                raise DatasetFormatError(
                    f"{manifest_path}: row {mismatch[0] + 1} says label {recorded[mismatch[0]]}, "
                    f"but {csv_path} has {labels[mismatch[0]]}: the manifest does not follow the data"
                )
    return StoredDataset(pixels, labels, classes, header, rows, read_build_record(csv_path))


class DatasetWriter:
    """OUT.csv, OUT.manifest.csv and OUT.build.json as one set: ``write_rows``, then ``commit(record)``.
    Leaving its ``with`` block without a commit leaves the old files untouched."""

    def __init__(self, csv_path: Path, n_pixels: int, classes: tuple[int, ...], manifest_header: list[str]):
        self.csv_path = Path(csv_path)
        self.outputs = OutputSet()
        self.rows = 0
        try:
            self.data = self.outputs.open(self.csv_path)
            self.manifest = self.outputs.open(sidecar_path(self.csv_path, "manifest"))
            self.data.write(onehot_header(n_pixels, classes))
            self.manifest.write(csv_lines([manifest_header]))
        except BaseException:
            self.outputs.discard()
            raise

    def write_rows(self, lines: bytes, manifest: bytes, count: int) -> None:
        """Already encoded data lines and their manifest lines (``count`` rows of each)."""
        self.data.write(lines)
        self.manifest.write(manifest)
        self.rows += count

    def commit(self, record: dict) -> None:
        self.outputs.write(sidecar_path(self.csv_path, "build"), build_json({**record, "rows": self.rows}))
        self.outputs.commit()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.outputs.discard()


def write_datasets(parts: list[tuple[Path, StoredDataset, dict]]) -> None:
    """Write (csv_path, data set, build record) parts, each with manifest and build record: all or none."""
    with OutputSet() as outputs:
        for csv_path, dataset, record in parts:
            data = outputs.open(csv_path)
            data.write(onehot_header(dataset.pixels.shape[1], dataset.classes))
            data.write(encode_onehot_rows(dataset.pixels, dataset.labels, dataset.classes))
            outputs.write(sidecar_path(csv_path, "manifest"), csv_text(dataset.manifest_header, dataset.manifest_rows))
            outputs.write(sidecar_path(csv_path, "build"), build_json({**record, "rows": len(dataset.labels)}))
        outputs.commit()
