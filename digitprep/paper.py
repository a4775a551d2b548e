"""Paper and ink: which way round an image is, where its paper lies, and its ink above that paper.

Each image is judged on its own, from the whole of it:
- **Flat paper** (the cheap path: MNIST, drawings from paint programs, clean scans): at least
  FLAT_SHARE of the pixels sit exactly at the darkest or the brightest level, and few just off it
  (else it is grain clipped at black or white). That level is the paper, and the ink lies on the
  other side of it.
- **Photographed or scanned paper**: with the light taken out (the image averaged down to a few
  pixels and brought back up), Otsu's threshold splits ink from paper, and the paper is the class
  that is the majority both in the whole image and along its border. The paper is one level (the
  median of Otsu's paper class) or, when that leaves the paper's grain far wider than a local
  background does (uneven light), a grey opening wider than three strokes, computed at most
  BACKGROUND_SIDE pixels a side.
Then the paper and its grain are subtracted and faint ink is stretched to 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitprep.stroke import stroke_width

FLAT_SHARE = 0.25  # this share of pixels at exactly the darkest (brightest) level: flat paper...
NEAR_LEVELS = 8  # ...unless a quarter as many sit within this many levels of it (clipped grain)
UNEVEN_GAIN = 2  # a local background when it leaves the paper's grain this many times narrower
LIGHT_SIDE = 16  # the light is judged on a copy this many pixels a side: it varies slowly
BACKGROUND_SIDE = 256  # the local background is computed on a copy at most this many pixels a side
NOISY_GRAIN = 6  # grain deviating more than this (levels) is smoothed before the ink is found...
GRAIN_SIGMA = 1.0  # ...by a Gaussian this wide (pixels)
PHOTO_MARGIN = 8  # a photo's ink stands at least this far above its paper (levels): no paper is exact
MIN_INK_CONTRAST = 24  # ink fainter than this above the paper is not a digit: a blank page
INK_LEVEL = 0.5  # a float pixel at or below this rounds to 0: not ink (the steps after this one)
FAINT_PEAK = 192  # ink peaking below this is stretched up to 255; stronger is left alone (as MNIST's)
PAPER_NOISE_SPREADS = 4.5  # paper grain up to this many robust deviations above its level is not ink


@dataclass
class PaperFindings:
    """What was found per image, for the manifest: (n,) arrays."""

    inverted: np.ndarray  # bool: dark ink on light paper, turned round
    paper: np.ndarray  # float32: the paper's level in the ink-high image, NaN for a local background


def polarity(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat, inverted) (n,) bool for (n, H, W) uint8 images: those whose paper is one exact level
    at an end of their range, and those holding dark ink on light paper."""
    n = len(stack)
    pixels = stack.reshape(n, -1)
    low, high = pixels.min(axis=1)[:, None], pixels.max(axis=1)[:, None]
    dark_share, bright_share = (pixels == low).mean(axis=1), (pixels == high).mean(axis=1)
    # Flat, not grain clipped at black or white: few pixels just off the level (uint8 throughout).
    near_low = np.minimum(low.astype(np.int16) + NEAR_LEVELS, 255).astype(np.uint8)
    near_high = np.maximum(high.astype(np.int16) - NEAR_LEVELS, 0).astype(np.uint8)
    dark = (dark_share >= FLAT_SHARE) & ((pixels <= near_low).mean(axis=1) - dark_share < dark_share / 4)
    bright = (bright_share >= FLAT_SHARE) & ((pixels >= near_high).mean(axis=1) - bright_share < bright_share / 4)
    inverted = bright & (~dark | (bright_share > dark_share))
    flat = dark | bright
    for i in np.flatnonzero(~flat):
        inverted[i] = photo_polarity(stack[i])
    return flat, inverted


def odd(value: float, low: int = 3) -> int:
    """The odd whole number nearest ``value``, at least ``low``."""
    return max(low, round(value) | 1)


