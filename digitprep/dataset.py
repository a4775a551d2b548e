"""A data set on disk as one unit: the one-hot CSV, its OUT.manifest.csv and its OUT.build.json.

`split`, `augment` and `mix` read a data set, rearrange or extend its rows, and write a new one
whose manifest still follows its rows line for line and whose build record still says how the
pixels were made (the trainer stores that record in its models, and `predict` relies on it).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitprep.build import sidecar_path
from digitprep.csvio import (
    AtomicWriter,
    DatasetFormatError,
    csv_text,
    encode_onehot_rows,
    onehot_header,
    read_onehot_csv,
)


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

    A CSV without a manifest gets one of ``path`` (``NAME.csv:ROW``, 1-based) and ``label``, so
    every row still has an identity that derived rows can point back to."""
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


def manifest_lines(rows: list[list[str]]) -> bytes:
    """Manifest rows as CSV lines, without a header line."""
    if not rows:
        return b""
    return csv_text([], rows).split(b"\n", 1)[1]


class DatasetWriter:
    """OUT.csv, OUT.manifest.csv and OUT.build.json written under temporary names and renamed into
    place together only when every part is complete: streamed with ``write_rows``, finished with
    ``commit(record)``. Used as a context manager, an exception leaves any old files untouched."""

    def __init__(self, csv_path: Path, n_pixels: int, classes: tuple[int, ...], manifest_header: list[str]):
        self.csv_path = Path(csv_path)
        self.data = AtomicWriter(self.csv_path)
        self.manifest = AtomicWriter(sidecar_path(self.csv_path, "manifest"))
        self.build = AtomicWriter(sidecar_path(self.csv_path, "build"))
        self.data.write(onehot_header(n_pixels, classes))
        self.manifest.write(csv_text(manifest_header, []))
        self.rows = 0

    def write_rows(self, csv_lines: bytes, manifest: bytes, count: int) -> None:
        """Already encoded data lines and their manifest lines (``count`` rows of each)."""
        self.data.write(csv_lines)
        self.manifest.write(manifest)
        self.rows += count

    def commit(self, record: dict) -> None:
        self.build.write((json.dumps({**record, "rows": self.rows}, indent=2, sort_keys=True) + "\n").encode())
        for writer in (self.data, self.manifest, self.build):
            writer.commit()

    def abort(self) -> None:
        for writer in (self.data, self.manifest, self.build):
            writer.abort()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.abort()


def write_dataset(csv_path: Path, dataset: StoredDataset, record: dict) -> None:
    """Write a whole data set (CSV, manifest, build record) atomically."""
    with DatasetWriter(csv_path, dataset.pixels.shape[1], dataset.classes, dataset.manifest_header) as writer:
        writer.write_rows(
            encode_onehot_rows(dataset.pixels, dataset.labels, dataset.classes),
            manifest_lines(dataset.manifest_rows),
            len(dataset.labels),
        )
        writer.commit(record)
