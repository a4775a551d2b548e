"""Contact sheets: a grid of samples per class, so a person can look at what the pipeline made."""

from __future__ import annotations

import cv2
import numpy as np

GAP = 2  # pixels of grey between tiles, so touching digits stay distinguishable
GAP_GREY = 96


def pick_samples(
    labels: np.ndarray, classes: tuple[int, ...], per_class: int, seed: int | None = None
) -> list[np.ndarray]:
    """Row indices to show for each class: the first ``per_class``, or a seeded random choice."""
    rng = np.random.default_rng(seed) if seed is not None else None
    picks = []
    for digit in classes:
        rows = np.flatnonzero(labels == digit)
        if rng is not None and len(rows) > per_class:
            rows = np.sort(rng.choice(rows, per_class, replace=False))
        picks.append(rows[:per_class])
    return picks


def contact_sheet(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: tuple[int, ...],
    per_class: int = 12,
    scale: int = 0,
    seed: int | None = None,
) -> np.ndarray:
    """uint8 image: one row per class (label on the left), up to ``per_class`` samples each."""
    side = round(pixels.shape[1] ** 0.5)
    scale = scale or max(1, 48 // side)
    tile = side * scale
    label_width = max(tile, 24)
    rows = pick_samples(labels, classes, per_class, seed)
    height = len(classes) * (tile + GAP) + GAP
    width = label_width + per_class * (tile + GAP) + GAP
    sheet = np.full((height, width), GAP_GREY, np.uint8)
    for r, (digit, indices) in enumerate(zip(classes, rows)):
        top = GAP + r * (tile + GAP)
        sheet[top : top + tile, :label_width] = 255
        font_scale = tile / 40
        cv2.putText(
            sheet,
            str(digit),
            (label_width // 4, top + int(tile * 0.75)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            0,
            max(1, tile // 24),
            cv2.LINE_AA,
        )
        for c in range(per_class):
            left = label_width + GAP + c * (tile + GAP)
            if c < len(indices):
                image = pixels[indices[c]].reshape(side, side)
                sheet[top : top + tile, left : left + tile] = np.kron(image, np.ones((scale, scale), np.uint8))
            else:
                sheet[top : top + tile, left : left + tile] = 40
    return sheet
