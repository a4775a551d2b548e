"""`digitprep slice --layout rows`: a page of digits written in free rows, each digit found from the ink.

No grid: the rows run roughly across the page (a slight slope is fine), the digits in them differ in
size and spacing, on any paper in any ink. A page is cut in four steps, each a small function here:

1. **Ink** (``ink_mask``): the page's paper and ink as `build` judges them (``paper.paper_and_ink``:
   polarity, paper level or local background), ink being what stands above the paper.
2. **Pieces** (``ink_pieces``): the ink's 8-connected components.
3. **Digits** (``merge_pieces``, ``drop_specks``): pieces of one digit (a 5 whose bar was drawn
   apart, a 4 broken across its stem) are joined: one lies over the other (they share MERGE_OVERLAP
   of the narrower's width; a piece under PART_HEIGHT of a digit high need only come near), close
   above or below it (MERGE_GAP), and together no taller than MERGE_HEIGHT digits; closest pairs
   first. What is then still under PART_HEIGHT of a digit high is no digit (dust, grain, a dot, a
   dash) and is dropped.
4. **Rows** (``group_rows``): the rows' slope is found from the digits' centres (the slope that
   stacks them into the sharpest rows), the centres are levelled by it, and a new row starts where a
   centre lies more than ROW_BAND of a digit's height below the current row's; each row is read left
   to right.

Row i is labelled like a grid's row i (``slice.Grid``): ``rows=DIGITS`` with ``--repeat``. The rows
found must be a whole number of label cycles, else the page is refused: a row lost or split (two
rows touching, a stray mark taken for a row) would shift every label after it.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitprep.paper import INK_LEVEL, paper_and_ink
from digitprep.slice import Cutter, Grid, PageCut

# Pieces of one digit lie over one another: they share at least this share of the narrower's width
# (the bar of a 5 lies over its bowl, a broken stem over the rest of its 4); neighbours in a row
# barely overlap even when they lean.
MERGE_OVERLAP = 0.5
# A piece under this share of a digit's height is part of a digit or no digit at all (the digits
# of one page differ in size by up to about half, dust and grain are a few pixels): it joins a
# digit-sized piece it overlaps at all or nearly touches beside it (MERGE_GAP), as the bar of a handwritten 5
# or 7 drawn apart sits off the body's end; left alone, it is a speck, a dot or a dash.
PART_HEIGHT = 0.5
# Pieces join across a gap (above or below; beside, for a part) of at most this share of a digit's
# height: a pen lift, a break in the stroke; rows of writing stand further apart than that...
MERGE_GAP = 0.25
# ...and together no taller than this many digit heights: two digits one above the other (rows
# written tightly) span twice that, one digit's pieces at most its own height.
MERGE_HEIGHT = 1.5
# A row's slope is looked for within this many degrees of level: a page turned further wants
# straightening first (its digits lean as much as its rows).
MAX_SLOPE_DEGREES = 5.0
# Slopes are tried in steps that move the far end of a row by this share of a digit's height, and
# the levelled centres are counted in bins of this share of a digit's height, smoothed over a few.
SLOPE_STEP = 0.125
# A digit whose levelled centre is more than this share of a digit's height below the current
# row's mean starts the next row: within a row centres wander (baselines, sizes) by a fraction of
# a digit, between rows by a digit and a gap.
ROW_BAND = 0.5
# Each cut keeps this share of a digit's height of the page around the digit's box (so `build`
# sees paper all round the ink), but never past half the way to its neighbour in the row.
PAD_SHARE = 0.1


def ink_mask(page: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ink of an (H, W) uint8 grey page, light or dark paper, as `build` finds a
    digit's ink (``paper.paper_and_ink``); all False on a blank page."""
    ink, blank, _ = paper_and_ink(page[None])
    if blank[0]:
        return np.zeros(page.shape, bool)
    return ink[0] > INK_LEVEL


def ink_pieces(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected pieces of an (H, W) bool ink mask: ((k, 4) int64 boxes ``x0, y0, x1, y1``
    (ends exclusive), (k,) int64 areas in pixels)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    stats = stats[1:].astype(np.int64)  # label 0 is the paper
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    boxes = np.stack((x0, y0, x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]), axis=1)
    return boxes.reshape(-1, 4), stats[:, cv2.CC_STAT_AREA]


def digit_height(boxes: np.ndarray, areas: np.ndarray) -> float:
    """A digit's height on the page, in pixels, from its ink pieces ((k, 4) boxes, (k,) areas): the
    height of the piece holding the median pixel of ink. Weighted by ink, not a plain median over
    pieces: a grainy photo has hundreds of specks, but they hold little of the ink. 0 for none."""
    if not len(boxes):
        return 0.0
    heights = boxes[:, 3] - boxes[:, 1]
    order = np.argsort(heights, kind="stable")
    held = np.cumsum(areas[order])
    return float(heights[order][np.searchsorted(held, held[-1] / 2)])


