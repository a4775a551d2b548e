"""MNIST's IDX files (gzipped or not; told by their magic numbers, not their names) and tables (Kaggle CSVs
and the like: digitprep.tables) read into ``(images uint8 (n, 28, 28), labels int64 (n,))``, every header,
count and size checked, each problem a MnistFormatError naming the file; their MD5-checked download;
scikit-learn's 8x8 digits."""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet, write_atomic

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: count, rows, columns
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: count
KINDS = {IMAGES_MAGIC: "IDX images", LABELS_MAGIC: "IDX labels"}
BLOCK_BYTES = 1 << 20  # read, inflate and download in blocks of this size
# Names that promise an IDX file, so a wrong magic is reported as such rather than as a bad CSV.
IDX_NAME = re.compile(r"idx\d|ubyte", re.IGNORECASE)

# The sums torchvision checks (torchvision.datasets.MNIST.resources).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The mirror torchvision tries first, then Google's CVDF copy (yann.lecun.com no longer serves them).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
TIMEOUT_SECONDS = 60  # the longest a connection may stay silent
DEADLINE_SECONDS = 600  # the longest one file may take from one mirror: a trickle never times out


class MnistFormatError(ValueError):
    """An MNIST file that cannot be used; the message names the file and the reason."""


class DownloadError(OSError):
    """A file could not be fetched with the right checksum from any mirror; says which and why."""


@dataclass(frozen=True)
class MnistSet:
    """One source's images and labels: an images IDX file (with its labels file) or a table."""

    path: Path
    images: np.ndarray  # uint8 (n, rows, cols)
    labels: np.ndarray  # int64 (n,)


def is_gzip(path: Path) -> bool:
    """True when the file starts with gzip's magic number ``1f 8b``, whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_payload(path: Path):
    """A binary file object of the file's content, inflated as it is read when it is gzip."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_head(path: Path, count: int) -> bytes:
    """The first ``count`` bytes of a file's (decompressed) content."""
    try:
        with open_payload(path) as handle:
            return handle.read(count)
    except (EOFError, OSError, zlib.error) as exc:
        raise MnistFormatError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file's uint8 array (gzipped or not), its magic and size checked; read as a stream of exactly the
    bytes its header declares, so a gzip bomb is refused after one block more."""
    path = Path(path)
    try:
        with open_payload(path) as handle:
            return _read_idx_stream(handle, path, magic)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MnistFormatError(f"{path}: truncated or corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise MnistFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_idx_stream(handle, path: Path, magic: int) -> np.ndarray:
    size = 4 + 4 * (magic & 0xFF)  # the magic, then one big-endian uint32 per dimension (its last byte)
    header = handle.read(size)
    if len(header) < 4:
        raise MnistFormatError(f"{path}: truncated: {len(header)} bytes, not even an IDX magic number")
    if (found := int.from_bytes(header[:4], "big")) != magic:
        what = f"an {KINDS[found]} file" if found in KINDS else "not an MNIST IDX file"
        raise MnistFormatError(f"{path}: wrong magic 0x{found:08X} ({what}), expected 0x{magic:08X} ({KINDS[magic]})")
    if len(header) < size:
        raise MnistFormatError(f"{path}: truncated: the header needs {size} bytes, the file has {len(header)}")
    dims = np.frombuffer(header[4:], ">u4").tolist()
    shape = " x ".join(map(str, dims))
    if 0 in dims:
        empty = "no images" if dims[0] == 0 else "images of 0 pixels"
        raise MnistFormatError(f"{path}: the header declares {shape}: {empty}, nothing to read")
    expected = math.prod(dims)  # exact: a header may declare more than 2**63
    data = bytearray()  # read in blocks: memory follows what the file holds, not what its header claims
    while len(data) < expected and (block := handle.read(min(BLOCK_BYTES, expected - len(data)))):
        data += block
    if len(data) < expected:
        raise MnistFormatError(f"{path}: truncated: the header declares {shape} = {expected} bytes, found {len(data)}")
    if extra := len(handle.read(BLOCK_BYTES + 1)):  # a bomb's gigabytes stop here
        count = f"more than {BLOCK_BYTES}" if extra > BLOCK_BYTES else extra
        raise MnistFormatError(f"{path}: {count} bytes after the {shape} = {expected} the header declares")
    return np.frombuffer(data, np.uint8).reshape(dims)


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (n, rows, cols) from an IDX images file (``*-images-idx3-ubyte``, gzipped or not)."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: Path) -> np.ndarray:
    """int64 (n,) digits from an IDX labels file (``*-labels-idx1-ubyte``, gzipped or not)."""
    labels = read_idx(path, LABELS_MAGIC)
    check_digits(labels, path, "position")
    return labels.astype(np.int64)


def check_digits(labels: np.ndarray, path: Path, where: str, first: int = 0) -> None:
    """Raise naming the first label outside 0-9 (``where`` and its 0- or 1-based position)."""
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        raise MnistFormatError(f"{path}: {where} {int(bad[0]) + first}: label {int(labels[bad[0]])} is not a digit 0-9")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, atomically; gzipped (no timestamp) when the name ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs a uint8 array with 1 to 255 dimensions, not {array.dtype} {array.shape}")
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()  # 8: unsigned bytes
    data = header + array.tobytes()  # C order whatever the array's layout
    write_atomic(Path(path), gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


def file_kind(path: Path) -> str:
    """``images``, ``labels`` or ``csv``, from the file's first bytes (and, for IDX, its name)."""
    head = read_head(path, 4)
    if head[:2] == b"\0\0" or IDX_NAME.search(Path(path).name):
        found = int.from_bytes(head.ljust(4, b"\0"), "big")
        if found in KINDS:
            return "images" if found == IMAGES_MAGIC else "labels"
        expected = " or ".join(f"0x{magic:08X} ({kind})" for magic, kind in KINDS.items())
        raise MnistFormatError(f"{path}: wrong magic 0x{found:08X}, expected {expected}")
    return "csv"


