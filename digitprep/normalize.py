"""Normalisation: pure steps on stacks of same-shaped grey images, and the pipeline that chains them.

Order (DESIGN.md): grey -> paper and ink (``paper``: polarity, background, contrast) -> form lines
removed (``formlines``) -> [strokes re-drawn at a set width, ``stroke``] -> [the digit's ink
chosen, its box] -> [deskew] -> [centre in a box, by centre of mass] -> resize with
``cv2.INTER_AREA`` -> faint output lifted to 255. Every step
takes a stack ``(n, H, W)`` (a single image is a stack of one: the wrappers at the end) and treats
each image on its own, so an image's output never depends on the images stacked beside it.
Intermediate results stay float32 until the final resize, which rounds once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitprep.formlines import remove_form_lines
from digitprep.options import MNIST_BOX, NormalizeOptions
from digitprep.paper import FAINT_PEAK, INK_LEVEL, paper_and_ink
from digitprep.stroke import set_stroke

SPECK_FRACTION = 0.05  # ink blobs under this share of the digit's main blob are specks, not strokes
NEAR = 0.5  # a stroke of the digit lies within this share of its main blob's longer side from it...
STROKE_RATIO = 1.25  # ...and is at most this many times its area (pieces of a broken digit are alike)...
SAME_PEN = 0.5  # ...and its mean ink at least this share of the main blob's (a faint smudge is not)
MAX_SKEW = 1.0  # shear limit (45 degrees): beyond it the moments describe a blob, not a slant
REMAP_LIMIT = 32767  # cv2.remap takes images of fewer rows and columns than SHRT_MAX


class BlankImage(ValueError):
    """No ink could be told apart from the paper."""


class ImageTooLarge(ValueError):
    """An image larger than an OpenCV step takes (the reason is the file's error row)."""


def digit_ink(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which ink is the digit: (n, H, W) float32 ink-high images with every other ink blob zeroed,
    and the (n, 4) int ``x, y, w, h`` box of what is kept.

    The digit's main blob (8-connected) is the one of greatest area x nearness to the centre,
    ``area * exp(-2 d**2)`` with d the distance from the image's centre over half its diagonal.
    Other blobs are strokes of the same digit (the bar of a 5, a detached crossbar, the dashes of
    a broken line) when they hold from SPECK_FRACTION to STROKE_RATIO of its area, their mean ink
    is at least SAME_PEN of its own, and they come within NEAR of the main blob's longer side of the
    digit's box, which grows with each stroke taken in; the rest (specks, faint or big smudges) are
    dropped. One connected-components pass labels the whole stack, the images laid side by side
    with an empty column between them so no blob spans two images."""
    n, height, width = stack.shape
    pitch = width + 1
    wide = np.zeros((height, n, pitch), np.uint8)
    wide[:, :, :width] = (stack > INK_LEVEL).transpose(1, 0, 2)
    _, labels, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(
        wide.reshape(height, n * pitch), 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    stats = stats[1:].astype(np.int64)
    image = stats[:, cv2.CC_STAT_LEFT] // pitch
    area = stats[:, cv2.CC_STAT_AREA]
    x0 = stats[:, cv2.CC_STAT_LEFT] - image * pitch
    y0 = stats[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
    off_x = centroids[1:, 0] - image * pitch - (width - 1) / 2
    off_y = centroids[1:, 1] - (height - 1) / 2
    score = area * np.exp(-2 * (off_x**2 + off_y**2) / ((width / 2) ** 2 + (height / 2) ** 2))
    order = np.lexsort((score, image))
    last = np.r_[image[order][1:] != image[order][:-1], True]
    main = np.full(n, -1, np.int64)
    main[image[order][last]] = order[last]
    of = main[image]  # each blob's main blob
    reach = NEAR * np.maximum(x1 - x0, y1 - y0)[of]
    # A stroke is not much bigger than the main blob: a bigger blob that lost on nearness is a smudge.
    stroke = (area >= np.maximum(2, SPECK_FRACTION * area[of])) & (area <= STROKE_RATIO * area[of])
    keep = of == np.arange(len(area))
    waiting = np.unique(image[stroke & ~keep])
    if len(waiting):  # and drawn with the same pen: as dark, near enough, as the main blob
        blob_labels = labels.reshape(height, n, pitch)[:, waiting, :width]
        values = stack[waiting].transpose(1, 0, 2)
        level = np.bincount(blob_labels.ravel(), values.ravel(), minlength=len(area) + 1)[1:] / area
        stroke &= level >= SAME_PEN * level[of]
    blobs = np.stack((x0, y0, x1, y1), axis=1)
    while (stroke & ~keep).any():  # the digit's box grows with each stroke taken in, until no more come within reach
        bx0, by0, bx1, by1 = boxes_of(blobs[keep], image[keep], n).T[:, image]
        near = (x0 < bx1 + reach) & (x1 > bx0 - reach) & (y0 < by1 + reach) & (y1 > by0 - reach)
        grown = keep | (near & stroke)
        if (grown == keep).all():
            break
        keep = grown
    if not keep.all():  # zero the dropped blobs, in the images that have any
        specked = np.unique(image[~keep])
        dropped = np.r_[False, ~keep][labels.reshape(height, n, pitch)[:, specked, :width].transpose(1, 0, 2)]
        stack = stack.astype(np.float32)  # a copy: the caller's images stay as they were
        stack[specked] = np.where(dropped, 0, stack[specked])
    bx0, by0, bx1, by1 = boxes_of(blobs[keep], image[keep], n).T
    empty = bx1 == 0
    bx0[empty], by0[empty], bx1[empty], by1[empty] = 0, 0, width, height
    return stack, np.stack((bx0, by0, bx1 - bx0, by1 - by0), axis=1)


def boxes_of(blobs: np.ndarray, image: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) int64 ``x0, y0, x1, y1`` around the blobs ``x0, y0, x1, y1`` (k, 4) of each of n
    images (``image``: (k,) which image each is in); an image without blobs gets (big, big, 0, 0)."""
    big = np.iinfo(np.int64).max
    out = np.tile(np.array([big, big, 0, 0], np.int64), (n, 1))
    np.minimum.at(out[:, 0], image, blobs[:, 0])
    np.minimum.at(out[:, 1], image, blobs[:, 1])
    np.maximum.at(out[:, 2], image, blobs[:, 2])
    np.maximum.at(out[:, 3], image, blobs[:, 3])
    return out


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
        # float64: cv2.moments reads an (N, 2) float32 or int32 array as N points, not an image.
        moments = cv2.moments(small.astype(np.float64))
        mass = moments["m00"] or 1.0  # a digit that rounds away is centred by its box
        cx = moments["m10"] / mass if moments["m00"] else (width - 1) / 2
        cy = moments["m01"] / mass if moments["m00"] else (height - 1) / 2
        right = min(max(round(middle - cx), 0), size - width)
        down = min(max(round(middle - cy), 0), size - height)
        out[down : down + height, right : right + width] = small
    return to_uint8(fitted)


@dataclass
class Findings:
    """What the pipeline decided per image, for the manifest."""

    inverted: np.ndarray  # (n,) bool: dark ink on light paper, turned round
    paper: np.ndarray  # (n,) float32: the paper's level, NaN where a local background was removed
    lines: list[tuple[str, ...]]  # per image, the sides whose form lines were removed
    stroke: list[str]  # per image, ``measured->set`` stroke width when re-drawn, else ""

    def columns(self, i: int) -> tuple[int, str, str, str]:
        """Image i's manifest cells: inverted (0/1), paper (a level or ``local``), lines
        (``top+left``), stroke (``0.2->2.9``, in pixels of a 20-pixel digit)."""
        level = self.paper[i]
        paper = "local" if np.isnan(level) else f"{level:g}"
        return int(self.inverted[i]), paper, "+".join(self.lines[i]), self.stroke[i]


def lift_faint(stack: np.ndarray) -> np.ndarray:
    """(n, s, s) uint8 outputs whose ink peaks under FAINT_PEAK (thin strokes averaged away by the
    resize) scaled so their peak is 255, MNIST's level; the others as they are."""
    peak = stack.reshape(len(stack), -1).max(axis=1) if len(stack) else np.zeros(0, np.uint8)
    faint = (peak > 0) & (peak < FAINT_PEAK)
    if not faint.any():
        return stack
    out = stack.copy()
    out[faint] = to_uint8(stack[faint].astype(np.float32) * 255 / peak[faint, None, None])
    return out


def normalize_stack(
    stack: np.ndarray, sizes: tuple[int, ...], options: NormalizeOptions
) -> tuple[list[np.ndarray], np.ndarray, Findings]:
    """The whole pipeline for (n, H, W) uint8 decoded grey images: one (k, size, size) uint8 stack
    per size for the k usable images, the (n,) mask of blank images left out, and what was decided
    for each of the n images."""
    ink, blank, paper = paper_and_ink(stack)
    ink, lines = remove_form_lines(ink)
    findings = Findings(paper.inverted, paper.paper, lines, [""] * len(stack))
    ink = ink[~blank]
    if len(ink) == 0:  # OpenCV crashes on empty images: nothing to do, say so early
        return [np.zeros((0, size, size), np.uint8) for size in sizes], blank, findings
    if options.stroke:
        boxes = digit_ink(ink)[1]  # the digit's size sets the disc's, with --center or without
        ink, changes = set_stroke(ink, boxes, options.stroke)
        for i, change in zip(np.flatnonzero(~blank), changes):
            findings.stroke[i] = change
    if options.center:
        ink, boxes = digit_ink(ink)
        if options.deskew:
            ink = deskew_ink(ink, boxes)
            boxes = bounding_boxes(ink)  # other blobs are gone already: a plain box will do
        return [lift_faint(fit_and_center(ink, boxes, size, options.box)) for size in sizes], blank, findings
    if options.deskew:
        ink = deskew(ink)
    outputs = [to_uint8(np.stack([resized(image, size, size) for image in ink])) for size in sizes]
    return [lift_faint(out) for out in outputs], blank, findings


def normalize(grey: np.ndarray, sizes: tuple[int, ...], options: NormalizeOptions) -> list[np.ndarray]:
    """The pipeline for one decoded 2-D uint8 image: one size x size uint8 array per size.
    Raises BlankImage when no ink stands out from the paper."""
    stacks, blank, _ = normalize_stack(grey[None], sizes, options)
    if blank[0]:
        raise BlankImage("blank image (no ink found)")
    return [s[0] for s in stacks]
