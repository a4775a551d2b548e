"""Drawing one digit from a font glyph with a given variation: pure functions, array in, array out.

The two drawing sizes are the original project's: tag 20, the digit drawn large (anti-aliased, its
longer side filling a box of 20/28 of the canvas, MNIST's layout), and tag 8, the digit drawn on
an 8x8 grid (like scikit-learn's 8x8 digits, 17 grey levels) and scaled up with square pixels.
Glyphs come in as large ink masks (fonts.glyph_mask); every output is uint8 with ink = 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitprep.options import TAGS  # the drawing sizes, in the order variations are numbered

MNIST_BOX = 20 / 28  # tag 20: share of the canvas the digit's longer side fills at scale 1
GRID = 8  # tag 8: cells per side of the coarse drawing
LEVELS = 16  # tag 8: grey steps, as scikit-learn's digits (0-16 ink counts per 4x4 block)
PEN_CELLS = 0.8  # tag 8: thinnest stroke in grid cells; a pen on a coarse grid marks whole cells
SUPERSAMPLE = {"20": 4, "8": 16}  # drawing resolution over output resolution before INTER_AREA


@dataclass(frozen=True)
class Variation:
    """How one image departs from the plain glyph."""

    scale: float = 1.0  # the digit's longer side as a share of its drawing box
    stroke: float = 0.0  # strokes thickened (+) or thinned (-) on each side, as a share of the glyph height
    rotation: float = 0.0  # degrees, counter-clockwise
    dx: float = 0.0  # offset of the ink box's centre from the canvas centre, output pixels (right)
    dy: float = 0.0  # likewise, down


def disk(radius: int) -> np.ndarray:
    """Structuring element: a filled circle of ``radius`` pixels."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def typical_half_width(mask: np.ndarray) -> float:
    """Half the usual stroke width of a glyph: the median distance to the background along the
    strokes' middle lines (pixels where the distance is a local maximum)."""
    ink = (mask >= 128).astype(np.uint8)
    distance = cv2.distanceTransform(np.pad(ink, 1), cv2.DIST_L2, 3)
    ridge = (distance > 0) & (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)))
    return float(np.median(distance[ridge])) if ridge.any() else 0.0


def change_stroke(mask: np.ndarray, stroke: float) -> np.ndarray:
    """Thicken (stroke > 0) or thin (stroke < 0) a glyph mask by ``stroke`` x its height on each
    side. Thinning stops at half the typical stroke, so hairlines and light fonts survive."""
    radius = round(abs(stroke) * mask.shape[0])
    if stroke < 0:
        radius = min(radius, int(typical_half_width(mask) / 2))
    if radius == 0:
        return mask
    padded = np.pad(mask, radius)
    if stroke > 0:
        return cv2.dilate(padded, disk(radius))
    return cv2.erode(padded, disk(radius))


def widen_to(mask: np.ndarray, width: float) -> np.ndarray:
    """Thicken a glyph mask until its typical stroke is at least ``width`` pixels wide."""
    radius = int(np.ceil(width / 2 - typical_half_width(mask)))
    if radius <= 0:
        return mask
    return cv2.dilate(np.pad(mask, radius), disk(radius))


def rotate_to_fit(mask: np.ndarray, degrees: float) -> np.ndarray:
    """A mask rotated counter-clockwise about its centre on a canvas large enough to hold it."""
    if degrees == 0:
        return mask
    h, w = mask.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(np.ceil(h * sin + w * cos - 1e-6)) + 2, int(np.ceil(h * cos + w * sin - 1e-6)) + 2
    new_w, new_h = new_w + (new_w - w) % 2, new_h + (new_h - h) % 2  # whole-pixel shifts: no blur
    matrix[:, 2] += ((new_w - 1) / 2 - (w - 1) / 2, (new_h - 1) / 2 - (h - 1) / 2)
    return cv2.warpAffine(mask, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderValue=0)


def crop_to_ink(mask: np.ndarray) -> np.ndarray:
    """The smallest box holding every non-zero pixel (the mask itself when blank)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return mask
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def place(glyph: np.ndarray, side: int, box: float, dx: float, dy: float, supersample: int) -> np.ndarray:
    """``glyph`` (cropped to its ink) scaled so its longer side is ``box`` pixels, its centre put at
    the centre of a ``side`` x ``side`` image moved by (dx, dy) but never so far that ink leaves the
    image; drawn ``supersample`` times larger, then shrunk with INTER_AREA for clean edges."""
    h, w = glyph.shape
    factor = box / max(h, w)
    room_x = max(0.0, (side - w * factor) / 2)
    room_y = max(0.0, (side - h * factor) / 2)
    centre_x = side / 2 + float(np.clip(dx, -room_x, room_x))
    centre_y = side / 2 + float(np.clip(dy, -room_y, room_y))
    big = side * supersample
    scale = factor * supersample
    # Pixel centres: glyph pixel (x, y) covers [x, x+1); map its box centre (w/2, h/2) to the target.
    matrix = np.array(
        [[scale, 0.0, centre_x * supersample - scale * w / 2], [0.0, scale, centre_y * supersample - scale * h / 2]]
    )
    matrix[:, 2] += (scale - 1) / 2  # cv2 samples at pixel centres: keep box edges on box edges
    drawn = cv2.warpAffine(glyph, matrix, (big, big), flags=cv2.INTER_LINEAR, borderValue=0)
    if supersample == 1:
        return drawn
    return cv2.resize(drawn, (side, side), interpolation=cv2.INTER_AREA)


def quantise(image: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Round grey values to ``levels`` + 1 evenly spaced steps of 0-255."""
    steps = np.round(image.astype(np.float32) * (levels / 255.0))
    return np.round(steps * (255.0 / levels)).astype(np.uint8)


def render_digit(mask: np.ndarray, variation: Variation, tag: str, canvas: int) -> np.ndarray:
    """A ``canvas`` x ``canvas`` uint8 image (ink = 255) of the glyph ``mask`` drawn at size ``tag``."""
    glyph = crop_to_ink(rotate_to_fit(change_stroke(mask, variation.stroke), variation.rotation))
    if tag == "20":
        return place(glyph, canvas, MNIST_BOX * canvas * variation.scale, variation.dx, variation.dy, SUPERSAMPLE[tag])
    if tag != "8":
        raise ValueError(f"unknown drawing size {tag!r}; expected one of {', '.join(TAGS)}")
    # Light fonts would leave a faint smear on the grid: widen them to a pen about a cell wide.
    glyph = crop_to_ink(widen_to(glyph, PEN_CELLS * max(glyph.shape) / (GRID * variation.scale)))
    cell = max(1, canvas // GRID)
    # Offsets are given in output pixels; on the grid they are fractions of a cell.
    drawn = place(glyph, GRID, GRID * variation.scale, variation.dx / cell, variation.dy / cell, SUPERSAMPLE[tag])
    coarse = quantise(drawn)
    image = np.zeros((canvas, canvas), np.uint8)
    blocks = np.kron(coarse, np.ones((cell, cell), np.uint8))[:canvas, :canvas]
    top = (canvas - blocks.shape[0]) // 2
    image[top : top + blocks.shape[0], top : top + blocks.shape[1]] = blocks
    return image
