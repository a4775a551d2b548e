"""scikit-learn's bundled handwritten 8x8 digits (1797 images, no download) as uint8 images."""

from __future__ import annotations

import numpy as np


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8) with ink high, labels int64): values 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int64)
