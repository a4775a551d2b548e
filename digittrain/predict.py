"""Predicting unlabelled data: image files, folders of images and pixel tables, each preprocessed
through digitprep's own code with the options recorded in the model, then written as CSV.

Which DATA is a table is told by the name alone: a file whose name ends in one of TABLE_SUFFIXES
(``.csv``, ``.tsv``, ``.txt``, each optionally gzipped: ``.csv.gz``...) is read as a table of
pixel rows; a folder is walked for image files the way `digitprep build` walks it (natural order,
links followed once); any other file is an image. Tables and images are not mixed in one run: the
two give different CSV layouts (``ImageId,Label`` for tables, Kaggle's submission layout, and
``File,Label`` for images).

``Predictor`` is also the Python API's model (``digittrain.load_model``): ``predict`` and
``predict_proba`` on pixel rows as digitprep's CSVs hold them, ``preprocess`` for raw images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitprep.build import PIXEL_BUDGET
from digitprep.csvio import csv_lines
from digitprep.decode import UnusableImage, decode_grey
from digitprep.normalize import BlankImage, ImageTooLarge, normalize, normalize_stack
from digitprep.options import MNIST_BOX, NormalizeOptions
from digitprep.sources import IMAGE_SUFFIXES, shown, walk_images
from digittrain.data import Scaler
from digittrain.model import MLP
from digittrain.modelio import ModelFileError, load_model

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
PROBABILITY_DECIMALS = 6
BLANK_IDS_SHOWN = 5  # ids listed in a table's blank-rows warning, the rest counted


def preprocessing_of(metadata: dict) -> tuple[int, NormalizeOptions, bool]:
    """(size, normalisation options, labelrow) the model's training data was built with."""
    recorded = metadata.get("preprocessing") or {}
    size = int(recorded.get("size") or round(metadata.get("input_size", 400) ** 0.5))
    options = NormalizeOptions(
        bool(recorded.get("deskew")),
        bool(recorded.get("center")),
        float(recorded.get("box") or MNIST_BOX),
        float(recorded.get("stroke") or 0.0),
    )
    return size, options, recorded.get("labels") == "labelrow"


