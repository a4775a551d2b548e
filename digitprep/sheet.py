"""Contact sheets: a grid of samples per class, so a person can look at what the pipeline made."""

from __future__ import annotations

import cv2
import numpy as np

GAP = 2  # pixels of grey between tiles, so touching digits stay distinguishable
GAP_GREY = 96


def contact_sheet(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: tuple[int, ...],
    per_class: int = 12,
    scale: int = 0,
    seed: int | None = None,
) -> np.ndarray:
    """uint8 image: one row per class (label on the left), the first ``per_class`` samples of each
    or, with ``seed``, a seeded random choice of them."""
    side = round(pixels.shape[1] ** 0.5)
    scale = scale or max(1, 48 // side)
    tile = side * scale
    label_width = max(tile, 24)
    rng = np.random.default_rng(seed) if seed is not None else None
    sheet = np.full(
        (len(classes) * (tile + GAP) + GAP, label_width + per_class * (tile + GAP) + GAP), GAP_GREY, np.uint8
    )
    for r, digit in enumerate(classes):
        indices = np.flatnonzero(labels == digit)
        if rng is not None and len(indices) > per_class:
            indices = np.sort(rng.choice(indices, per_class, replace=False))
        top = GAP + r * (tile + GAP)
        sheet[top : top + tile, :label_width] = 255
        corner = (label_width // 4, top + int(tile * 0.75))
        cv2.putText(sheet, str(digit), corner, cv2.FONT_HERSHEY_SIMPLEX, tile / 40, 0, max(1, tile // 24), cv2.LINE_AA)
        for c in range(per_class):
            left = label_width + GAP + c * (tile + GAP)
            image = pixels[indices[c]].reshape(side, side).repeat(scale, 0).repeat(scale, 1) if c < len(indices) else 40
            sheet[top : top + tile, left : left + tile] = image
    return sheet
