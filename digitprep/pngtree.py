"""Labelled images written out as PNG files in either layout `build` reads: by ``parallel_map``'s workers
into a staging folder (``OutputSet.folder``) swapped in when complete, so a failed or interrupted run
leaves the previous tree as it was."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from digitprep.atomic import OutputSet, write_staged
from digitprep.build import chunk_size
from digitprep.parallel import NO_FEEDBACK, Feedback, parallel_map

CHUNK_IMAGES = 2048  # images per task at most; fewer when that gives each worker under 4 tasks


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 grey image."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image, np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def write_png_chunk(task: tuple[np.ndarray, np.ndarray, int, Path, str | None, str]) -> int:
    """Encode and stage consecutive images (a worker's task), image ``start + i`` as ``<label>/<i>.png``
    (folder layout) or ``<label>_<tag>_<i>.png``; returns how many were written."""
    images, labels, start, staging, out_dir, tag, layout = task
    for index, (image, label) in enumerate(zip(images, labels.tolist()), start):
        name = f"{label}/{index}.png" if layout == "folder" else f"{label}_{tag or 0}_{index}.png"
        write_staged(staging, out_dir, name, encode_png(image))
    return len(images)


def write_png_tree(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    tag: str | None = None,
    layout: str = "folder",
    jobs: int = 0,
    feedback: Feedback = NO_FEEDBACK,
) -> int:
    """Write image ``i`` as ``out_dir/<label>/<i>.png``, replacing all digit folders, or (``layout="name"``) as
    ``out_dir/<label>_<tag>_<i>.png``; other entries of ``out_dir`` are left. Returns the number written."""
    if layout not in ("folder", "name"):
        raise ValueError(f"layout {layout!r} is not one of folder, name")
    images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    out_dir = Path(out_dir)
    feedback.on_start(len(images))
    size = chunk_size(len(images), jobs, CHUNK_IMAGES)
    with OutputSet() as outputs:
        # The folder layout replaces the old tree whole: 0-2 written over 0-9 must not keep 3-9.
        staging = outputs.folder(out_dir, replaces=lambda entry: layout == "folder" and entry.name.isdigit())
        tasks = [
            (images[start : start + size], labels[start : start + size], start, staging, out_dir, tag, layout)
            for start in range(0, len(images), size)
        ]
        with parallel_map(write_png_chunk, tasks, jobs) as written:
            for count in written:
                feedback.on_progress(count)
        outputs.commit()
    return len(images)
