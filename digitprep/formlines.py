"""Form lines: the printed box or grid lines a crop keeps along its edges, removed before the ink
is located.

A form line is a thin straight stroke that runs along nearly a whole side (LINE_LENGTH of it) within
the outer EDGE_BAND of the image, found with a morphological opening by a line-shaped structuring
element (after a short dilation across the line, so a line tilted by a degree or two still forms one
run). A digit's own straight stroke can look the same on one side (the bar of a 7 in a tight crop),
and a curve or a stroke cut by the band carries on just inside it where a form line has paper,
so lines are removed only where they are form lines beyond doubt: found on two or more sides, or
standing apart from the rest of the ink; and never when that would leave under KEEP_SHARE of the ink.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitprep.paper import INK_LEVEL

EDGE_BAND = 0.2  # lines are looked for within this share of the side from each edge
LINE_LENGTH = 0.9  # a form line crosses at least this share of the crop (a round stroke does not)
LINE_WIDTH = 0.06  # and is at most this share of its length thick (or LINE_PIXELS): thinner than a stroke
LINE_PIXELS = 2.5
INNER_SHARE = 0.3  # and has paper just inside it along at least 1 - this share of its length
APART_SHARE = 0.85  # a line alone on its side goes when this share of its ink blob is the line itself
KEEP_SHARE = 0.2  # never leave less than this share of the ink: a digit must not vanish with its lines
SIDES = ("top", "bottom", "left", "right")


def candidates(stack: np.ndarray) -> np.ndarray:
    """(n,) bool: images with ink across LINE_LENGTH of a side within that side's edge band (the
    only ones that can hold a form line; a cheap test over the whole stack)."""
    _, height, width = stack.shape
    ink = stack > INK_LEVEL
    rows, cols = max(1, round(EDGE_BAND * height)), max(1, round(EDGE_BAND * width))
    shares = (
        ink[:, :rows].any(axis=1).mean(axis=1),
        ink[:, -rows:].any(axis=1).mean(axis=1),
        ink[:, :, :cols].any(axis=2).mean(axis=1),
        ink[:, :, -cols:].any(axis=2).mean(axis=1),
    )
    return np.max(shares, axis=0) >= LINE_LENGTH


def side_lines(ink: np.ndarray) -> dict[str, np.ndarray]:
    """The form-line pixels (bool, the image's shape) found along each side of a 2-D bool ink mask;
    sides without a line are left out."""
    found = {}
    for side in SIDES:
        across = side in ("top", "bottom")
        mask = (ink if across else ink.T).astype(np.uint8)
        length, depth = mask.shape[1], mask.shape[0]
        band = max(1, round(EDGE_BAND * depth))
        region = np.zeros_like(mask)
        rows = slice(0, band) if side in ("top", "left") else slice(depth - band, depth)
        tilt = cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(3, depth // 20 | 1)))
        joined = cv2.dilate(mask[rows], tilt)
        line = cv2.getStructuringElement(cv2.MORPH_RECT, (max(2, int(np.ceil(LINE_LENGTH * length))), 1))
        region[rows] = cv2.morphologyEx(joined, cv2.MORPH_OPEN, line)
        on_line = region.astype(bool) & mask.astype(bool)
        runs = region.any(axis=0).sum()  # the line's length; its ink over it is its mean thickness
        if not runs or on_line.sum() > max(LINE_PIXELS, LINE_WIDTH * length) * runs:
            continue  # no line, or a band of ink as thick as a digit's stroke
        # The two rows just inside the line: a form line has paper there (or a digit's few
        # crossings); a stroke cut by the band, or a curve, carries on into them.
        filled = np.flatnonzero(region.any(axis=1))
        inner = filled.max() + 1 if side in ("top", "left") else filled.min() - 2
        beyond = mask[max(inner, 0) : max(inner + 2, 0), region.any(axis=0)]
        if beyond.size and beyond.any(axis=0).mean() >= INNER_SHARE:
            continue
        # The line's anti-aliased fringe goes with it; the dilation stays inside the band.
        grown = np.zeros_like(mask)
        grown[rows] = cv2.dilate(region[rows], np.ones((3, 3), np.uint8))
        pixels = grown.astype(bool) & mask.astype(bool)
        if pixels.any():
            found[side] = pixels if across else pixels.T
    return found


def remove_lines(image: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """A 2-D float32 ink-high image with its form lines zeroed, and the sides they were on."""
    ink = image > INK_LEVEL
    lines = side_lines(ink)
    if not lines:
        return image, ()
    if len(lines) == 1:  # alone on its side: a form line only when it stands apart from the digit
        (pixels,) = lines.values()
        _, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
        touched = np.isin(labels, np.unique(labels[pixels]))
        if pixels.sum() < APART_SHARE * touched.sum():
            return image, ()
    removed = np.logical_or.reduce(list(lines.values()))
    if (ink & ~removed).sum() < KEEP_SHARE * ink.sum():
        return image, ()
    return np.where(removed, 0, image).astype(np.float32), tuple(lines)


def remove_form_lines(stack: np.ndarray) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """(n, H, W) float32 ink-high images with their form lines removed, and per image the sides
    whose lines were removed (empty for most)."""
    sides: list[tuple[str, ...]] = [()] * len(stack)
    maybe = np.flatnonzero(candidates(stack))
    if not len(maybe):
        return stack, sides
    out = stack.copy()
    for i in maybe:
        out[i], sides[i] = remove_lines(stack[i])
    return out, sides
