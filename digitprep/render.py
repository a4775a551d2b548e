"""`digitprep render`: drawing one digit from a font glyph (pure functions, array in, array out),
and the run that draws every usable font's digits into a folder of labelled PNGs.

The two drawing sizes are the original project's: tag 20, the digit drawn large (anti-aliased, its
longer side filling a box of 20/28 of the canvas, MNIST's layout), and tag 8, the digit drawn on
an 8x8 grid (like scikit-learn's 8x8 digits, 17 grey levels) and scaled up with square pixels.
Glyphs come in as large ink masks (fonts.glyph_mask); every output is uint8 with ink = 255.

The run checks font files and draws faces through ``parallel_map``. Each image's variation is drawn
from a generator seeded with the run's seed, the font's bytes and the image's (digit, tag, variant),
and its number comes from the face's rank among the used fonts, so the same seed and fonts give the
same files byte for byte whatever ``jobs`` is. The images and both CSVs are written into a staging
folder and moved into place together, so a stopped or failed run leaves the folder as it was.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digitprep.atomic import OutputSet, output_error, signals_held
from digitprep.csvio import csv_text
from digitprep.fonts import DIGITS, FaceCheck, FontFace, check_file, digit_masks, drop_duplicates, find_font_files
from digitprep.options import TAGS, RenderConfig  # the drawing sizes, in the order variations are numbered
from digitprep.parallel import parallel_map
from digitprep.pngtree import encode_png

MNIST_BOX = 20 / 28  # tag 20: share of the canvas the digit's longer side fills at scale 1
GRID = 8  # tag 8: cells per side of the coarse drawing
LEVELS = 16  # tag 8: grey steps, as scikit-learn's digits (0-16 ink counts per 4x4 block)
PEN_CELLS = 0.8  # tag 8: thinnest stroke in grid cells; a pen on a coarse grid marks whole cells
SUPERSAMPLE = {"20": 4, "8": 16}  # drawing resolution over output resolution before INTER_AREA

MANIFEST_NAME = "render.manifest.csv"
FONTS_NAME = "render.fonts.csv"
MANIFEST_HEADER = ["file", "label", "tag", "font", "face", "family", "style", "scale", "stroke", "rotation", "dx", "dy"]
FONTS_HEADER = ["font", "face", "family", "style", "status", "reason"]
RENDERED_NAME = re.compile(r"^\d+_\d+_\d+\.png$")  # <label>_<tag>_<n>.png: the only names a rerun removes


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


# ---------------------------------------------------------------- the run


@dataclass
class RenderSummary:
    """What a run did: the faces used, those skipped (and why), and how many images it wrote."""

    used: list[FontFace] = field(default_factory=list)
    skipped: list[FaceCheck] = field(default_factory=list)
    written: int = 0


def sample_variation(config: RenderConfig, face: FontFace, digit: int, tag: str, variant: int) -> Variation:
    """The variation of one image, drawn from its own seeded generator and rounded to the four
    decimals the manifest records, so a manifest row reproduces its image exactly."""
    rng = np.random.default_rng([config.seed, face.content_id, digit, TAGS.index(tag), variant])
    u = rng.random(5)

    def between(low: float, high: float, share: float) -> float:
        return round(low + (high - low) * float(share), 4)

    return Variation(
        scale=between(*config.scale, u[0]),
        stroke=between(*config.stroke, u[1]),
        rotation=between(-config.rotation, config.rotation, u[2]),
        dx=between(-config.jitter, config.jitter, u[3]),
        dy=between(-config.jitter, config.jitter, u[4]),
    )


def render_face(face: FontFace, rank: int, config: RenderConfig) -> list[tuple[bytes, tuple]]:
    """Every image of one face as (PNG bytes, manifest row), the file name first in the row.
    Image numbers count within each label and tag in font order: face ``rank`` owns
    ``rank * variants`` onwards."""
    images = []
    for digit, mask in enumerate(digit_masks(face)):
        for tag in config.tags:
            for variant in range(config.variants):
                variation = sample_variation(config, face, digit, tag, variant)
                name = f"{digit}_{tag}_{rank * config.variants + variant}.png"
                row = (name, digit, tag, face.path, face.index, face.family, face.style, *astuple(variation))
                images.append((encode_png(render_digit(mask, variation, tag, config.canvas)), row))
    return images


def _render_task(task: tuple[FontFace, int, RenderConfig]) -> list[tuple[bytes, tuple]]:
    return render_face(*task)


def font_row(check: FaceCheck) -> tuple:
    """One line of render.fonts.csv."""
    face = check.face
    if face is None:
        return (check.path, "", "", "", "skipped", check.problem)
    status = "used" if check.problem is None else "skipped"
    return (face.path, face.index, face.family, face.style, status, check.problem or "")


def rendered_files(out_dir: Path) -> set[str]:
    """Image names an earlier run's manifest lists (only names of the form it writes)."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return set()
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            names = {row.get("file") or "" for row in csv.DictReader(handle)}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{manifest}: cannot read the earlier run's manifest ({exc})") from None
    return {name for name in names if RENDERED_NAME.match(name)}


def _write(staging: Path, out_dir: Path, name: str, data: bytes) -> None:
    """One file into the staging folder; an error names the file it was meant to become."""
    try:
        (staging / name).write_bytes(data)
    except OSError as exc:
        raise output_error(out_dir / name, exc) from None


def render_font_digits(
    locations: list[Path],
    out_dir: Path,
    config: RenderConfig,
    jobs: int = 0,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> RenderSummary:
    """Find fonts under ``locations``, keep the usable ones and write their digits to ``out_dir``
    with ``render.manifest.csv`` (each file's font and variation) and ``render.fonts.csv`` (each
    font found: used or skipped, and why), all at once. Images an earlier run listed and this run
    did not write again are removed, so the folder holds exactly this run's images (and any
    files of its own). Without a usable face nothing is written."""
    out_dir = Path(out_dir)
    files = [str(path) for path in find_font_files(locations)]
    with parallel_map(check_file, files, jobs) as results:
        checks = drop_duplicates([check for file_checks in results for check in file_checks])
    summary = RenderSummary(
        used=[check.face for check in checks if check.problem is None],
        skipped=[check for check in checks if check.problem is not None],
    )
    if not summary.used:
        return summary  # an error for the caller; the folder keeps what it had
    on_start(len(summary.used) * len(DIGITS) * len(config.tags) * config.variants)
    previous = rendered_files(out_dir)
    manifest = []
    with OutputSet() as outputs:
        staging = outputs.folder(out_dir)
        tasks = [(face, rank, config) for rank, face in enumerate(summary.used)]
        with parallel_map(_render_task, tasks, jobs) as results:
            for images in results:
                for png, row in images:
                    _write(staging, out_dir, row[0], png)
                    manifest.append(row)
                on_progress(len(images))
        _write(staging, out_dir, MANIFEST_NAME, csv_text(MANIFEST_HEADER, manifest))
        _write(staging, out_dir, FONTS_NAME, csv_text(FONTS_HEADER, [font_row(check) for check in checks]))
        # The new manifest no longer lists the earlier run's extra images: they go in the same
        # uninterruptible step, or a Ctrl-C between the two would leave them behind for good.
        with signals_held():
            outputs.commit()
            for stale in sorted(previous - {row[0] for row in manifest}):
                (out_dir / stale).unlink(missing_ok=True)
    summary.written = len(manifest)
    return summary
