"""Normalisation steps, each a pure function on a 2-D uint8 array, and the pipeline joining them.

Order (DESIGN.md): grey -> ink-high -> background removal and contrast stretch -> ink bounding box
-> [deskew] -> [centre in a box, by centre of mass] -> resize. Already-normalised images (MNIST)
pass through unchanged when neither deskew nor centre is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MNIST_BOX = 20 / 28  # MNIST fits each digit into a 20x20 box inside its 28x28 frame
MIN_INK_CONTRAST = 24  # ink fainter than this above the paper is not a digit: a blank page
FAINT_PEAK = 192  # ink peaking below this is stretched up to 255; stronger ink is left alone
SPECK_FRACTION = 0.05  # ink blobs smaller than this share of the largest are noise, not strokes
MAX_SKEW = 1.0  # shear limit (45 degrees): beyond it the moments describe a blob, not a slant
PAPER_NOISE_SPREADS = 4.5  # paper grain up to this many robust deviations above its level is not ink


class BlankImage(ValueError):
    """No ink could be told apart from the paper."""


@dataclass(frozen=True)
class NormalizeOptions:
    """What the pipeline does besides decode and resize."""

    deskew: bool = False
    center: bool = False
    box: float = MNIST_BOX


def border_pixels(image: np.ndarray) -> np.ndarray:
    """The one-pixel frame of the image: what the paper looks like."""
    if image.shape[0] < 3 or image.shape[1] < 3:
        return image.ravel()
    return np.concatenate((image[0], image[-1], image[1:-1, 0], image[1:-1, -1]))


def ink_high(grey: np.ndarray) -> np.ndarray:
    """Invert dark-on-light images so ink is high and paper low (MNIST's convention)."""
    frame = border_pixels(grey)
    if frame.max() <= 127:
        return grey
    if np.median(frame) > 127:
        return 255 - grey
    return grey


def remove_background(ink: np.ndarray) -> np.ndarray:
    """Subtract the paper level plus its noise, stretch faint ink to full range; blank -> error.

    The paper level is the median of the frame and its noise 4.5 robust deviations (MAD), so
    a clean black background (MNIST) is left exactly as it is.
    """
    frame = border_pixels(ink)
    if frame.max() == 0:
        threshold = 0
    else:
        level = float(np.median(frame))
        spread = 1.4826 * float(np.median(np.abs(frame - level)))
        threshold = int(np.ceil(level + PAPER_NOISE_SPREADS * spread))
    peak = int(ink.max())
    if peak - threshold < MIN_INK_CONTRAST:
        raise BlankImage("blank image (no ink found)")
    if threshold == 0 and peak >= FAINT_PEAK:
        return ink
    cleaned = cv2.subtract(ink, threshold)
    return cv2.convertScaleAbs(cleaned, alpha=255.0 / (peak - threshold))


def ink_bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the ink, ignoring specks: blobs under SPECK_FRACTION of the largest one."""
    mask = (ink > 0).view(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return cv2.boundingRect(mask)
    blobs = stats[1:]
    areas = blobs[:, cv2.CC_STAT_AREA]
    keep = blobs[areas >= max(2.0, SPECK_FRACTION * areas.max())]
    x0 = int(keep[:, cv2.CC_STAT_LEFT].min())
    y0 = int(keep[:, cv2.CC_STAT_TOP].min())
    x1 = int((keep[:, cv2.CC_STAT_LEFT] + keep[:, cv2.CC_STAT_WIDTH]).max())
    y1 = int((keep[:, cv2.CC_STAT_TOP] + keep[:, cv2.CC_STAT_HEIGHT]).max())
    return x0, y0, x1 - x0, y1 - y0


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box cut out of the image."""
    x, y, w, h = ink_bbox(ink)
    return ink[y : y + h, x : x + w]


def skew_of(ink: np.ndarray) -> float:
    """Horizontal shear (dx per dy) of the ink from second-order central moments, mu11 / mu02."""
    m = cv2.moments(ink)
    if abs(m["mu02"]) < 1e-2:
        return 0.0
    return float(np.clip(m["mu11"] / m["mu02"], -MAX_SKEW, MAX_SKEW))


def deskew(ink: np.ndarray, expand: bool = True) -> np.ndarray:
    """Shear the ink upright about its centre of mass (x' = x - skew * (y - cy)).

    With ``expand`` the canvas is widened so no ink is sheared off; without, it keeps its size.
    """
    skew = skew_of(ink)
    if skew == 0.0:
        return ink
    m = cv2.moments(ink)
    cy = m["m01"] / m["m00"]
    height, width = ink.shape
    pad = int(np.ceil(abs(skew) * height / 2)) + 1 if expand else 0
    # Inverse map (output -> source): x_src = x_out - pad + skew * (y - cy).
    warp = np.float32([[1, skew, -pad - skew * cy], [0, 1, 0]])
    return cv2.warpAffine(
        ink,
        warp,
        (width + 2 * pad, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """INTER_AREA when shrinking (no aliasing), bicubic when enlarging (smooth); same size: as is."""
    h, w = image.shape
    if (w, h) == (width, height):
        return image
    shrinking = width < w or height < h
    method = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=method)


def fit_and_center(crop: np.ndarray, size: int, box: float = MNIST_BOX) -> np.ndarray:
    """Fit the ink into a ``box`` share of a size x size frame, keeping its aspect ratio, and
    place it so its centre of mass sits on the frame's centre (to the nearest pixel)."""
    h, w = crop.shape
    scale = box * size / max(h, w)
    fitted = resize(crop, max(1, round(w * scale)), max(1, round(h * scale)))
    fh, fw = fitted.shape
    m = cv2.moments(fitted)
    if m["m00"] > 0:
        cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    else:
        cx, cy = (fw - 1) / 2, (fh - 1) / 2
    middle = (size - 1) / 2
    # Centre of mass on the middle, but never pushing ink out of the frame.
    left = min(max(round(middle - cx), 0), size - fw)
    top = min(max(round(middle - cy), 0), size - fh)
    frame = np.zeros((size, size), np.uint8)
    frame[top : top + fh, left : left + fw] = fitted
    return frame


def clean_ink(grey: np.ndarray) -> np.ndarray:
    """Decoded grey -> ink high on a zero background, with faint ink stretched."""
    return remove_background(ink_high(grey))


def normalize(grey: np.ndarray, sizes: tuple[int, ...], options: NormalizeOptions) -> list[np.ndarray]:
    """The whole pipeline for one decoded image: one size x size uint8 array per requested size."""
    ink = clean_ink(grey)
    if options.center:
        digit = crop_to_ink(ink)
        if options.deskew:
            digit = crop_to_ink(deskew(digit, expand=True))
        return [fit_and_center(digit, size, options.box) for size in sizes]
    if options.deskew:
        ink = deskew(ink, expand=False)
    return [resize(ink, size, size) for size in sizes]
