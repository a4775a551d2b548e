"""Writing labelled images back out as PNG files, in either of the layouts `build` reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from digitprep.csvio import write_atomic


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 grey image."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image, np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def labelled_png_name(label: int, index: int, tag: str | None, layout: str) -> str:
    """``<label>/<index>.png`` (folder layout) or ``<label>_<tag>_<index>.png`` (file-name layout)."""
    if layout == "folder":
        return f"{label}/{index}.png"
    return f"{label}_{tag or 0}_{index}.png"


def write_labelled_pngs(
    images: np.ndarray, labels: np.ndarray, out_dir: Path, tag: str | None = None, layout: str = "name"
) -> int:
    """Write each image as a PNG named for its label; returns how many files were written."""
    out_dir = Path(out_dir)
    for index, (image, label) in enumerate(zip(images, labels)):
        path = out_dir / labelled_png_name(int(label), index, tag, layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, encode_png(image))
    return len(images)
