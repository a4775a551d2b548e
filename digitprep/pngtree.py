"""Writing labelled images back out as PNG files, in either of the layouts `build` reads."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from digitprep.csvio import write_atomic

# Encoding and fsync release the GIL, and each file waits mostly on its fsync: many in flight
# write tens of thousands of small files in seconds instead of minutes.
WRITER_THREADS = 16


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
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    tag: str | None = None,
    layout: str = "name",
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Write each image, each file atomically, as a PNG named for its label and its position;
    ``on_progress(1)`` after each; returns how many files were written."""
    out_dir = Path(out_dir)
    paths = [out_dir / labelled_png_name(int(label), index, tag, layout) for index, label in enumerate(labels)]
    for folder in {path.parent for path in paths}:
        folder.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> None:
        write_atomic(paths[index], encode_png(images[index]))

    pool = ThreadPoolExecutor(WRITER_THREADS)
    try:
        for _ in pool.map(write, range(len(paths))):  # re-raises the first failure
            on_progress(1)
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C or a failure, do not write the rest first
    return len(paths)


def replace_png_tree(
    images: np.ndarray, labels: np.ndarray, out_dir: Path, on_progress: Callable[[int], None] = lambda n: None
) -> int:
    """Write ``out_dir/<label>/<index>.png``, replacing the label folders already there (other
    entries are left alone). The new tree is written beside ``out_dir`` and swapped in folder by
    folder, so an interrupted run leaves the previous tree; returns how many files were written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        count = write_labelled_pngs(images, labels, staging / "new", layout="folder", on_progress=on_progress)
        new = {p.name for p in (staging / "new").iterdir()}
        old = {p.name for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit()}
        for name in sorted(new | old):
            if name in old:
                (out_dir / name).rename(staging / f"old-{name}")
            if name in new:
                (staging / "new" / name).rename(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count
