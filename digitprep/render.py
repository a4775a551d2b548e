"""`digitprep render`: every usable font's digits drawn into a folder of labelled PNGs.

Tag 20 draws the digit large (its longer side filling MNIST's 20/28 of the canvas); tag 8 draws it
on an 8x8 grid with 17 grey levels, like scikit-learn's digits. Variations are seeded per image
(run seed, font bytes, digit, tag, variant), so the output is the same bytes whatever ``jobs`` is.
"""

from __future__ import annotations

import csv
import re
from dataclasses import astuple, dataclass, field
from itertools import product
from pathlib import Path

import cv2
import numpy as np

from digitprep.atomic import OutputSet, write_staged
from digitprep.csvio import csv_text
from digitprep.fonts import DIGITS, FaceCheck, FontFace, check_fonts, crop_to_ink, digit_masks
from digitprep.options import MNIST_BOX, TAGS, RenderConfig
from digitprep.parallel import NO_FEEDBACK, Feedback, parallel_map
from digitprep.pngtree import encode_png

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


def typical_half_width(mask: np.ndarray) -> float:
    """Half the usual stroke width: the median distance to the background along the strokes' ridges."""
    distance = cv2.distanceTransform(np.pad((mask >= 128).astype(np.uint8), 1), cv2.DIST_L2, 3)
    ridge = (distance > 0) & (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)))
    return float(np.median(distance[ridge])) if ridge.any() else 0.0


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate (radius > 0) or erode (radius < 0) with a disk, on a canvas padded by ``|radius|``."""
    if radius == 0:
        return mask
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1,) * 2)
    return (cv2.dilate if radius > 0 else cv2.erode)(np.pad(mask, abs(radius)), disk)


def change_stroke(mask: np.ndarray, stroke: float) -> np.ndarray:
    """Thicken (stroke > 0) or thin (stroke < 0) a glyph mask by ``stroke`` x its height on each side."""
    radius = round(abs(stroke) * mask.shape[0])
    if stroke < 0:  # thinning stops at half the typical stroke, so hairlines and light fonts survive
        return grow(mask, -min(radius, int(typical_half_width(mask) / 2)))
    return grow(mask, radius)


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


def place(glyph: np.ndarray, side: int, box: float, dx: float, dy: float, supersample: int) -> np.ndarray:
    """``glyph`` scaled so its longer side is ``box`` pixels, centred in a ``side`` x ``side`` image and
    moved by (dx, dy) but never so far that ink leaves it; drawn ``supersample`` x larger, then shrunk."""
    h, w = glyph.shape
    factor = box / max(h, w)
    room_x, room_y = max(0.0, (side - w * factor) / 2), max(0.0, (side - h * factor) / 2)
    centre_x = side / 2 + float(np.clip(dx, -room_x, room_x))
    centre_y = side / 2 + float(np.clip(dy, -room_y, room_y))
    scale = factor * supersample
    # Glyph pixel (x, y) covers [x, x+1): its box centre (w/2, h/2) goes to the target centre, and
    # (scale - 1) / 2 more because cv2 samples at pixel centres, so box edges stay on box edges.
    shift_x = centre_x * supersample - scale * w / 2 + (scale - 1) / 2
    shift_y = centre_y * supersample - scale * h / 2 + (scale - 1) / 2
    matrix = np.array([[scale, 0.0, shift_x], [0.0, scale, shift_y]])
    drawn = cv2.warpAffine(glyph, matrix, (side * supersample,) * 2, flags=cv2.INTER_LINEAR, borderValue=0)
    return drawn if supersample == 1 else cv2.resize(drawn, (side, side), interpolation=cv2.INTER_AREA)


def render_digit(mask: np.ndarray, variation: Variation, tag: str, canvas: int) -> np.ndarray:
    """A ``canvas`` x ``canvas`` uint8 image (ink = 255) of the glyph ``mask`` drawn at size ``tag``."""
    glyph = crop_to_ink(rotate_to_fit(change_stroke(mask, variation.stroke), variation.rotation))
    if tag == "20":
        return place(glyph, canvas, MNIST_BOX * canvas * variation.scale, variation.dx, variation.dy, SUPERSAMPLE[tag])
    if tag != "8":
        raise ValueError(f"unknown drawing size {tag!r}; expected one of {', '.join(TAGS)}")
    # Light fonts would leave a faint smear on the grid: widen them to a pen about a cell wide.
    pen = PEN_CELLS * max(glyph.shape) / (GRID * variation.scale)
    glyph = crop_to_ink(grow(glyph, max(0, int(np.ceil(pen / 2 - typical_half_width(glyph))))))
    cell = max(1, canvas // GRID)
    # Offsets are given in output pixels; on the grid they are fractions of a cell.
    drawn = place(glyph, GRID, GRID * variation.scale, variation.dx / cell, variation.dy / cell, SUPERSAMPLE[tag])
    coarse = np.round(np.round(drawn.astype(np.float32) * (LEVELS / 255.0)) * (255.0 / LEVELS)).astype(np.uint8)
    blocks = np.kron(coarse, np.ones((cell, cell), np.uint8))[:canvas, :canvas]
    top = (canvas - len(blocks)) // 2
    return np.pad(blocks, (top, canvas - len(blocks) - top))


@dataclass
class RenderSummary:
    """What a run did: the faces used, those skipped (and why), and how many images it wrote."""

    used: list[FontFace] = field(default_factory=list)
    skipped: list[FaceCheck] = field(default_factory=list)
    written: int = 0


def sample_variation(config: RenderConfig, face: FontFace, digit: int, tag: str, variant: int) -> Variation:
    """One image's seeded variation, rounded to the manifest's four decimals so a row reproduces its image."""
    rng = np.random.default_rng([config.seed, face.content_id, digit, TAGS.index(tag), variant])
    rotation, jitter = (-config.rotation, config.rotation), (-config.jitter, config.jitter)
    ranges = (config.scale, config.stroke, rotation, jitter, jitter)
    return Variation(*(round(low + (high - low) * float(u), 4) for (low, high), u in zip(ranges, rng.random(5))))


def render_face(task: tuple[FontFace, int, RenderConfig]) -> list[tuple[bytes, tuple]]:
    """Every image of one (face, rank, config) as (PNG bytes, manifest row); in each label and tag,
    images are numbered in font order, so face ``rank`` owns numbers ``rank * variants`` onwards."""
    face, rank, config = task
    images = []
    for (digit, mask), tag, variant in product(enumerate(digit_masks(face)), config.tags, range(config.variants)):
        variation = sample_variation(config, face, digit, tag, variant)
        name = f"{digit}_{tag}_{rank * config.variants + variant}.png"
        row = (name, digit, tag, face.path, face.index, face.family, face.style, *astuple(variation))
        images.append((encode_png(render_digit(mask, variation, tag, config.canvas)), row))
    return images


def font_row(check: FaceCheck) -> tuple:
    """One line of render.fonts.csv."""
    face = check.face
    names = (face.path, face.index, face.family, face.style) if face else (check.path, "", "", "")
    return (*names, "used" if check.problem is None else "skipped", check.problem or "")


def rendered_files(out_dir: Path) -> set[str]:
    """Image names an earlier run's manifest lists (only names of the form it writes)."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return set()
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            return set(filter(RENDERED_NAME.match, (row.get("file") or "" for row in csv.DictReader(handle))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{manifest}: cannot read the earlier run's manifest ({exc})") from None


def render_font_digits(
    locations: list[Path],
    out_dir: Path,
    config: RenderConfig,
    jobs: int = 0,
    feedback: Feedback = NO_FEEDBACK,
) -> RenderSummary:
    """Draw every usable font's digits under ``locations`` into ``out_dir`` with both CSVs, all at once, removing
    images an earlier run listed and this one did not write. Without a usable face nothing is written."""
    out_dir = Path(out_dir)
    checks = check_fonts(locations, jobs)
    summary = RenderSummary([c.face for c in checks if c.problem is None], [c for c in checks if c.problem is not None])
    if not summary.used:
        return summary  # an error for the caller; the folder keeps what it had
    feedback.on_start(len(summary.used) * len(DIGITS) * len(config.tags) * config.variants)
    previous = rendered_files(out_dir)
    manifest = []
    with OutputSet() as outputs:
        staging = outputs.folder(out_dir, replaces=lambda entry: entry.name in previous)
        tasks = [(face, rank, config) for rank, face in enumerate(summary.used)]
        with parallel_map(render_face, tasks, jobs) as results:
            for images in results:
                for png, row in images:
                    write_staged(staging, out_dir, row[0], png)
                    manifest.append(row)
                feedback.on_progress(len(images))
        write_staged(staging, out_dir, MANIFEST_NAME, csv_text(MANIFEST_HEADER, manifest))
        write_staged(staging, out_dir, FONTS_NAME, csv_text(FONTS_HEADER, [font_row(check) for check in checks]))
        outputs.commit()  # the earlier run's images go with it: no later manifest would list them
    summary.written = len(manifest)
    return summary
