"""The standard MNIST files: IDX images and labels (gzipped or not) and the Kaggle CSV, read into
``(images uint8 (n, 28, 28), labels int64 (n,))`` with every header, count and size checked.

Compression and kind are told from the bytes, not the name: gzip by its magic ``1f 8b``, IDX by
its magic (``00 00 08 03`` images, ``00 00 08 01`` labels), anything else is read as a Kaggle CSV
(``label,1x1,...,28x28``, the header row optional). Every problem is a MnistFormatError whose
message names the file and the reason.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.csvio import encode_uint8_rows, write_atomic

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: count, rows, columns
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: count
IDX_UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
SIDE = 28
KAGGLE_COLUMNS = 1 + SIDE * SIDE  # label, then the pixels row by row
KAGGLE_HEADER = ",".join(["label"] + [f"{row}x{col}" for row in range(1, SIDE + 1) for col in range(1, SIDE + 1)])
# Names that promise an IDX file, so a wrong magic is reported as such rather than as a bad CSV.
IDX_NAME = re.compile(r"idx\d|ubyte", re.IGNORECASE)


class MnistFormatError(ValueError):
    """An MNIST file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class MnistSet:
    """One source's images and labels: an images IDX file (with its labels file) or a Kaggle CSV."""

    path: Path
    images: np.ndarray  # uint8 (n, rows, cols)
    labels: np.ndarray  # int64 (n,)


def is_gzip(path: Path) -> bool:
    """True when the file starts with gzip's magic number, whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def read_payload(path: Path) -> bytes:
    """A file's bytes, decompressed when it is gzip."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MnistFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise MnistFormatError(f"{path}: truncated or corrupt gzip data ({exc})") from None


def _head(path: Path, count: int) -> bytes:
    """The first ``count`` bytes of a file's (decompressed) content."""
    try:
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rb") as handle:
            return handle.read(count)
    except (EOFError, OSError, zlib.error) as exc:
        raise MnistFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def parse_idx(data: bytes, path: Path, magic: int) -> np.ndarray:
    """An IDX file's array from its decompressed bytes, checking the magic against ``magic`` and
    the byte count against the dimensions the header declares."""
    if len(data) < 4:
        raise MnistFormatError(f"{path}: truncated: {len(data)} bytes, not even an IDX magic number")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kinds = {IMAGES_MAGIC: "IDX images", LABELS_MAGIC: "IDX labels"}
        what = f"an {kinds[found]} file" if found in kinds else "not an MNIST IDX file"
        raise MnistFormatError(f"{path}: wrong magic 0x{found:08X} ({what}), expected 0x{magic:08X} ({kinds[magic]})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistFormatError(f"{path}: truncated: the header needs {header} bytes, the file has {len(data)}")
    dims = [int(d) for d in np.frombuffer(data, ">u4", ndim, 4)]
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header
    shape = " x ".join(map(str, dims))
    if actual < expected:
        raise MnistFormatError(f"{path}: truncated: the header declares {shape} = {expected} bytes, found {actual}")
    if actual > expected:
        raise MnistFormatError(f"{path}: {actual - expected} bytes after the {shape} = {expected} the header declares")
    return np.frombuffer(data, np.uint8, expected, header).reshape(dims).copy()


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (n, rows, cols) from an IDX images file (``*-images-idx3-ubyte``, gzipped or not)."""
    return parse_idx(read_payload(path), Path(path), IMAGES_MAGIC)


def read_idx_labels(path: Path) -> np.ndarray:
    """int64 (n,) digits from an IDX labels file (``*-labels-idx1-ubyte``, gzipped or not)."""
    labels = parse_idx(read_payload(path), Path(path), LABELS_MAGIC)
    check_digits(labels, path, "position")
    return labels.astype(np.int64)


def check_digits(labels: np.ndarray, path: Path, where: str, first: int = 0) -> None:
    """Raise naming the first label outside 0-9 (``where`` and its 0- or 1-based position)."""
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        raise MnistFormatError(f"{path}: {where} {int(bad[0]) + first}: label {int(labels[bad[0]])} is not a digit 0-9")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic, big-endian dimensions, bytes), atomically;
    gzipped (reproducibly: no timestamp) when the name ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs a uint8 array with 1 to 255 dimensions, not {array.dtype} {array.shape}")
    header = bytes([0, 0, IDX_UNSIGNED_BYTE, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_atomic(Path(path), data)


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
    head = _head(path, 64 * 1024)
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


def file_kind(path: Path) -> str:
    """``images``, ``labels`` or ``csv``, from the file's first bytes (and, for IDX, its name)."""
    head = _head(path, 4)
    if head[:2] == b"\0\0" or IDX_NAME.search(Path(path).name):
        found = int.from_bytes(head.ljust(4, b"\0"), "big")
        if found == IMAGES_MAGIC:
            return "images"
        if found == LABELS_MAGIC:
            return "labels"
        raise MnistFormatError(
            f"{path}: wrong magic 0x{found:08X}, expected 0x{IMAGES_MAGIC:08X} (IDX images) "
            f"or 0x{LABELS_MAGIC:08X} (IDX labels)"
        )
    return "csv"


def pairing_key(path: Path) -> str:
    """What an images file and its labels file share: ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte`` both give ``t10k--ubyte``."""
    name = Path(path).name.lower().removesuffix(".gz")
    return re.sub(r"images|labels|idx\d", "", name)


def labels_beside(images_path: Path) -> Path | None:
    """The labels file next to an images file, by MNIST's naming, gzipped or not."""
    images_path = Path(images_path)
    stem = images_path.name.removesuffix(".gz").replace("images", "labels").replace("idx3", "idx1")
    for name in (stem, stem + ".gz"):
        candidate = images_path.with_name(name)
        if candidate != images_path and candidate.is_file():
            return candidate
    return None


def read_mnist_sets(paths: list[Path]) -> list[MnistSet]:
    """Each images IDX file (paired with the labels file given beside it, or found next to it)
    or Kaggle CSV among ``paths``, in the order given."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise MnistFormatError(f"{path}: no such file")
    kinds = {path: file_kind(path) for path in paths}
    given_labels = {pairing_key(p): p for p in paths if kinds[p] == "labels"}
    sets: list[MnistSet] = []
    for path in paths:
        if kinds[path] == "csv":
            sets.append(MnistSet(path, *read_kaggle_csv(path)))
        elif kinds[path] == "images":
            labels_path = given_labels.pop(pairing_key(path), None) or labels_beside(path)
            if labels_path is None:
                raise MnistFormatError(f"{path}: no labels file given or found beside it (*-labels-idx1-ubyte[.gz])")
            images, labels = read_idx_images(path), read_idx_labels(labels_path)
            if len(images) != len(labels):
                raise MnistFormatError(f"{path}: {len(images)} images but {labels_path} has {len(labels)} labels")
            sets.append(MnistSet(path, images, labels))
    for path in given_labels.values():
        raise MnistFormatError(f"{path}: labels file without its images file (*-images-idx3-ubyte[.gz])")
    return sets


def load_mnist(paths: Path | str | list) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64 (n,)) from IDX files and/or Kaggle CSVs, in order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    sets = read_mnist_sets(paths)
    if not sets:
        raise MnistFormatError(f"{', '.join(map(str, paths))}: no images file or Kaggle CSV among them")
    if len(sets) == 1:  # no concatenation: it would copy the whole set for nothing
        return sets[0].images, sets[0].labels
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) > 1:
        raise MnistFormatError(f"{', '.join(str(s.path) for s in sets)}: image sizes differ ({sorted(shapes)})")
    return np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets])