def merge_pieces(boxes: np.ndarray, height: float) -> np.ndarray:
    """(m, 4) int64 boxes of the digits made of the pieces ``boxes`` ((k, 4) ``x0, y0, x1, y1``),
    for digits ``height`` pixels high, in no particular order.

    Pieces join, the closest pairs first, while the two boxes (of the pieces joined so far) may be
    one digit (``joinable``). Closest first, so a piece between two rows goes to the digit it is
    nearer, and a digit's pieces are whole before it could reach into the next row."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    # Candidate pairs come within MERGE_GAP of each other across: sorted by left edge, a piece's
    # partners to its right are the pieces after it that start before its end plus that reach.
    order = np.argsort(boxes[:, 0], kind="stable")
    reach = int(np.floor(MERGE_GAP * height))
    ends = np.searchsorted(boxes[order, 0], boxes[order, 2] + reach, side="right")
    count = np.maximum(ends - np.arange(len(order)) - 1, 0)
    first = np.repeat(np.arange(len(order)), count)
    second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(count) - count, count)
    a, b = order[first], order[second]
    keep = joinable(boxes[a], boxes[b], height)
    a, b = a[keep], b[keep]
    closest = np.argsort(box_gap(boxes[a], boxes[b]), kind="stable")
    parent = np.arange(len(boxes))
    merged = boxes.copy()  # row r: the box of the pieces joined under r so far

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(a[closest].tolist(), b[closest].tolist()):
        i, j = root(i), root(j)
        if i != j and joinable(merged[i][None], merged[j][None], height)[0]:
            parent[j] = i
            merged[i, :2] = np.minimum(merged[i, :2], merged[j, :2])
            merged[i, 2:] = np.maximum(merged[i, 2:], merged[j, 2:])
    roots = np.array([root(i) for i in range(len(boxes))], np.int64)
    return merged[np.unique(roots)]


def box_gap(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n,) int64: the paper between boxes ``first[i]`` and ``second[i]`` ((n, 4) ``x0, y0, x1,
    y1``), the larger of the gaps across and down; negative when they overlap both ways."""
    across = np.maximum(first[:, 0], second[:, 0]) - np.minimum(first[:, 2], second[:, 2])
    down = np.maximum(first[:, 1], second[:, 1]) - np.minimum(first[:, 3], second[:, 3])
    return np.maximum(across, down)


def joinable(first: np.ndarray, second: np.ndarray, height: float) -> np.ndarray:
    """(n,) bool: whether boxes ``first[i]`` and ``second[i]`` ((n, 4) ``x0, y0, x1, y1``) may be
    pieces of one digit ``height`` pixels high: one over the other, sharing MERGE_OVERLAP of the
    narrower's width (or, when one is under PART_HEIGHT digits high and the other not, no more than
    MERGE_GAP digits apart across), at most MERGE_GAP digits apart down, together at most
    MERGE_HEIGHT digits high."""
    overlap = np.minimum(first[:, 2], second[:, 2]) - np.maximum(first[:, 0], second[:, 0])
    narrower = np.minimum(first[:, 2] - first[:, 0], second[:, 2] - second[:, 0])
    heights = np.sort(np.stack((first[:, 3] - first[:, 1], second[:, 3] - second[:, 1]), axis=1), axis=1)
    # A part beside a digit-sized piece, not beside another part: specks must not chain up into one.
    part = (heights[:, 0] < PART_HEIGHT * height) & (heights[:, 1] >= PART_HEIGHT * height)
    part &= overlap >= -MERGE_GAP * height
    gap = np.maximum(first[:, 1], second[:, 1]) - np.minimum(first[:, 3], second[:, 3])
    span = np.maximum(first[:, 3], second[:, 3]) - np.minimum(first[:, 1], second[:, 1])
    return (
        ((overlap >= MERGE_OVERLAP * narrower) | part) & (gap <= MERGE_GAP * height) & (span <= MERGE_HEIGHT * height)
    )


def drop_specks(boxes: np.ndarray, height: float) -> np.ndarray:
    """(k,) bool: which of the digits ``boxes`` ((k, 4) ``x0, y0, x1, y1``, pieces already joined)
    are kept: those at least PART_HEIGHT of the digit height ``height`` (pixels) high."""
    return boxes[:, 3] - boxes[:, 1] >= PART_HEIGHT * height


def row_slope(centres: np.ndarray, height: float) -> float:
    """The slope (dy / dx, y down) of the rows through the digit centres ``centres`` ((n, 2) float
    ``x, y``, pixels) of digits ``height`` pixels high; 0 for fewer than two digits.

    Of the slopes within MAX_SLOPE_DEGREES, the one whose levelled centres ``y - slope * x`` pile
    up most sharply (the sum of squares of their histogram, bins of SLOPE_STEP digit heights
    smoothed over three: the projection-profile skew estimate, Postl 1986); the least slope among
    equals, so evenly spread centres stay level."""
    if len(centres) < 2 or height <= 0:
        return 0.0
    x, y = centres[:, 0] - centres[:, 0].mean(), centres[:, 1]
    span = max(float(np.ptp(x)), 1.0)
    steps = int(np.ceil(np.tan(np.radians(MAX_SLOPE_DEGREES)) * span / (SLOPE_STEP * height)))
    slopes = np.arange(-steps, steps + 1) * SLOPE_STEP * height / span
    slopes = slopes[np.argsort(np.abs(slopes), kind="stable")]  # level first: argmax keeps the first of equals
    levelled = y[None, :] - slopes[:, None] * x[None, :]
    bins = np.floor((levelled - levelled.min()) / (SLOPE_STEP * height)).astype(np.int64)
    counts = np.zeros((len(slopes), int(bins.max()) + 3), np.float64)
    np.add.at(counts, (np.repeat(np.arange(len(slopes)), len(x)), bins.ravel() + 1), 1.0)
    smooth = counts[:, :-2] + 2 * counts[:, 1:-1] + counts[:, 2:]
    return float(slopes[np.argmax((smooth**2).sum(axis=1))])


