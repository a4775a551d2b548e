"""Stroke width: measured from the distance transform, and set by re-drawing the digit's skeleton.

A width is given in pixels of the digit drawn MNIST's way, its longer side 20 pixels (so the same
number means the same look whatever the input's resolution). A 1-pixel pencil line on a large
canvas averages away to a faint hairline in the resize; a fat marker fills its loops. Re-drawn
at MNIST's typical width both look like the digits a model was trained on.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

DIGIT_SIDE = 20  # widths are in pixels of a digit whose longer side is this long (MNIST's box at 28)
MNIST_STROKE = 2.9  # MNIST's median stroke width there (``stroke_width`` over 1 000 test digits)


def ink_mask(image: np.ndarray) -> np.ndarray:
    """2-D bool: the pixels at or above half the image's peak (the stroke at half its height)."""
    peak = float(image.max())
    return image >= peak / 2 if peak > 0 else np.zeros(image.shape, bool)


def stroke_width(image: np.ndarray) -> float:
    """The mean stroke width of a 2-D ink-high image, in its own pixels (0 without ink): the ink's
    area over the length of its skeleton (``skimage.morphology.skeletonize``), a stroke of width w
    and length L covering w * L pixels along an L-pixel centre line."""
    mask = ink_mask(image)
    length = skeletonize(mask).sum()
    return float(mask.sum() / length) if length else 0.0


def set_stroke(stack: np.ndarray, boxes: np.ndarray, width: float) -> tuple[np.ndarray, list[str]]:
    """(n, H, W) float32 ink-high images with their digit in ``boxes`` (x, y, w, h) re-drawn with
    strokes ``width`` pixels wide (of a digit DIGIT_SIDE pixels on its longer side): the skeleton
    (``skimage.morphology.skeletonize``) swept with a disc of that diameter, 0/255. The canvas
    grows by the widest disc's radius each side, so strokes at its edge keep their whole width.
    Also returns per image what changed, ``measured->set`` in those pixels."""
    scales = np.maximum(boxes[:, 2], boxes[:, 3]) / DIGIT_SIDE  # image pixels per DIGIT_SIDE pixel
    sides = np.maximum(1, np.round(width * scales)).astype(int).tolist()
    pad = max(sides) // 2 + 1
    out = np.zeros((len(stack), stack.shape[1] + 2 * pad, stack.shape[2] + 2 * pad), np.float32)
    changes = []
    for image, (x, y, w, h), scale, side, target in zip(stack, boxes.tolist(), scales, sides, out):
        digit = image[y : y + h, x : x + w]
        spine = np.zeros(target.shape, np.uint8)
        spine[pad + y : pad + y + h, pad + x : pad + x + w] = skeletonize(ink_mask(digit))
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        target[:] = cv2.dilate(spine, disc).astype(np.float32) * 255
        changes.append(f"{stroke_width(digit) / scale:.1f}->{width:g}")
    return out, changes
