"""`digitprep build`: labelled image files -> one-hot CSVs (one per size), manifest, errors, record.

The files are found and labelled here (``sources``), cut into chunks, and each chunk is read,
decoded, normalised and encoded as CSV text by ``parallel_map``'s workers. The results are written
in file order as they come, through one OutputSet, so memory stays bounded, the outputs appear
together or not at all, and they are the same bytes whatever ``--jobs`` is. `digitprep mnist`
writes its CSVs through the same ``rows_from_images`` and ``write_outputs``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet
from digitprep.classes import format_classes
from digitprep.csvio import build_json, csv_lines, encode_onehot_rows, onehot_header, output_paths, sidecar_path
from digitprep.decode import UnusableImage, decode_image
from digitprep.normalize import ImageTooLarge, normalize_stack
from digitprep.options import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, NormalizeOptions
from digitprep.parallel import NO_FEEDBACK, Feedback, parallel_map, worker_count
from digitprep.sources import Candidate, find_candidates

# orientation: the EXIF orientation applied (1: none); inverted: dark ink on light paper turned
# round (1) or not; paper: the paper's level, or "local" for a background removed under uneven
# light; lines: the sides whose form lines were removed (``top+left``); stroke: ``measured->set``
# width when --stroke re-drew the strokes.
MANIFEST_HEADER = [
    "path",
    "label",
    "tag",
    "origin",
    "width",
    "height",
    "sha256",
    "orientation",
    "inverted",
    "paper",
    "lines",
    "stroke",
]
ERRORS_HEADER = ["path", "reason"]
CHUNK_FILES = 1024  # files per task at most; fewer when that gives each worker under 4 tasks
PIXEL_BUDGET = 1 << 23  # decoded pixels a worker normalises at once: large photos go a few at a time
BLANK = "blank image (no ink found)"


@dataclass(frozen=True)
class BuildConfig:
    """Everything a worker needs to turn files into rows."""

    sizes: tuple[int, ...]
    classes: tuple[int, ...]
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
    labelrow: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class ChunkResult:
    """A chunk made into output text, in file order: CSV lines per size, manifest lines, the
    number of rows, and the (path, reason) of each file skipped."""

    csv_lines: list[bytes]
    manifest_lines: bytes
    written: int
    errors: list[tuple[str, str]]


@dataclass
class BuildSummary:
    written: int = 0
    skipped: int = 0
    outputs: list[Path] = field(default_factory=list)


def read_file(candidate: Candidate) -> bytes | str:
    """A file's bytes, or the reason it cannot be read."""
    if candidate.problem:
        return candidate.problem
    try:
        with open(candidate.path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        return "is a directory, not an image"
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"


def decode_file(candidate: Candidate, data: bytes, config: BuildConfig) -> tuple[np.ndarray, tuple] | str:
    """One file's bytes -> (grey image, manifest row), or the reason it cannot be used. With
    ``labelrow`` the label and tag come from the image's first row (pixels 0 and 1), cut off."""
    try:
        grey, orientation = decode_image(data, config.max_pixels, config.max_bytes)
    except UnusableImage as exc:
        return str(exc)
    except Exception as exc:  # a decoder failing on a hostile file must not end the run
        return f"cannot decode ({exc.__class__.__name__}: {exc})"
    height, width = grey.shape
    label, tag = candidate.label, candidate.tag
    if config.labelrow:
        if height < 2:
            return "labelrow image has no rows below the label row"
        label, tag = int(grey[0, 0]), str(grey[0, 1]) if width > 1 else ""
        if label not in config.classes:
            return f"label {label} (from the label row) is not in the class set"
        grey = grey[1:]
    row = (
        candidate.display,
        label,
        tag,
        candidate.origin,
        width,
        height,
        hashlib.sha256(data).hexdigest(),
        orientation,
    )
    return grey, row


def rows_from_images(
    items: list[tuple[np.ndarray, tuple] | str], displays: list[str], config: BuildConfig
) -> ChunkResult:
    """(grey image, manifest row) per item, or the reason it cannot be used -> encoded rows and
    errors, in order. Images of one shape are normalised as one stack."""
    reasons = [item if isinstance(item, str) else None for item in items]
    pixels = [np.zeros((len(items), size * size), np.uint8) for size in config.sizes]
    shapes: dict[tuple[int, int], list[int]] = {}
    for position in (p for p, reason in enumerate(reasons) if reason is None):
        shapes.setdefault(items[position][0].shape, []).append(position)
    for members in shapes.values():
        try:
            stacks, blank, found = normalize_stack(
                np.stack([items[p][0] for p in members]), config.sizes, config.options
            )
        except ImageTooLarge as exc:
            for position in members:
                reasons[position] = str(exc)
            continue
        for i, position in enumerate(members):
            items[position] = (items[position][0], (*items[position][1], *found.columns(i)))
        kept = [p for p, is_blank in zip(members, blank.tolist()) if not is_blank]
        for matrix, stack in zip(pixels, stacks):
            matrix[kept] = stack.reshape(len(stack), matrix.shape[1])
        for position in set(members) - set(kept):
            reasons[position] = BLANK
    written = [position for position, reason in enumerate(reasons) if reason is None]
    rows = [items[position][1] for position in written]
    labels = np.array([row[1] for row in rows], np.int64)
    errors = [(display, reason) for display, reason in zip(displays, reasons) if reason is not None]
    text = [encode_onehot_rows(matrix[written], labels, config.classes) for matrix in pixels]
    return ChunkResult(text, csv_lines(rows), len(rows), errors)


def process_files(task: tuple[list[Candidate], BuildConfig]) -> ChunkResult:
    """A chunk of files -> its rows (the task a worker runs). Files are read and decoded until
    PIXEL_BUDGET decoded pixels are held, then normalised, so large photos go a few at a time."""
    candidates, config = task
    parts, batch, start, pixels = [], [], 0, 0
    for position, candidate in enumerate(candidates):
        data = read_file(candidate)
        item = data if isinstance(data, str) else decode_file(candidate, data, config)
        batch.append(item)
        pixels += 0 if isinstance(item, str) else item[0].size
        if pixels >= PIXEL_BUDGET or position == len(candidates) - 1:
            displays = [c.display for c in candidates[start : position + 1]]
            parts.append(rows_from_images(batch, displays, config))
            batch, start, pixels = [], position + 1, 0
    return joined(parts, len(config.sizes))


def joined(parts: list[ChunkResult], sizes: int) -> ChunkResult:
    """Consecutive chunk results as one."""
    if len(parts) == 1:
        return parts[0]
    return ChunkResult(
        [b"".join(part.csv_lines[size] for part in parts) for size in range(sizes)],
        b"".join(part.manifest_lines for part in parts),
        sum(part.written for part in parts),
        [error for part in parts for error in part.errors],
    )


def image_rows(task: tuple[np.ndarray, np.ndarray, list[str], str, BuildConfig]) -> ChunkResult:
    """Images already in memory (k, H, W) uint8 with their labels and shown names -> rows (the task
    a worker runs for `digitprep mnist`); the manifest's sha256 is that of the pixels."""
    images, labels, displays, origin, config = task
    height, width = images.shape[1:]
    items: list[tuple[np.ndarray, tuple] | str] = []
    for image, label, display in zip(images, labels.tolist(), displays):
        if label not in config.classes:
            items.append(f"label {label} is not in the class set")
        else:
            items.append(
                (image, (display, label, "", origin, width, height, hashlib.sha256(image.tobytes()).hexdigest(), 1))
            )
    return rows_from_images(items, displays, config)


def write_outputs(
    results: Iterable[ChunkResult],
    out: Path,
    config: BuildConfig,
    record: dict,
    strict: bool = False,
    feedback: Feedback = NO_FEEDBACK,
) -> BuildSummary:
    """Chunk results streamed into the outputs (a CSV per size, each with its manifest, errors and
    ``record`` with the row counts as OUT.build.json), committed together at the end; with
    ``strict`` and any file skipped, nothing is written."""
    csv_paths = output_paths(out, config.sizes)
    summary = BuildSummary()
    with OutputSet() as outputs:
        # Each CSV is opened before its sidecars, so it is renamed after them.
        files = [[outputs.open(p) for p in (path, sidecar_path(path, "manifest"), sidecar_path(path, "errors"))]
                 for path in csv_paths]  # fmt: skip
        for (data, manifest, errors), size in zip(files, config.sizes):
            data.write(onehot_header(size * size, config.classes))
            manifest.write(csv_lines([MANIFEST_HEADER]))
            errors.write(csv_lines([ERRORS_HEADER]))
        for result in results:
            error_lines = csv_lines(result.errors)
            for (data, manifest, errors), lines in zip(files, result.csv_lines):
                data.write(lines)
                manifest.write(result.manifest_lines)
                errors.write(error_lines)
            for path, reason in result.errors:
                feedback.on_skip(path, reason)
            summary.written += result.written
            summary.skipped += len(result.errors)
            feedback.on_progress(result.written + len(result.errors))
        if strict and summary.skipped:
            return summary
        counts = {"rows": summary.written, "skipped": summary.skipped}
        for path, size in zip(csv_paths, config.sizes):
            outputs.write(sidecar_path(path, "build"), build_json({**record, **counts, "size": size}))
        outputs.commit()
    summary.outputs = csv_paths
    return summary


def build_record(sources, config: BuildConfig, labels: str, pattern: str | None = None) -> dict:
    """The options the data was built with, for the trainer to store in its models (write_outputs
    adds the row counts and the size)."""
    sources = [Path(os.path.relpath(source)).as_posix() for source in sources]
    classes = format_classes(config.classes)
    return {"sources": sources, "classes": classes, "labels": labels, "pattern": pattern, **asdict(config.options)}


def chunk_size(items: int, jobs: int, most: int = CHUNK_FILES) -> int:
    """Items per task: at most ``most``, and small enough that every worker gets about four tasks
    (so they finish together, and progress moves)."""
    return max(1, min(most, math.ceil(items / (4 * worker_count(jobs, items)))))


def build_dataset(
    sources: list[Path],
    out: Path,
    config: BuildConfig,
    label_mode: str = "auto",
    pattern: str | None = None,
    origin: str | None = None,
    jobs: int = 0,
    strict: bool = False,
    feedback: Feedback = NO_FEEDBACK,
) -> BuildSummary:
    """Build one-hot CSVs from labelled images. Bad files are reported to ``feedback`` and
    listed in OUT.errors.csv; with ``strict`` nothing is written if any file is skipped. A missing
    source or a bad pattern raises ValueError; an output that cannot be written, OutputError."""
    candidates = find_candidates(sources, label_mode, pattern, config.classes, origin)
    feedback.on_start(len(candidates))
    size = chunk_size(len(candidates), jobs)
    tasks = [(candidates[start : start + size], config) for start in range(0, len(candidates), size)]
    record = build_record(sources, config, "pattern" if pattern else label_mode, pattern)
    with parallel_map(process_files, tasks, jobs) as results:
        return write_outputs(results, out, config, record, strict, feedback)


def build_from_images(
    sets: list,
    out: Path,
    config: BuildConfig,
    origin: str = "mnist",
    jobs: int = 0,
    strict: bool = False,
    feedback: Feedback = NO_FEEDBACK,
) -> BuildSummary:
    """One-hot CSVs and their sidecars, exactly as `build` writes them, from image sets already in
    memory (each with ``path``, ``images`` uint8 (n, H, W) and ``labels`` int64 (n,): MNIST's);
    a row's manifest path is ``SOURCE#POSITION``."""
    total = sum(len(each.images) for each in sets)
    size = chunk_size(total, jobs)
    tasks = []
    for each in sets:
        source = Path(os.path.relpath(each.path)).as_posix()
        for start in range(0, len(each.images), size):
            stop = min(start + size, len(each.images))
            displays = [f"{source}#{position}" for position in range(start, stop)]
            tasks.append((each.images[start:stop], each.labels[start:stop], displays, origin, config))
    feedback.on_start(total)
    record = build_record([each.path for each in sets], config, "mnist")
    with parallel_map(image_rows, tasks, jobs) as results:
        return write_outputs(results, out, config, record, strict, feedback)