def group_rows(boxes: np.ndarray) -> list[np.ndarray]:
    """The rows of the digits ``boxes`` ((n, 4) int64 ``x0, y0, x1, y1``), top to bottom: one (k,)
    int64 array of indices into ``boxes`` per row, left to right.

    The centres are levelled by the rows' slope (``row_slope``) and sorted top to bottom; a digit
    whose levelled centre lies more than ROW_BAND of the median digit height below the mean of the
    row being read starts the next row."""
    if not len(boxes):
        return []
    height = float(np.median(boxes[:, 3] - boxes[:, 1]))
    centres = np.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2), axis=1)
    levelled = centres[:, 1] - row_slope(centres, height) * (centres[:, 0] - centres[:, 0].mean())
    rows: list[list[int]] = []
    mean = -np.inf
    for i in np.argsort(levelled, kind="stable").tolist():
        if levelled[i] - mean > ROW_BAND * height:
            rows.append([])
        rows[-1].append(i)
        mean = float(np.mean(levelled[rows[-1]]))
    return [np.array(sorted(row, key=lambda i: (centres[i, 0], i)), np.int64) for row in rows]


def find_rows(page: np.ndarray) -> list[np.ndarray]:
    """The digits of an (H, W) uint8 grey page in rows, top to bottom: per row a (k, 4) int64 array
    of digit boxes ``x0, y0, x1, y1`` (ends exclusive), left to right. [] when the page has no ink."""
    boxes, areas = ink_pieces(ink_mask(page))
    height = digit_height(boxes, areas)
    digits = merge_pieces(boxes, height)
    digits = digits[drop_specks(digits, height)]
    return [digits[row] for row in group_rows(digits)]


def padded(row: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(k, 4) int64 boxes of one row's digits ((k, 4), left to right) grown by PAD_SHARE of their
    median height, but never past the page ``shape`` (H, W) nor halfway to a neighbour in the row."""
    pad = max(1, round(PAD_SHARE * float(np.median(row[:, 3] - row[:, 1]))))
    x0, y0, x1, y1 = (row[:, k].copy() for k in range(4))
    # Halfway to the neighbour (no pad where they touch or overlap); the page edge ends the row.
    left_room = np.r_[pad, np.maximum((x0[1:] - x1[:-1]) // 2, 0)]
    right_room = np.r_[np.maximum((x0[1:] - x1[:-1]) // 2, 0), pad]
    return np.stack(
        (
            np.maximum(x0 - np.minimum(pad, left_room), 0),
            np.maximum(y0 - pad, 0),
            np.minimum(x1 + np.minimum(pad, right_room), shape[1]),
            np.minimum(y1 + pad, shape[0]),
        ),
        axis=1,
    )


def rows_cutter(axis: str, digits: str, repeat: int = 1) -> Cutter:
    """The free-rows layout: row i of digits found on a page (``find_rows``) is labelled
    ``digits[(i // repeat) % len(digits)]``, and each digit is cut from the page's own grey pixels
    with a little paper around it (``padded``), as ``(row, col, label, uint8 (h, w))`` with col its
    place in its row.

    Raises ValueError at once for column labels (free rows have no columns to count), labels that
    are not digits, or ``repeat`` < 1. The cutter raises ValueError naming the page when it has no
    digits or when its rows are not a whole number of label cycles (``len(digits) * repeat``)."""
    if axis != "rows":
        raise ValueError(f"--layout rows labels rows, not columns: use --labels rows={digits}")
    Grid(1, 1, axis, digits, repeat)  # the grid's own checks of the labels and --repeat
    cycle = len(digits) * repeat

    def cut(page: np.ndarray, name: str) -> PageCut:
        rows = find_rows(page)
        if not rows:
            raise ValueError(f"{name}: no digits found (no ink stands out from the paper)")
        if len(rows) % cycle:
            raise ValueError(
                f"{name}: found {len(rows)} rows of digits, not a multiple of {cycle}"
                f" (labels rows={digits}, --repeat {repeat}); check --labels"
            )
        labels = Grid(len(rows), 1, axis, digits, repeat).cell_labels()[:, 0].tolist()
        cells = []
        for r, (row, label) in enumerate(zip(rows, labels)):
            for c, (x0, y0, x1, y1) in enumerate(padded(row, page.shape).tolist()):
                cells.append((r, c, label, np.ascontiguousarray(page[y0:y1, x0:x1])))
        return PageCut(cells)

    return cut
