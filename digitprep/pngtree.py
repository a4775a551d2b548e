"""Labelled images written out as PNG files in either layout `build` reads: by ``parallel_map``'s workers
into a staging folder (``OutputSet.folder``) swapped in when complete, so a failed or interrupted run
leaves the previous tree as it was."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from digitprep.atomic import OutputSet, output_error, signals_held
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
    """Encode and write consecutive images (a worker's task), image ``start + i`` as ``folder/<label>/<i>.png``
    (folder layout) or ``folder/<label>_<tag>_<i>.png``; returns how many were written."""
    images, labels, start, folder, tag, layout = task
    for index, (image, label) in enumerate(zip(images, labels.tolist()), start):
        path = folder / (f"{label}/{index}.png" if layout == "folder" else f"{label}_{tag or 0}_{index}.png")
        data = encode_png(image)
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise output_error(path, exc) from None
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
    out_dir, digits = Path(out_dir), np.unique(labels).tolist()
    feedback.on_start(len(images))
    size = chunk_size(len(images), jobs, CHUNK_IMAGES)
    with OutputSet() as outputs:
        staging = outputs.folder(out_dir)
        if layout == "folder":
            for label in digits:
                (staging / str(label)).mkdir()
        tasks = [
            (images[start : start + size], labels[start : start + size], start, staging, tag, layout)
            for start in range(0, len(images), size)
        ]
        with parallel_map(write_png_chunk, tasks, jobs) as written:
            for count in written:
                feedback.on_progress(count)
        with signals_held():  # the new tree and the old one's leftovers go together
            outputs.commit()
            trash = _move_stale_digit_folders(out_dir, set(digits)) if layout == "folder" else None
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return len(images)


def _move_stale_digit_folders(out_dir: Path, labels: set[int]) -> Path | None:
    """Move an earlier tree's digit folders the new one lacks (0-2 written over 0-9 must not keep 3-9) into
    a temporary folder beside ``out_dir``, named as the atomic writer names its own; returns it or None."""
    try:
        stale = [e for e in out_dir.iterdir() if e.name.isdigit() and int(e.name) not in labels and e.is_dir()]
        if not stale:
            return None
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
        for entry in stale:
            entry.rename(trash / entry.name)
    except OSError as exc:
        raise output_error(out_dir, exc) from None
    return trash
