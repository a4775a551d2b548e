"""digittrain: a multilayer perceptron written with NumPy alone, trained on digitprep's CSVs.

From Python, ``digittrain.load_model(path)`` reads a model file into a ``Predictor``:
``predict(X)`` (int64 digits) and ``predict_proba(X)`` (float32 probabilities) on pixel rows as
digitprep's CSVs hold them, ``preprocess(images)`` for raw images (see ``predict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digittrain.predict import Predictor

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def load_model(path, default_activation: str = "sigmoid") -> Predictor:
    """A model file (``.npz``, as ``digittrain --save`` or ``import-weights`` write it) ready to
    predict: ``.predict(X)`` -> int64 digits (n,), ``.predict_proba(X)`` -> float32 (n, classes),
    for X uint8 (or any 0-255 numbers) pixel rows (n, N) exactly as digitprep's CSVs hold them, the
    input scaling stored in the model applied inside; ``.preprocess(images)`` turns raw grey images
    (n, height, width) into such rows with the preprocessing recorded in the model; ``.classes``
    (tuple of digits, the order of predict_proba's columns), ``.sizes`` (layer widths),
    ``.metadata`` (the model's JSON metadata). A bare ``W1..Wn``/``b1..bn`` file gets
    ``default_activation`` hidden layers. ModelFileError (a ValueError) names a file that is not a
    model; predict raises a one-line ValueError naming the width expected for any other X."""
    from digittrain.predict import Predictor  # imported here: it loads OpenCV, which the CLI defers

    return Predictor.load(path, default_activation)