def pairing_key(path: Path) -> str:
    """What an images file and its labels file share: ``t10k-images-idx3-ubyte.gz`` gives ``t10k--ubyte``."""
    return re.sub(r"images|labels|idx\d", "", Path(path).name.lower().removesuffix(".gz"))


def labels_beside(images_path: Path) -> Path | None:
    """The labels file next to an images file, by MNIST's naming, gzipped or not."""
    stem = images_path.name.removesuffix(".gz").replace("images", "labels").replace("idx3", "idx1")
    candidates = (images_path.with_name(name) for name in (stem, stem + ".gz"))
    return next((c for c in candidates if c != images_path and c.is_file()), None)


def read_mnist_sets(paths: list[Path], **table) -> list[MnistSet]:
    """Each images IDX file (with the labels file given with it or found beside it) or labelled table, in
    order. TABLE: ``digitprep.tables.read_table``'s keyword arguments (label_column, labels_file,
    value_range, shape, transpose) for the tables; ``transpose`` turns IDX images too. A table without
    labels, or a labels file without exactly one table, is a MnistFormatError."""
    from digitprep.tables import read_table  # imported here: tables uses this module's checks

    paths = [Path(p) for p in paths]
    if missing := [p for p in paths if not p.is_file()]:
        raise MnistFormatError(f"{missing[0]}: no such file")
    kinds = {path: file_kind(path) for path in paths}
    if (labels_file := table.get("labels_file")) is not None and (count := list(kinds.values()).count("csv")) != 1:
        raise MnistFormatError(f"{labels_file}: --labels-file labels one table, and the sources hold {count}")
    given_labels = {pairing_key(p): p for p in paths if kinds[p] == "labels"}
    sets: list[MnistSet] = []
    for path in paths:
        if kinds[path] == "csv":
            images, labels = read_table(path, **table)
            if labels is None:
                raise MnistFormatError(
                    f"{path}: no labels (no label column found); give --labels-file FILE or --label-column "
                    "first|last|NAME, or use `digittrain predict MODEL FILE` for predictions"
                )
            sets.append(MnistSet(path, images, labels))
        elif kinds[path] == "images":
            labels_path = given_labels.pop(pairing_key(path), None) or labels_beside(path)
            if labels_path is None:
                raise MnistFormatError(f"{path}: no labels file given or found beside it (*-labels-idx1-ubyte[.gz])")
            images, labels = read_idx_images(path), read_idx_labels(labels_path)
            if table.get("transpose"):  # EMNIST's IDX files too store each image transposed
                images = np.ascontiguousarray(images.transpose(0, 2, 1))
            if len(images) != len(labels):
                raise MnistFormatError(f"{path}: {len(images)} images but {labels_path} has {len(labels)} labels")
            sets.append(MnistSet(path, images, labels))
    for path in given_labels.values():
        raise MnistFormatError(f"{path}: labels file without its images file (*-images-idx3-ubyte[.gz])")
    return sets


