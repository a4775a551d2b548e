"""Contact sheets: a grid of samples per class, so a person can look at what the pipeline made
(and, with the raw inputs beside the rows, why); written as PNG, PDF or SVG, as the file's name ends."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from digitprep.decode import UnusableImage, decode_grey

# Sheet pixels per inch on paper, as for every figure: a 28-pixel MNIST digit at --magnify 2 prints 9.5 mm tall.
from digitprep.figures import DEFAULT_DPI

GAP = 2  # pixels of grey between tiles, so touching digits stay distinguishable
GAP_GREY = 96
MISSING_GREY = 40  # a tile with nothing to show (no sample, or a source that cannot be read)


def chosen_rows(labels: np.ndarray, classes: tuple[int, ...], per_class: int, seed: int | None) -> list[np.ndarray]:
    """Per class, the row numbers shown: the first ``per_class`` or, with ``seed``, a seeded
    random choice of them (in row order)."""
    rng = np.random.default_rng(seed) if seed is not None else None
    rows = []
    for digit in classes:
        indices = np.flatnonzero(labels == digit)
        if rng is not None and len(indices) > per_class:
            indices = np.sort(rng.choice(indices, per_class, replace=False))
        rows.append(indices[:per_class])
    return rows


def fitted(image: np.ndarray, tile: int) -> np.ndarray:
    """A 2-D uint8 image shrunk or enlarged into a tile x tile square, aspect kept, centred on
    MISSING_GREY (``cv2.INTER_AREA`` when shrinking, nearest neighbour when enlarging)."""
    height, width = image.shape
    scale = tile / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    out = np.full((tile, tile), MISSING_GREY, np.uint8)
    top, left = (tile - size[1]) // 2, (tile - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = small
    return out


def contact_sheet(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: tuple[int, ...],
    per_class: int = 12,
    magnify: int = 0,
    seed: int | None = None,
    sources: list[np.ndarray | None] | None = None,
    captions: list[str] | None = None,
) -> np.ndarray:
    """uint8 image: one row per class (label on the left), the first ``per_class`` samples of each
    or, with ``seed``, a seeded random choice of them. With ``sources`` (one 2-D uint8 raw image
    or None per row), each sample is drawn as its raw input beside its row, with the row's
    ``caption`` (what the pipeline decided) under the pair. Each image pixel is drawn ``magnify``
    pixels wide (0: 48 // side, at least 1)."""
    side = round(pixels.shape[1] ** 0.5)
    magnify = magnify or max(1, 48 // side)
    tile = side * magnify
    label_width = max(tile, 24)
    caption_height = max(10, tile // 4) if captions is not None else 0
    cell = 2 * tile + GAP if sources is not None else tile
    row_height = tile + caption_height
    sheet = np.full(
        (len(classes) * (row_height + GAP) + GAP, label_width + per_class * (cell + GAP) + GAP), GAP_GREY, np.uint8
    )
    for r, (digit, indices) in enumerate(zip(classes, chosen_rows(labels, classes, per_class, seed))):
        top = GAP + r * (row_height + GAP)
        sheet[top : top + tile, :label_width] = 255
        corner = (label_width // 4, top + int(tile * 0.75))
        cv2.putText(sheet, str(digit), corner, cv2.FONT_HERSHEY_SIMPLEX, tile / 40, 0, max(1, tile // 24), cv2.LINE_AA)
        for c in range(per_class):
            left = label_width + GAP + c * (cell + GAP)
            if c >= len(indices):
                sheet[top : top + tile, left : left + cell] = MISSING_GREY
                continue
            row = indices[c]
            sheet[top : top + tile, left + cell - tile : left + cell] = (
                pixels[row].reshape(side, side).repeat(magnify, 0).repeat(magnify, 1)
            )
            if sources is not None:
                raw = sources[row]
                sheet[top : top + tile, left : left + tile] = MISSING_GREY if raw is None else fitted(raw, tile)
            if captions is not None and captions[row]:
                # Sized with OpenCV's own measure of the glyphs, so the text stays in its strip.
                (wide, tall), below = cv2.getTextSize(captions[row], cv2.FONT_HERSHEY_PLAIN, 1.0, 1)
                size = min((caption_height - 1) / (tall + below), cell / wide)  # in its strip, and in its cell
                place = (left, top + tile + caption_height - round(below * size))
                cv2.putText(sheet, captions[row], place, cv2.FONT_HERSHEY_PLAIN, size, 255, 1, cv2.LINE_AA)
    return sheet


def caption(decisions: dict[str, str]) -> str:
    """A manifest row's decisions in a few characters: ``inv`` (inverted), ``p150`` (paper level
    after inversion; 0 is not shown) or ``local`` (background under uneven light), ``|t+l`` (form
    lines removed: top, left, ...), ``o6`` (EXIF orientation applied), ``s2.9`` (stroke re-drawn)."""
    parts = []
    if decisions.get("inverted") == "1":
        parts.append("inv")
    paper = decisions.get("paper", "")
    if paper == "local":
        parts.append("local")
    elif paper not in ("", "0"):
        parts.append(f"p{paper}")
    if decisions.get("lines"):
        parts.append("|" + "+".join(side[0] for side in decisions["lines"].split("+")))
    if decisions.get("orientation", "1") not in ("", "1"):
        parts.append(f"o{decisions['orientation']}")
    if decisions.get("stroke"):
        parts.append("s" + decisions["stroke"].split("->")[-1])
    return " ".join(parts)


def read_sources(paths: list[str], rows: list[int], folder) -> tuple[list[np.ndarray | None], int]:
    """The raw inputs of the given rows (others None), decoded upright and grey, and how many of
    them could not be read. A manifest path is tried as written (relative to where the build ran),
    then relative to ``folder`` (the CSV's)."""
    images: list[np.ndarray | None] = [None] * len(paths)
    missing = 0
    for row in rows:
        for path in (Path(paths[row]), Path(folder) / paths[row]):
            try:
                images[row] = decode_grey(path.read_bytes())
                break
            except (OSError, UnusableImage):
                continue
        else:
            missing += 1
    return images, missing


def encode_sheet(sheet: np.ndarray, fmt: str = "png", dpi: int = DEFAULT_DPI) -> bytes:
    """A uint8 grey sheet (H, W) as ``fmt`` bytes, its pixels unchanged, ``dpi`` of them to the inch:
    a grey PNG with that resolution recorded; a PDF or SVG page of W/dpi x H/dpi inches holding
    the pixels as one image (matplotlib's ``figimage``, not resampled), so it prints sharp at any size."""
    if fmt == "png":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(sheet, np.uint8), "L").save(buffer, "PNG", dpi=(dpi, dpi))
        return buffer.getvalue()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    height, width = sheet.shape
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    # As RGB bytes, not through a colour map: a map's 256 steps would move some grey levels by one.
    figure.figimage(np.repeat(sheet[:, :, None], 3, axis=2), origin="upper", resize=False)
    buffer = io.BytesIO()
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]  # the same sheet, the same bytes
    with matplotlib.rc_context({"svg.hashsalt": "digitprep"}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()