def image_row(path: Path, size: int, options: NormalizeOptions, labelrow: bool = False) -> np.ndarray:
    """One image file -> the uint8 pixel row the model expects; UnusableImage says why not."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnusableImage(f"cannot read: {exc.strerror or exc}") from None
    grey = decode_grey(data)
    if labelrow:
        grey = grey[1:]
    try:
        (image,) = normalize(grey, (size,), options)
    except BlankImage as exc:
        raise UnusableImage(str(exc)) from None
    return image.reshape(-1)


def predict_rows(model: MLP, scaler: Scaler, rows: np.ndarray, classes: list[int]) -> list[tuple[int, float]]:
    """(digit, probability) for each pixel row."""
    probabilities = model.predict_proba(scaler.transform(rows))
    best = probabilities.argmax(axis=1)
    return [(int(classes[i]), float(p[i])) for i, p in zip(best, probabilities)]


def pixel_values(array, shape: str, ndim: int, what: str) -> np.ndarray:
    """``array`` as an ndarray of ``ndim`` dimensions holding pixel values 0-255 (any integer or
    float dtype); a one-line ValueError naming ``what`` and the ``shape`` expected otherwise."""
    values = np.asarray(array)
    if values.ndim != ndim:
        raise ValueError(f"expected {what} of shape {shape}, got {values.shape}")
    if values.dtype.kind not in "uif":
        raise ValueError(
            f"expected {what} of numbers (pixel values 0-255, uint8 as digitprep writes), got dtype {values.dtype}"
        )
    if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 255):
        raise ValueError(
            f"values of {what} outside 0-255 ({values.min()} to {values.max()}): give pixel values as "
            "digitprep writes them, the model scales them itself"
        )
    return values


@dataclass(frozen=True)
class Predictor:
    """A model with what its inputs must be: ``size`` x ``size`` images normalised with ``options``
    (and, with ``labelrow``, image files whose first row holds the label, cut off).

    From Python (``digittrain.load_model``): ``predict(X)`` and ``predict_proba(X)`` take pixel rows
    exactly as digitprep's CSVs hold them, the input scaling stored in the model applied inside;
    ``preprocess(images)`` turns raw images into such rows; ``classes``, ``sizes``, ``metadata``."""

    model: MLP
    scaler: Scaler
    classes: tuple[int, ...]
    size: int
    options: NormalizeOptions
    labelrow: bool = False
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def load(cls, path: Path, default_activation: str = "sigmoid") -> Predictor:
        """A model file (``.npz``, as ``digittrain --save`` writes) and its recorded preprocessing.
        A bare ``W1..Wn``/``b1..bn`` file gets ``default_activation`` hidden layers, inputs /255 and
        classes 0..outputs-1. ModelFileError (a ValueError, one line naming the file) when the file
        is not such a model or its metadata do not fit its arrays."""
        model, scaler, metadata = load_model(path, default_activation)
        size, options, labelrow = preprocessing_of({"input_size": model.sizes[0], **metadata})
        if size * size != model.sizes[0]:
            raise ModelFileError(f"{path}: recorded size {size} does not fit {model.sizes[0]} inputs")
        classes = tuple(int(c) for c in metadata.get("classes") or range(model.sizes[-1]))
        if len(classes) != model.sizes[-1]:
            raise ModelFileError(f"{path}: {model.sizes[-1]} outputs but {len(classes)} classes")
        return cls(model, scaler, classes, size, options, labelrow, metadata)

    @property
    def sizes(self) -> list[int]:
        """Layer widths, inputs first (``[400, 256, 256, 10]``)."""
        return list(self.model.sizes)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """uint8 pixel rows (n, size * size) -> float32 class probabilities (n, classes)."""
        if not len(rows):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.model.predict_proba(self.scaler.transform(rows))

    def pixel_rows(self, X) -> np.ndarray:
        """``X`` checked to be pixel rows this model takes: (n, size * size), values 0-255."""
        width = self.model.sizes[0]
        rows = pixel_values(X, f"(n, {width})", 2, "X")
        if rows.shape[1] != width:
            raise ValueError(
                f"X has {rows.shape[1]} columns, but this model takes {width}: "
                f"rows of {self.size}x{self.size} pixels, as digitprep's CSVs hold them"
            )
        return rows

    def predict_proba(self, X) -> np.ndarray:
        """Pixel rows (n, size * size), uint8 or any numbers 0-255 as in digitprep's CSVs (a
        DataFrame too) -> float32 (n, len(classes)) probabilities, columns in ``classes`` order.
        ValueError (one line, naming the width expected) for any other shape or values."""
        return self.probabilities(self.pixel_rows(X)).astype(np.float32, copy=False)

    def predict(self, X) -> np.ndarray:
        """Pixel rows (n, size * size) as for ``predict_proba`` -> int64 (n,) the most probable digit
        of each row (the digit itself, taken from ``classes``)."""
        rows = self.pixel_rows(X)
        if not len(rows):
            return np.zeros(0, np.int64)
        return np.asarray(self.classes, np.int64)[self.model.predict(self.scaler.transform(rows))]

    def preprocess(self, images) -> np.ndarray:
        """Raw grey images (n, height, width), values 0-255, any size, dark ink on light paper or
        the reverse -> uint8 pixel rows (n, size * size) for ``predict``: normalised as the model's
        training data was (size, deskew, centre, box and stroke recorded in the model), as
        `digittrain predict` normalises a table's images. An image where no ink stands out gives an
        all-zero row. A ``labelrow`` model's label row is not cut here: give the digit alone."""
        stack = pixel_values(images, "(n, height, width): grey images", 3, "images")
        if 0 in stack.shape[1:]:
            raise ValueError(f"expected images of at least one pixel, got shape {stack.shape}")
        if stack.dtype.kind == "f":
            stack = np.rint(stack)
        rows, _ = table_rows(stack.astype(np.uint8, copy=False), self.size, self.options)
        return rows