def concatenate_sets(sets: list[MnistSet]) -> tuple[np.ndarray, np.ndarray]:
    """All sets' images and labels, in order (one image size for all)."""
    if not sets:
        raise MnistFormatError("no images file or Kaggle CSV among the sources")
    if len(sets) == 1:  # no concatenation: it would copy the whole set for nothing
        return sets[0].images, sets[0].labels
    if len(shapes := {s.images.shape[1:] for s in sets}) > 1:
        raise MnistFormatError(f"{', '.join(str(s.path) for s in sets)}: image sizes differ ({sorted(shapes)})")
    return np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets])


def load_mnist(paths: Path | str | list, **table) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, h, w), labels int64 (n,)) from IDX files and/or labelled tables, in order; TABLE as
    for ``read_mnist_sets``."""
    return concatenate_sets(read_mnist_sets([paths] if isinstance(paths, (str, Path)) else paths, **table))


def download(url: str, target: Path, md5: str, timeout: float, deadline: float) -> None:
    """Fetch ``url`` to ``target`` atomically, committed only when its MD5 is ``md5`` and it arrived
    within ``deadline`` seconds; otherwise DownloadError (or the network's OSError), nothing left."""
    finish_by = time.monotonic() + deadline
    digest = hashlib.md5(usedforsecurity=False)
    with OutputSet() as outputs:
        output = outputs.open(target)
        try:
            with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as response:
                # read1 returns what has come, so a trickle is checked against the deadline after every
                # piece; a silent server is cut off by the socket timeout, at most one timeout past it.
                read = getattr(response, "read1", response.read)
                while finish_by - time.monotonic() > 0:
                    if not (block := read(BLOCK_BYTES)):
                        break
                    digest.update(block)
                    output.write(block)
                else:
                    raise TimeoutError  # the deadline passed between two blocks
        except (TimeoutError, urllib.error.URLError) as exc:
            if time.monotonic() < finish_by:
                raise
            raise DownloadError(f"{target.name}: {url} took longer than the {deadline:g} s deadline") from exc
        if digest.hexdigest() != md5:
            raise DownloadError(f"{target.name}: wrong MD5 from {url}: expected {md5}, got {digest.hexdigest()}")
        outputs.commit()


def fetch(name: str, folder: Path, md5: str, mirrors: tuple[str, ...], timeout: float, deadline: float) -> str:
    """Make ``folder/name`` a verified copy: kept when its MD5 is right, else downloaded from the first
    mirror that serves it with that sum, each within ``deadline`` seconds. Returns what was done."""
    target = Path(folder) / name
    failures: list[str] = []
    if target.is_file():
        found = hashlib.md5(target.read_bytes(), usedforsecurity=False).hexdigest()  # MNIST's are 10 MB at most
        if found == md5:
            return "present, MD5 verified"
        # A corrupt copy must not survive a failed re-download looking like a finished one.
        target.unlink()
        failures.append(f"the copy there had MD5 {found}, expected {md5}: removed")
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            download(url, target, md5, timeout, deadline)
        except DownloadError as exc:
            failures.append(str(exc).removeprefix(f"{name}: "))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"cannot fetch {url} ({reason})")
        else:
            earlier = f" (after: {'; '.join(failures)})" if failures else ""
            return f"downloaded from {url}, MD5 verified{earlier}"
    raise DownloadError(f"{target}: " + "; ".join(failures + ([] if mirrors else ["no mirror given"])))


def fetch_mnist(
    folder: Path,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    checksums: dict[str, str] = MNIST_MD5,
    on_file: Callable[[str, str], None] = lambda name, status: None,
    deadline: float | None = None,
) -> None:
    """Fetch and verify every file of ``checksums`` (MNIST's four) into ``folder``, calling ``on_file(name,
    status)`` after each; all are tried, then DownloadError names those that failed and why."""
    failures: list[str] = []
    for name, md5 in checksums.items():
        try:
            on_file(name, fetch(name, folder, md5, mirrors, TIMEOUT_SECONDS, deadline or DEADLINE_SECONDS))
        except DownloadError as exc:
            failures.append(str(exc))
    if failures:
        raise DownloadError("; ".join(failures))


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8) with ink high, labels int64): values 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8), bunch.target.astype(np.int64)
