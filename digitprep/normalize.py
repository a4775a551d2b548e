"""Normalisation: pure steps on stacks of same-shaped grey images, and the pipeline that chains them.

Order (DESIGN.md): grey -> ink-high -> background removal and contrast stretch -> ink bounding box
-> [deskew] -> [centre in a box, by centre of mass] -> resize with ``cv2.INTER_AREA``. Every step
takes a stack ``(n, H, W)`` (a single image is a stack of one: the wrappers at the end) and treats
each image on its own, so an image's output never depends on the images stacked beside it.
Intermediate results stay float32 until the final resize, which rounds once.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitprep.options import MNIST_BOX, NormalizeOptions

MIN_INK_CONTRAST = 24  # ink fainter than this above the paper is not a digit: a blank page
FAINT_PEAK = 192  # ink peaking below this is stretched up to 255; stronger ink is left alone
SPECK_FRACTION = 0.05  # ink blobs smaller than this share of the largest are noise, not strokes
MAX_SKEW = 1.0  # shear limit (45 degrees): beyond it the moments describe a blob, not a slant
PAPER_NOISE_SPREADS = 4.5  # paper grain up to this many robust deviations above its level is not ink
INK_LEVEL = 0.5  # a float pixel at or below this rounds to 0: not ink
REMAP_LIMIT = 32767  # cv2.remap takes images of fewer rows and columns than SHRT_MAX


class BlankImage(ValueError):
    """No ink could be told apart from the paper."""


class ImageTooLarge(ValueError):
    """An image larger than an OpenCV step takes (the reason is the file's error row)."""


def border_pixels(stack: np.ndarray) -> np.ndarray:
    """(n, F): the one-pixel frame of each image, what its paper looks like."""
    n, height, width = stack.shape
    if height < 3 or width < 3:
        return stack.reshape(n, -1)
    return np.concatenate((stack[:, 0], stack[:, -1], stack[:, 1:-1, 0], stack[:, 1:-1, -1]), axis=1)


def ink_high(stack: np.ndarray) -> np.ndarray:
    """Invert dark-on-light images so ink is high and paper low (MNIST's convention)."""
    frame = border_pixels(stack)
    bright = frame.max(axis=1) > 127
    if not bright.any():
        return stack
    invert = bright.copy()
    invert[bright] = np.median(frame[bright], axis=1) > 127
    if not invert.any():
        return stack
    out = stack.copy()
    out[invert] = 255 - stack[invert]
    return out


def remove_background(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each image's paper level plus its noise and stretch faint ink to 255.

    The paper level is the median of the frame and its noise PAPER_NOISE_SPREADS robust deviations
    (MAD), so a clean black background (MNIST) is left exactly as it is. Returns (float32 images,
    blank mask): blank images, where no ink stands out from the paper, are left as they were.
    """
    n = len(stack)
    frame = border_pixels(stack)
    threshold = np.zeros(n, np.float32)
    papered = frame.max(axis=1) > 0
    if papered.any():
        paper = frame[papered].astype(np.float32)
        level = np.median(paper, axis=1)
        spread = 1.4826 * np.median(np.abs(paper - level[:, None]), axis=1)
        threshold[papered] = np.ceil(level + PAPER_NOISE_SPREADS * spread)
    peak = stack.reshape(n, -1).max(axis=1).astype(np.float32)
    blank = peak - threshold < MIN_INK_CONTRAST
    out = stack.astype(np.float32)
    stretch = ~blank & ((threshold > 0) | (peak < FAINT_PEAK))
    if stretch.any():
        low = threshold[stretch, None, None]
        gain_over = (peak[stretch] - threshold[stretch])[:, None, None]
        # Multiply before dividing so exact halves stay exact (50 * 255 / 100 = 127.5 -> 128).
        out[stretch] = np.rint(np.maximum(out[stretch] - low, 0) * 255 / gain_over)
    return out, blank


def ink_boxes(stack: np.ndarray) -> np.ndarray:
    """(n, 4) int ``x, y, w, h`` of each image's ink, ignoring specks (blobs under SPECK_FRACTION
    of the image's largest)."""
    return ink_boxes_and_specks(stack)[0]


def ink_boxes_and_specks(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ink_boxes`` and the (n,) mask of images that have specks left out of their box (only
    those have ink outside it). One connected-components pass labels the whole stack, the images
    laid side by side with an empty column between them so no blob spans two images."""
    n, height, width = stack.shape
    pitch = width + 1
    wide = np.zeros((height, n, pitch), np.uint8)
    wide[:, :, :width] = (stack > INK_LEVEL).transpose(1, 0, 2)
    _, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        wide.reshape(height, n * pitch), 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    stats = stats[1:].astype(np.int64)
    image = stats[:, cv2.CC_STAT_LEFT] // pitch
    area = stats[:, cv2.CC_STAT_AREA]
    largest = np.zeros(n, np.int64)
    np.maximum.at(largest, image, area)
    keep = (area >= np.maximum(2, SPECK_FRACTION * largest[image])) | (area == largest[image])
    specked = np.zeros(n, bool)
    specked[image[~keep]] = True
    image, stats = image[keep], stats[keep]
    left = stats[:, cv2.CC_STAT_LEFT] - image * pitch
    top = stats[:, cv2.CC_STAT_TOP]
    x0, y0 = np.full(n, width, np.int64), np.full(n, height, np.int64)
    x1, y1 = np.zeros(n, np.int64), np.zeros(n, np.int64)
    np.minimum.at(x0, image, left)
    np.minimum.at(y0, image, top)
    np.maximum.at(x1, image, left + stats[:, cv2.CC_STAT_WIDTH])
    np.maximum.at(y1, image, top + stats[:, cv2.CC_STAT_HEIGHT])
    empty = x1 == 0
    x0[empty], y0[empty], x1[empty], y1[empty] = 0, 0, width, height
    return np.stack((x0, y0, x1 - x0, y1 - y0), axis=1), specked


def bounding_boxes(stack: np.ndarray) -> np.ndarray:
    """(n, 4) int ``x, y, w, h`` of everything above INK_LEVEL in each image (no speck filter)."""
    _, height, width = stack.shape
    mask = stack > INK_LEVEL
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    y0 = rows.argmax(axis=1)
    y1 = height - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = width - cols[:, ::-1].argmax(axis=1)
    empty = ~rows.any(axis=1)
    x0[empty], y0[empty], x1[empty], y1[empty] = 0, 0, width, height
    return np.stack((x0, y0, x1 - x0, y1 - y0), axis=1).astype(np.int64)


def keep_inside(stack: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Zero everything outside each image's box (the specks), keeping the canvas."""
    _, height, width = stack.shape
    ys, xs = np.arange(height), np.arange(width)
    rows = (ys >= boxes[:, 1, None]) & (ys < (boxes[:, 1] + boxes[:, 3])[:, None])
    cols = (xs >= boxes[:, 0, None]) & (xs < (boxes[:, 0] + boxes[:, 2])[:, None])
    return stack * (rows[:, :, None] & cols[:, None, :])


def centres_and_skews(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre of mass (cx, cy) and horizontal shear mu11 / mu02 of each image (0 when undefined)."""
    n, height, width = stack.shape
    ys, xs = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    # Per row its mass and its sum of x * value, in one product. The pipeline's images hold whole
    # numbers, for which every sum here is exact whatever the order of the additions: in float32
    # while a row's sum of x * 255 stays below 2**24 (rows up to 362 px), else in float64.
    exact = np.float32 if 255 * width * (width - 1) // 2 < 2**24 else np.float64
    weights = stack.reshape(n * height, width).astype(exact, copy=False)
    per_row = weights @ np.stack((np.ones(width), xs), axis=1).astype(exact)
    rows, row_x = per_row.astype(np.float64).reshape(n, height, 2).transpose(2, 0, 1)
    mass = np.maximum(rows.sum(axis=1), 1e-12)
    cx, cy = row_x.sum(axis=1) / mass, rows @ ys / mass
    mu02 = rows @ (ys * ys) - mass * cy * cy
    mu11 = row_x @ ys - mass * cx * cy
    skew = np.where(np.abs(mu02) < 1e-2, 0.0, mu11 / np.where(np.abs(mu02) < 1e-2, 1.0, mu02))
    return cx, cy, np.clip(skew, -MAX_SKEW, MAX_SKEW)


def deskew(stack: np.ndarray) -> np.ndarray:
    """Shear each image upright about its centre of mass on its own canvas (ink sheared past the
    edge is lost): x_out = x - skew * (y - cy), linear interpolation. For the whole-image resize."""
    n, height, width = stack.shape
    _, cy, skew = centres_and_skews(stack)
    if not skew.any():
        return stack
    ys = np.arange(height, dtype=np.float64)[None, :]
    source_x = np.arange(width, dtype=np.float32) + (skew[:, None] * (ys - cy[:, None])).astype(np.float32)[..., None]
    return _remap_stack(stack, source_x, np.broadcast_to(np.arange(height), (n, height)))


def deskew_ink(stack: np.ndarray, boxes: np.ndarray, centres: tuple | None = None) -> np.ndarray:
    """Each image's ink box (ink outside it already zeroed, ``keep_inside``) cut out and sheared
    upright about its centre of mass, x_out = x - skew * (y - cy), with linear interpolation.
    ``centres``: (cy, skew) of the stack when the caller has them (``centres_and_skews``).

    The canvas is as tall as the tallest box and as wide as the widest sheared box plus a pixel
    of interpolation fringe each side; each image starts at a whole pixel of its own, so its
    sheared values do not depend on the other images."""
    cy, skew = centres if centres is not None else centres_and_skews(stack)[1:]
    y0, h = boxes[:, 1], boxes[:, 3]
    rows = int(h.max())
    left, right = sheared_columns(boxes, cy, skew)
    columns = int((right - left).max())
    r = np.arange(rows)[None, :]
    shear = skew[:, None] * (y0[:, None] + r - cy[:, None])  # (n, rows) s(y) of each canvas row
    source_x = np.arange(columns, dtype=np.float32) + (left[:, None] + shear).astype(np.float32)[..., None]
    # Rows past an image's box read nothing (0), not the rows under it.
    return _remap_stack(stack, source_x, np.where(r < h[:, None], y0[:, None] + r, -1))


def sheared_columns(boxes: np.ndarray, cy: np.ndarray, skew: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right): the columns of each image's ink box once sheared, with a pixel of
    interpolation fringe each side, as whole pixels of the source image."""
    x0, y0, w, h = boxes.T
    # Source row y moves left by s(y) = skew * (y - cy); s is linear in y, so its extremes over
    # the box are at the first and last rows.
    s_first, s_last = skew * (y0 - cy), skew * (y0 + h - 1 - cy)
    left = np.floor(x0 - np.maximum(s_first, s_last)).astype(np.int64) - 1
    right = np.ceil(x0 + w - np.minimum(s_first, s_last)).astype(np.int64) + 1
    return left, right


def _remap_stack(stack: np.ndarray, source_x: np.ndarray, source_rows: np.ndarray) -> np.ndarray:
    """(n, rows, columns) float32: row r of image i sampled along its source row source_rows[i, r]
    (-1: none, all 0) at columns source_x[i, r], linear interpolation, 0 outside the image.

    Images go through cv2.remap stacked one under another, as many at a time as it takes rows (a
    single image alone, whatever its height)."""
    n, height = stack.shape[:2]
    per_remap = max(1, (REMAP_LIMIT - 1) // height)
    if n <= per_remap:  # the usual stack of small images: one remap, no copy
        return _remap_rows(stack, source_x, source_rows)
    sheared = np.empty(source_x.shape, np.float32)
    for start in range(0, n, per_remap):
        part = slice(start, start + per_remap)
        sheared[part] = _remap_rows(stack[part], source_x[part], source_rows[part])
    return sheared


def _remap_rows(stack: np.ndarray, source_x: np.ndarray, source_rows: np.ndarray) -> np.ndarray:
    """One remap of images stacked one under another. Each output row reads one whole source row
    (an integer map_y), so no image bleeds into the next."""
    n, height, width = stack.shape
    _, rows, columns = source_x.shape
    tall_rows = np.where(source_rows >= 0, source_rows + np.arange(n)[:, None] * height, -2)
    tall_y = np.broadcast_to(tall_rows.astype(np.float32)[..., None], source_x.shape)
    try:
        sheared = cv2.remap(
            np.ascontiguousarray(stack, np.float32).reshape(n * height, width),
            np.ascontiguousarray(source_x).reshape(n * rows, columns),
            np.ascontiguousarray(tall_y).reshape(n * rows, columns),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    except cv2.error as exc:  # images go together only while their rows fit: it is the image
        raise ImageTooLarge(
            f"too large to deskew: {width}x{height} px (OpenCV remaps images under {REMAP_LIMIT} px a side)"
        ) from exc
    return sheared.reshape(n, rows, columns)


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """One 2-D image resized to (width, height), float32: ``cv2.INTER_AREA`` when shrinking,
    linear interpolation when enlarging (INTER_AREA's own enlargement is blocky)."""
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.asarray(image, np.float32), (int(width), int(height)), interpolation=method)


def to_uint8(stack: np.ndarray) -> np.ndarray:
    """Float pixels rounded once, to the nearest whole level, and clipped to 0-255."""
    return np.rint(np.clip(stack, 0, 255)).astype(np.uint8)


def fit_and_center(stack: np.ndarray, boxes: np.ndarray, size: int, box: float = MNIST_BOX) -> np.ndarray:
    """Fit each image's ink box into a ``box`` share of a size x size frame, keeping its aspect
    ratio, and place it so its centre of mass sits on the frame's centre (to the nearest pixel,
    never pushing ink out of the frame)."""
    longest = np.maximum(boxes[:, 2], boxes[:, 3])
    widths = np.clip(np.round(boxes[:, 2] * box * size / longest), 1, size).astype(np.int64).tolist()
    heights = np.clip(np.round(boxes[:, 3] * box * size / longest), 1, size).astype(np.int64).tolist()
    middle = (size - 1) / 2
    fitted = np.zeros((len(stack), size, size), np.float32)
    for image, (x, y, w, h), width, height, out in zip(stack, boxes.tolist(), widths, heights, fitted):
        small = resized(image[y : y + h, x : x + w], width, height)
        moments = cv2.moments(small)
        mass = moments["m00"] or 1.0  # a digit that rounds away is centred by its box
        cx = moments["m10"] / mass if moments["m00"] else (width - 1) / 2
        cy = moments["m01"] / mass if moments["m00"] else (height - 1) / 2
        right = min(max(round(middle - cx), 0), size - width)
        down = min(max(round(middle - cy), 0), size - height)
        out[down : down + height, right : right + width] = small
    return to_uint8(fitted)


def normalize_stack(
    stack: np.ndarray, sizes: tuple[int, ...], options: NormalizeOptions
) -> tuple[list[np.ndarray], np.ndarray]:
    """The whole pipeline for (n, H, W) decoded grey images: one (k, size, size) uint8 stack per
    size for the k usable images, and the (n,) mask of blank images left out."""
    ink, blank = remove_background(ink_high(stack))
    ink = ink[~blank]
    if len(ink) == 0:  # OpenCV crashes on empty images: nothing to do, say so early
        return [np.zeros((0, size, size), np.uint8) for size in sizes], blank
    if options.center:
        boxes, specked = ink_boxes_and_specks(ink)
        if specked.any():  # ink outside the box is specks only: images without any keep theirs
            ink[specked] = keep_inside(ink[specked], boxes[specked])
        if not options.deskew:
            return [fit_and_center(ink, boxes, size, options.box) for size in sizes], blank
        sheared = deskew_ink(ink, boxes)
        sheared_boxes = bounding_boxes(sheared)  # specks are gone already: a plain box will do
        return [fit_and_center(sheared, sheared_boxes, size, options.box) for size in sizes], blank
    if options.deskew:
        ink = deskew(ink)
    return [to_uint8(np.stack([resized(image, size, size) for image in ink])) for size in sizes], blank


def normalize(grey: np.ndarray, sizes: tuple[int, ...], options: NormalizeOptions) -> list[np.ndarray]:
    """The pipeline for one decoded image: one size x size uint8 array per size; BlankImage if blank."""
    stacks, blank = normalize_stack(grey[None], sizes, options)
    if blank[0]:
        raise BlankImage("blank image (no ink found)")
    return [s[0] for s in stacks]
