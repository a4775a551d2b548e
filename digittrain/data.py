"""Data for the trainer: one-hot CSVs in, float32 inputs and targets out, and their scaling."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.csvio import read_onehot_csv

SCALINGS = ("unit", "standard", "mnist")


@dataclass
class Dataset:
    pixels: np.ndarray  # uint8 (n, side * side)
    labels: np.ndarray  # int64 digits (n,)
    classes: tuple[int, ...]

    @property
    def class_index(self) -> np.ndarray:
        """Position of each row's label in ``classes`` (the network's output index)."""
        lookup = np.full(10, -1, np.int64)
        lookup[list(self.classes)] = np.arange(len(self.classes))
        return lookup[self.labels]

    def subset(self, rows: np.ndarray) -> Dataset:
        return Dataset(self.pixels[rows], self.labels[rows], self.classes)


def load_dataset(path: Path) -> Dataset:
    """A one-hot CSV as a Dataset (DatasetFormatError names the file on bad input)."""
    pixels, labels, classes = read_onehot_csv(path)
    return Dataset(pixels, labels, classes)


@dataclass
class Scaler:
    """Input scaling fitted on the training set only, stored with the model."""

    mode: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, mode: str, pixels: np.ndarray) -> Scaler:
        if mode not in SCALINGS:
            raise ValueError(f"unknown scaling {mode!r}: use one of {', '.join(SCALINGS)}")
        if mode != "standard":
            return cls(mode)
        values = pixels.astype(np.float64)
        std = values.std(axis=0)
        # Constant pixels (always-empty corners) would divide by zero; leave them centred at 0.
        return cls(mode, values.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1).astype(np.float32))

    def transform(self, pixels: np.ndarray) -> np.ndarray:
        """float32 inputs: /255, standardised, or MNIST lecture style 0.01-1.0."""
        x = pixels.astype(np.float32)
        if self.mode == "unit":
            return x / 255
        if self.mode == "mnist":
            return x * (0.99 / 255) + 0.01
        return (x - self.mean) / self.std


def smoothed_targets(class_index: np.ndarray, n_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """float32 one-hot targets, optionally label-smoothed: 1 - s on the class, s / k spread."""
    targets = np.full((len(class_index), n_classes), smoothing / n_classes, np.float32)
    targets[np.arange(len(class_index)), class_index] += 1 - smoothing
    return targets
