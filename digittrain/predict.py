"""Predicting raw images: the preprocessing recorded in the model, through digitprep's own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitprep.decode import UnusableImage, decode_grey
from digitprep.normalize import BlankImage, normalize
from digitprep.options import MNIST_BOX, NormalizeOptions
from digittrain.data import Scaler
from digittrain.model import MLP


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