@dataclass
class Predictions:
    """One prediction per usable input, in input order: its key (a 1-based ImageId for table rows,
    the shown path for image files) and the model's probabilities; ``failed`` counts the inputs
    that could not be used (each already reported)."""

    key_name: str  # the key column's name: "ImageId" or "File"
    keys: list
    probabilities: np.ndarray  # float32 (n, classes)
    classes: tuple[int, ...]
    failed: int = 0

    @property
    def digits(self) -> np.ndarray:
        """int64 (n,): the most probable class of each row."""
        return np.asarray(self.classes, np.int64)[self.probabilities.argmax(axis=1)]

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable classes of each row, most probable first: (int64 digits (n, k),
        float32 probabilities (n, k)). Equal probabilities keep class order, so column 0 is
        ``digits``. ValueError unless 1 <= k <= len(classes)."""
        if not 1 <= k <= len(self.classes):
            raise ValueError(f"top {k}: the model has {len(self.classes)} classes")
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        digits = np.asarray(self.classes, np.int64)[order]
        return digits, np.take_along_axis(self.probabilities, order, axis=1)

    def csv(self, with_probabilities: bool = False, top: int = 0) -> bytes:
        """``KEY,Label`` lines under their header (Kaggle's submission layout for tables); with
        ``top`` K, ``Probability`` (the Label's) then ``Label_2,Probability_2`` ... ``Label_K,
        Probability_K``, the next most probable digits; with ``with_probabilities`` one more column
        per class, named by its digit. Probabilities have PROBABILITY_DECIMALS decimals."""
        header, rows = [self.key_name, "Label"], [[key, digit] for key, digit in zip(self.keys, self.digits.tolist())]
        if top:
            digits, values = self.top(top)
            header.append("Probability")
            for rank in range(2, top + 1):
                header += [f"Label_{rank}", f"Probability_{rank}"]
            for row, ranked, text in zip(rows, digits.tolist(), _decimals(values)):
                row.append(text[0])
                for digit, value in zip(ranked[1:], text[1:]):
                    row += [digit, value]
        if with_probabilities:
            header += [str(c) for c in self.classes]
            rows = [row + values for row, values in zip(rows, _decimals(self.probabilities))]
        return csv_lines([header, *rows])

    def lines(self, top: int = 1) -> list[str]:
        """``key: digit (probability)`` per row, as a person reads them; with ``top`` K the K most
        probable digits, ``key: 3 (0.912), 8 (0.050), 5 (0.020)``."""
        if not len(self.keys):
            return []
        digits, values = self.top(top)
        return [
            f"{key}: " + ", ".join(f"{digit} ({p:.3f})" for digit, p in zip(d, v))
            for key, d, v in zip(self.keys, digits.tolist(), values.tolist())
        ]


def _decimals(probabilities: np.ndarray) -> list[list[str]]:
    """Probabilities as text with PROBABILITY_DECIMALS decimals, row by row."""
    return np.char.mod(f"%.{PROBABILITY_DECIMALS}f", probabilities.astype(np.float64)).tolist()


def is_table(path: Path) -> bool:
    """Whether DATA ``path`` is read as a table: its name ends in a TABLE_SUFFIXES suffix, maybe
    followed by ``.gz`` (``test.csv.gz``: read_table tells gzip from the bytes). A folder never is."""
    name = Path(path).name.lower().removesuffix(".gz")
    return name.endswith(TABLE_SUFFIXES) and not Path(path).is_dir()


def image_entries(sources: list[Path]) -> list[tuple[str, str, str | None]]:
    """(path, shown path, problem or None) of every image among the sources, in order: a file as
    given, a folder walked as `digitprep build` walks it (natural order within each folder)."""
    found = []
    for source in sources:
        if not Path(source).is_dir():
            found.append((str(source), shown(str(source)), None))
            continue
        display = shown(os.path.normpath(str(source)))
        entries = [(path, shown_path, problem) for path, shown_path, _, problem in walk_images(str(source), display)]
        if not entries:
            suffixes = ", ".join(IMAGE_SUFFIXES)
            entries = [(str(source), display, f"no image files in this folder ({suffixes})")]
        found.extend(entries)
    return found


def predict_images(predictor: Predictor, sources: list[Path], warn: Callable[[str], None]) -> Predictions:
    """Image files and folders -> Predictions keyed by shown path. An image that cannot be used
    (unreadable, not an image, blank) is told to ``warn`` in one line and counted in ``failed``."""
    rows, keys, failed = [], [], 0
    for path, display, problem in image_entries(sources):
        try:
            if problem:
                raise UnusableImage(problem)
            rows.append(image_row(Path(path), predictor.size, predictor.options, predictor.labelrow))
            keys.append(display)
        except UnusableImage as exc:
            warn(f"{display}: cannot use: {exc}")
            failed += 1
    pixels = np.stack(rows) if rows else np.zeros((0, predictor.size**2), np.uint8)
    return Predictions("File", keys, predictor.probabilities(pixels), predictor.classes, failed)


def table_rows(images: np.ndarray, size: int, options: NormalizeOptions) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, H, W) from a table -> (uint8 rows (n, size * size), bool (n,) blank mask),
    normalised as `digitprep mnist --out` normalises in-memory images (``normalize_stack``, a few
    million pixels at a time). A blank image's row is all zeros: every input keeps a row.
    ImageTooLarge when OpenCV cannot take images this large."""
    rows = np.zeros((len(images), size * size), np.uint8)
    blank = np.zeros(len(images), bool)
    step = max(1, PIXEL_BUDGET // max(1, images[0].size if len(images) else 1))
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        (stack,), chunk_blank, _ = normalize_stack(chunk, (size,), options)
        kept = start + np.flatnonzero(~chunk_blank)
        rows[kept] = stack.reshape(len(stack), size * size)  # not -1: a chunk may be all blank, 0 images
        blank[start : start + len(chunk)] = chunk_blank
    return rows, blank


def predict_tables(
    predictor: Predictor, tables: list[Path], table_arguments: dict, warn: Callable[[str], None]
) -> Predictions:
    """Tables of pixel rows (read by ``digitprep.tables.read_table`` with ``table_arguments``; their
    labels, if any, ignored) -> Predictions keyed by ImageId, 1-based and continuing from one table
    to the next. Rows that normalise to blank are predicted from an all-zero image, so every
    ImageId has a Label, and each table with such rows gets one ``warn`` line counting them.
    A table that cannot be read raises its TableFormatError (a ValueError naming the file)."""
    from digitprep.tables import read_table  # imported here: pandas costs 0.4 s, images do not need it

    parts, first_id = [], 1
    for path in tables:
        images, _ = read_table(path, **table_arguments)
        try:
            rows, blank = table_rows(images, predictor.size, predictor.options)
        except ImageTooLarge as exc:
            raise ImageTooLarge(f"{path}: {exc}") from None
        if blank.any():
            ids = (first_id + np.flatnonzero(blank)).tolist()
            listed = ", ".join(map(str, ids[:BLANK_IDS_SHOWN])) + (", ..." if len(ids) > BLANK_IDS_SHOWN else "")
            warn(
                f"{path}: {len(ids)} of {len(rows)} rows blank after normalisation (no ink found; "
                f"ImageId {listed}): predicted from an all-zero image"
            )
        parts.append(predictor.probabilities(rows))
        first_id += len(rows)
    probabilities = np.concatenate(parts) if parts else np.zeros((0, len(predictor.classes)), np.float32)
    return Predictions("ImageId", list(range(1, first_id)), probabilities, predictor.classes)


def predict_data(
    predictor: Predictor, sources: list[Path], table_arguments: dict, warn: Callable[[str], None]
) -> Predictions:
    """DATA as `digittrain predict` takes it: all tables (``predict_tables``) or all image files and
    folders (``predict_images``); a mix is a ValueError, as the two give different layouts."""
    sources = [Path(source) for source in sources]
    tables = [source for source in sources if is_table(source)]
    if tables and len(tables) < len(sources):
        image = next(source for source in sources if not is_table(source))
        raise ValueError(
            f"{tables[0]}: a table given with images ({image}): predict tables and images in separate runs"
        )
    if tables:
        return predict_tables(predictor, tables, table_arguments, warn)
    return predict_images(predictor, sources, warn)
