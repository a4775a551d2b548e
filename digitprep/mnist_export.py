"""`digitprep mnist`: MNIST files -> a labelled PNG tree (for `build`), or one-hot CSVs made by
build's own machinery (normalisation, encoding, manifest, errors, OUT.build.json)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.build import (
    BuildConfig,
    BuildSummary,
    ChunkResult,
    build_record,
    run_chunks,
    worker_pool,
    write_outputs,
)
from digitprep.chunkwork import DecodedChunk, rows_from_stacks
from digitprep.mnist import MnistSet, load_mnist, read_mnist_sets
from digitprep.pngtree import replace_png_tree

CHUNK_IMAGES = 1024  # images per worker task


@dataclass(frozen=True)
class ImageChunk:
    """Consecutive images of one MNIST source: the unit of work sent to a worker process."""

    images: np.ndarray  # uint8 (k, rows, cols)
    labels: np.ndarray  # int64 (k,)
    source: str  # the source file as shown in the manifest
    start: int  # position of the first image in that file
    origin: str


def chunk_rows(chunk: ImageChunk, config: BuildConfig) -> ChunkResult:
    """In-memory images -> one-hot rows, manifest rows (``source#position``, label, origin, size,
    sha256 of the pixels) and errors, in order."""
    height, width = chunk.images.shape[1:]
    displays = [f"{chunk.source}#{chunk.start + i}" for i in range(len(chunk.images))]
    wanted = np.isin(chunk.labels, config.classes)
    rows: list[tuple | str] = []
    for image, label, display, keep in zip(chunk.images, chunk.labels.tolist(), displays, wanted.tolist()):
        if not keep:
            rows.append(f"label {label} is not in the class set")
            continue
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        rows.append((display, label, "", chunk.origin, width, height, digest))
    kept = np.flatnonzero(wanted)
    return rows_from_stacks(DecodedChunk([(kept, chunk.images[kept])], rows), displays, config)


def split_into_chunks(sets: list[MnistSet], origin: str) -> list[ImageChunk]:
    """Every set cut into CHUNK_IMAGES-image chunks, sets in order."""
    chunks: list[ImageChunk] = []
    for mnist_set in sets:
        source = Path(os.path.relpath(mnist_set.path)).as_posix()
        for start in range(0, len(mnist_set.images), CHUNK_IMAGES):
            stop = start + CHUNK_IMAGES
            chunks.append(ImageChunk(mnist_set.images[start:stop], mnist_set.labels[start:stop], source, start, origin))
    return chunks


def export_csv(
    paths: list[Path],
    out: Path,
    config: BuildConfig,
    origin: str = "mnist",
    jobs: int = 0,
    strict: bool = False,
    on_skip: Callable[[str, str], None] = lambda path, reason: None,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> BuildSummary:
    """One-hot CSVs (one per size) and their sidecars from MNIST files, exactly as `build` writes
    them for image folders. Bad files raise MnistFormatError before anything is written."""
    sets = read_mnist_sets(paths)
    chunks = split_into_chunks(sets, origin)
    on_start(sum(len(s.images) for s in sets))
    record = build_record(paths, config, "mnist")
    jobs = min(jobs or os.cpu_count() or 1, len(chunks))
    with worker_pool(config, jobs) as pool:
        results = run_chunks(chunks, chunk_rows, config, pool)
        return write_outputs(results, out, config, record, strict, on_skip, on_progress)


def export_png_tree(
    paths: list[Path],
    out_dir: Path,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    """``out_dir/<label>/<index>.png`` for every image (index: position in the sources, in order),
    replacing the label folders there; returns the number of files."""
    images, labels = load_mnist(paths)
    on_start(len(images))
    return replace_png_tree(images, labels, out_dir, on_progress)
