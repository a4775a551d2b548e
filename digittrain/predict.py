"""Predicting unlabelled data: image files, folders of images and pixel tables, each preprocessed
through digitprep's own code with the options recorded in the model, then written as CSV.

Which DATA is a table is told by the name alone: a file whose name ends in one of TABLE_SUFFIXES
(``.csv``, ``.tsv``, ``.txt``, each optionally gzipped: ``.csv.gz``...) is read as a table of
pixel rows; a folder is walked for image files the way `digitprep build` walks it (natural order,
links followed once); any other file is an image. Tables and images are not mixed in one run: the
two give different CSV layouts (``ImageId,Label`` for tables, Kaggle's submission layout, and
``File,Label`` for images).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Predictor:
    """A model with what its inputs must be: ``size`` x ``size`` images normalised with ``options``
    (and, with ``labelrow``, image files whose first row holds the label, cut off)."""

    model: MLP
    scaler: Scaler
    classes: tuple[int, ...]
    size: int
    options: NormalizeOptions
    labelrow: bool = False

    @classmethod
    def load(cls, path: Path) -> Predictor:
        """A model file and its recorded preprocessing; ModelFileError when they do not fit."""
        model, scaler, metadata = load_model(path)
        size, options, labelrow = preprocessing_of({"input_size": model.sizes[0], **metadata})
        if size * size != model.sizes[0]:
            raise ModelFileError(f"{path}: recorded size {size} does not fit {model.sizes[0]} inputs")
        classes = tuple(int(c) for c in metadata.get("classes") or range(model.sizes[-1]))
        if len(classes) != model.sizes[-1]:
            raise ModelFileError(f"{path}: {model.sizes[-1]} outputs but {len(classes)} classes")
        return cls(model, scaler, classes, size, options, labelrow)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """uint8 pixel rows (n, size * size) -> float32 class probabilities (n, classes)."""
        if not len(rows):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.model.predict_proba(self.scaler.transform(rows))


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

    def csv(self, with_probabilities: bool = False) -> bytes:
        """``KEY,Label`` lines under their header (Kaggle's submission layout for tables), with
        ``with_probabilities`` one more column per class, named by its digit, PROBABILITY_DECIMALS
        decimals."""
        header = [self.key_name, "Label"] + ([str(c) for c in self.classes] if with_probabilities else [])
        rows = [[key, digit] for key, digit in zip(self.keys, self.digits.tolist())]
        if with_probabilities:
            text = np.char.mod(f"%.{PROBABILITY_DECIMALS}f", self.probabilities.astype(np.float64)).tolist()
            rows = [row + values for row, values in zip(rows, text)]
        return csv_lines([header, *rows])

    def lines(self) -> list[str]:
        """``key: digit (probability)`` per row, as a person reads them."""
        best = self.probabilities.max(axis=1).tolist() if len(self.keys) else []
        return [f"{key}: {digit} ({p:.3f})" for key, digit, p in zip(self.keys, self.digits.tolist(), best)]


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
        rows[kept] = stack.reshape(len(stack), -1)
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