def reduced(image: np.ndarray) -> np.ndarray:
    """The image shrunk (``cv2.INTER_AREA``) to at most BACKGROUND_SIDE pixels a side."""
    scale = BACKGROUND_SIDE / max(image.shape)
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def light(small: np.ndarray) -> np.ndarray:
    """float32: how the light falls across a 2-D uint8 image, without its strokes: the image
    averaged down to LIGHT_SIDE pixels a side (``cv2.INTER_AREA``), smoothed and brought back up."""
    height, width = small.shape
    coarse = cv2.resize(small.astype(np.float32), (LIGHT_SIDE, LIGHT_SIDE), interpolation=cv2.INTER_AREA)
    coarse = cv2.GaussianBlur(coarse, (0, 0), LIGHT_SIDE / 8, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


def photo_polarity(image: np.ndarray) -> bool:
    """True when a 2-D uint8 image that has no flat paper holds dark ink on light paper.

    With the light taken out (``light``), Otsu's threshold splits the pixels; the bright class
    is the paper when its share of the whole image and its share of the border add to more than
    1: ink is the minority, and rarer at the edges."""
    small = reduced(image)
    even = np.clip(small - light(small) + 128, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(even, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    bright = even > threshold
    border = np.concatenate((bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]))
    return bool(bright.mean() + border.mean() > 1)


def photo_paper(ink_high: np.ndarray) -> tuple[np.ndarray | float, float, float]:
    """(paper, grain median, grain spread) of a 2-D uint8 ink-high image: the paper as one level
    (float) when it is even, else as a local background (float32, the image's shape); and the
    median and robust deviation of the paper pixels' residuals from it (``median_and_spread``).

    The local background is the grey opening (Soille, *Morphological Image Analysis*, 2003,
    ch. 4) by a square three strokes wide (at least 1/4, at most 1/2 of the shorter side): every
    window that wide holds some paper, so the opening removes the strokes and keeps the light.
    The stroke width is the ink's area over its skeleton's length (``stroke_width``), the ink
    being the high class of Otsu's threshold."""
    # A 3x3 median first: the opening takes each window's darkest pixel, so one speck of salt
    # or pepper would pull the paper under it down to black.
    small = cv2.medianBlur(reduced(ink_high), 3)
    threshold, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    ink = small > threshold  # Otsu's: ink is the high class, whether it covers 10% or 60%
    # Grain specks would pass for 1-pixel strokes: the width is measured without them.
    strokes = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    short = min(small.shape)
    side = odd(min(max(3 * stroke_width(strokes.astype(np.float32)), short / 4), short / 2))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    # Padded with the edge's own values: unpadded, the opening undershoots where the light falls
    # toward an edge, and that paper would come out as ink.
    padded = cv2.copyMakeBorder(small, side, side, side, side, cv2.BORDER_REPLICATE)
    opened = cv2.morphologyEx(padded, cv2.MORPH_OPEN, kernel)[side:-side, side:-side]
    paper_small = ~cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not paper_small.any():
        paper_small = ~ink
    paper_pixels = cv2.resize(paper_small.astype(np.uint8), ink_high.shape[::-1], interpolation=cv2.INTER_NEAREST)
    paper_pixels = paper_pixels.astype(bool)
    level = float(np.median(ink_high[paper_pixels])) if paper_pixels.any() else float(ink_high.min())
    even = (level, *median_and_spread(ink_high[paper_pixels].astype(np.float32) - level))
    background = cv2.resize(opened.astype(np.float32), ink_high.shape[::-1], interpolation=cv2.INTER_LINEAR)
    local = (background, *median_and_spread((ink_high - background)[paper_pixels]))
    # The paper model that explains the paper: one level unless the local background leaves the
    # paper far more even (uneven light); in a tight crop the opening catches ink, and loses.
    return local if local[2] * UNEVEN_GAIN < even[2] else even


def median_and_spread(grain: np.ndarray) -> tuple[float, float]:
    """The median of the paper's residuals and their robust deviation (1.4826 MAD); 0, 0 for none."""
    if not grain.size:
        return 0.0, 0.0
    middle = float(np.median(grain))
    return middle, 1.4826 * float(np.median(np.abs(grain - middle)))


def paper_and_ink(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, PaperFindings]:
    """(n, H, W) uint8 grey -> (float32 ink-high images with the paper at 0 and faint ink stretched
    to 255, the (n,) mask of blank images (no ink stands out from the paper), what was found).

    The threshold between paper and ink is the paper's level plus PAPER_NOISE_SPREADS robust
    deviations (MAD) of its grain, so a clean black background (MNIST) is left exactly as it is."""
    n = len(stack)
    flat, inverted = polarity(stack)
    inked = np.where(inverted[:, None, None], 255 - stack, stack)
    out = inked.astype(np.float32)
    paper = np.zeros(n, np.float32)
    threshold = np.zeros(n, np.float32)
    paper[flat] = inked[flat].min(axis=(1, 2))
    threshold[flat] = paper[flat]
    for i in np.flatnonzero(~flat):
        background, middle, spread = photo_paper(inked[i])
        if spread > NOISY_GRAIN:
            # Coarse grain is smoothed (Gaussian, GRAIN_SIGMA) and the paper found again: the
            # threshold sits several grain deviations above the paper, and would bury faint ink.
            inked[i] = cv2.GaussianBlur(inked[i], (0, 0), GRAIN_SIGMA)
            out[i] = inked[i]
            background, middle, spread = photo_paper(inked[i])
        if np.ndim(background):  # a local background: subtract it here, the paper is then at 0
            out[i] = np.maximum(out[i] - background, 0)
            paper[i] = np.nan
        else:
            paper[i] = background
            threshold[i] = background
        # The grain's own median too: the opening sits under the paper's grain, not on its middle.
        threshold[i] += np.ceil(max(middle, 0) + max(PAPER_NOISE_SPREADS * spread, PHOTO_MARGIN))
    peak = out.reshape(n, -1).max(axis=1)
    blank = peak - threshold < MIN_INK_CONTRAST
    stretch = ~blank & ((threshold > 0) | (peak < FAINT_PEAK))
    if stretch.any():
        low = threshold[stretch, None, None]
        gain_over = (peak[stretch] - threshold[stretch])[:, None, None]
        # Multiply before dividing so exact halves stay exact (50 * 255 / 100 = 127.5 -> 128).
        out[stretch] = np.rint(np.maximum(out[stretch] - low, 0) * 255 / gain_over)
    return out, blank, PaperFindings(inverted, paper)


def ink_high(stack: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 turned so ink is high and paper low (MNIST's convention), each image on its own."""
    return np.where(polarity(stack)[1][:, None, None], 255 - stack, stack)
