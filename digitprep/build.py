"""`digitprep build`: labelled image files -> one-hot CSVs (one per size), manifest and errors.

Files are decoded and normalised in worker processes, in chunks, and the results are written in
order as they arrive, so memory stays bounded whatever the number of files and rows come out in
the same order on every run. All outputs are written under temporary names and renamed at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digitprep.classes import format_classes
from digitprep.csvio import AtomicWriter, csv_text, encode_onehot_rows, onehot_header
from digitprep.decode import DEFAULT_MAX_PIXELS, UnusableImage, decode_grey
from digitprep.normalize import NormalizeOptions, normalize_stack
from digitprep.sources import Candidate, find_candidates

MANIFEST_HEADER = ["path", "label", "tag", "origin", "width", "height", "sha256"]
ERRORS_HEADER = ["path", "reason"]
CHUNK_FILES = 256  # files per task sent to a worker: large enough to amortise the hand-off


@dataclass(frozen=True)
class BuildConfig:
    """Everything a worker needs to turn one file into rows."""

    sizes: tuple[int, ...]
    classes: tuple[int, ...]
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
    labelrow: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class ChunkResult:
    """One chunk of files made into output text, in file order: CSV lines per size, manifest
    lines, and the files skipped. Encoded in the worker so the parent only writes."""

    csv_lines: list[bytes]
    manifest_lines: bytes
    written: int
    errors: list[tuple[str, str]]


@dataclass
class BuildSummary:
    written: int = 0
    skipped: int = 0
    outputs: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def output_paths(out: Path, sizes: tuple[int, ...]) -> list[Path]:
    """OUT.csv for one size; OUT_{size}.csv for each of several."""
    out = Path(out)
    if len(sizes) == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{size}{out.suffix or '.csv'}") for size in sizes]


def sidecar_path(csv_path: Path, kind: str) -> Path:
    """OUT.manifest.csv, OUT.errors.csv, OUT.build.json beside OUT.csv."""
    csv_path = Path(csv_path)
    suffix = ".json" if kind == "build" else ".csv"
    return csv_path.with_name(f"{csv_path.stem}.{kind}{suffix}")


def decode_file(candidate: Candidate, config: BuildConfig) -> tuple[np.ndarray, tuple] | str:
    """One file -> (grey image, manifest row), or the reason it cannot be used."""
    if candidate.problem:
        return candidate.problem
    try:
        with open(candidate.path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        return "is a directory, not an image"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    try:
        grey = decode_grey(data, config.max_pixels)
    except UnusableImage as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on a hostile file must not end the run
        return f"cannot decode ({exc.__class__.__name__}: {exc})"
    height, width = grey.shape
    label, tag = candidate.label, candidate.tag
    if config.labelrow:
        if height < 2:
            return "labelrow image has no rows below the label row"
        label, tag = int(grey[0, 0]), str(int(grey[0, 1])) if width > 1 else ""
        grey = grey[1:]
        if label not in config.classes:
            return f"label {label} (from the label row) is not in the class set"
    digest = hashlib.sha256(data).hexdigest()
    return grey, (candidate.display, label, tag, candidate.origin, width, height, digest)


def normalize_group(greys: list[np.ndarray], config: BuildConfig) -> list[list[np.ndarray] | str]:
    """Same-shaped images normalised as one stack -> per image its images per size, or why not."""
    stacks, blank = normalize_stack(np.stack(greys), config.sizes, config.options)
    results: list[list[np.ndarray] | str] = []
    kept = 0
    for is_blank in blank:
        if is_blank:
            results.append("blank image (no ink found)")
        else:
            results.append([stack[kept] for stack in stacks])
            kept += 1
    return results


def process_chunk(candidates: list[Candidate], config: BuildConfig) -> ChunkResult:
    """Many files -> encoded rows, in file order; the unit of work sent to a worker process."""
    outcomes = [decode_file(candidate, config) for candidate in candidates]
    return rows_from_images(outcomes, [candidate.display for candidate in candidates], config)


def rows_from_images(outcomes: list[tuple | str], displays: list[str], config: BuildConfig) -> ChunkResult:
    """Decoded images with their manifest rows (or the reason each item cannot be used) -> encoded
    rows and errors, in order. Normalisation runs once per group of same-shaped images."""
    groups: dict[tuple[int, int], list[int]] = {}
    for position, outcome in enumerate(outcomes):
        if not isinstance(outcome, str):
            groups.setdefault(outcome[0].shape, []).append(position)
    images: dict[int, list[np.ndarray] | str] = {}
    for positions in groups.values():
        normalised = normalize_group([outcomes[p][0] for p in positions], config)
        images.update(zip(positions, normalised))
    per_size: list[list[np.ndarray]] = [[] for _ in config.sizes]
    labels: list[int] = []
    manifest: list[tuple] = []
    errors: list[tuple[str, str]] = []
    for position, display in enumerate(displays):
        result = images.get(position, outcomes[position])
        if isinstance(result, str):
            errors.append((display, result))
            continue
        for bucket, image in zip(per_size, result):
            bucket.append(image.ravel())
        row = outcomes[position][1]
        labels.append(row[1])
        manifest.append(row)
    label_array = np.asarray(labels, np.int64)
    csv_lines = [
        encode_onehot_rows(np.stack(bucket), label_array, config.classes) if bucket else b"" for bucket in per_size
    ]
    return ChunkResult(csv_lines, _rows_only(MANIFEST_HEADER, manifest), len(manifest), errors)


_worker_config: BuildConfig | None = None


def _init_worker(config: BuildConfig) -> None:
    global _worker_config
    _worker_config = config
    # The pool already uses every core; OpenCV's own threads on tiny images only add contention.
    cv2.setNumThreads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks instead of returning them to the kernel: each chunk allocates
    and frees the same few-megabyte arrays, and mapping them afresh costs a page fault per 4 KiB
    (a third of the run's time in the kernel without this). No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


def _work(task: tuple[Callable, list]) -> ChunkResult:
    work, chunk = task
    return work(chunk, _worker_config)


def _worker_context():
    """Workers start from a clean forkserver that has imported this module once: a plain fork of
    a parent whose OpenCV thread pool is running can deadlock, and spawn would re-import per worker.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


@contextlib.contextmanager
def worker_pool(config, jobs: int, initializer: Callable = _init_worker):
    """A pool of ``jobs`` worker processes, each given ``config`` by ``initializer``, or None for
    ``jobs`` <= 1 (work in this process)."""
    if jobs <= 1:
        yield None
        return
    with _worker_context().Pool(jobs, initializer=initializer, initargs=(config,)) as pool:
        yield pool


def process_all(candidates: list[Candidate], config: BuildConfig, pool) -> Iterator[ChunkResult]:
    """Chunk results in file order, computed on the pool's workers (or here when it is None)."""
    chunks = [candidates[i : i + CHUNK_FILES] for i in range(0, len(candidates), CHUNK_FILES)]
    yield from run_chunks(chunks, process_chunk, config, pool)


def run_chunks(
    chunks: list, work: Callable[[object, BuildConfig], ChunkResult], config: BuildConfig, pool
) -> Iterator[ChunkResult]:
    """``work(chunk, config)`` for each chunk, results in chunk order, on the pool's workers (or
    here when it is None). ``work`` must be a module-level function so workers can unpickle it."""
    if pool is None or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk, config)
        return
    yield from pool.imap(_work, [(work, chunk) for chunk in chunks])


def build_dataset(
    sources: list[Path],
    out: Path,
    config: BuildConfig,
    label_mode: str = "auto",
    pattern: str | None = None,
    origin: str | None = None,
    jobs: int = 0,
    strict: bool = False,
    on_skip: Callable[[str, str], None] = lambda path, reason: None,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> BuildSummary:
    """Build one-hot CSVs from labelled images. With ``strict`` nothing is written if any file
    is skipped. Raises nothing for bad files: they are reported through ``on_skip``."""
    jobs = jobs or os.cpu_count() or 1
    # Workers start up while this process walks the folders.
    with worker_pool(config, jobs) as pool:
        candidates = find_candidates(sources, label_mode, pattern, config.classes, origin)
        on_start(len(candidates))
        record = build_record(sources, config, "pattern" if pattern else label_mode, pattern)
        results = process_all(candidates, config, pool)
        return write_outputs(results, out, config, record, strict, on_skip, on_progress)


def write_outputs(
    results: Iterable[ChunkResult],
    out: Path,
    config: BuildConfig,
    record: dict,
    strict: bool = False,
    on_skip: Callable[[str, str], None] = lambda path, reason: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> BuildSummary:
    """Stream chunk results into temporary outputs (CSV per size, manifest, errors, and ``record``
    with the row counts as OUT.build.json); rename them into place at the end."""
    csv_paths = output_paths(out, config.sizes)
    writers = {
        "csv": [AtomicWriter(p) for p in csv_paths],
        "manifest": [AtomicWriter(sidecar_path(p, "manifest")) for p in csv_paths],
        "errors": [AtomicWriter(sidecar_path(p, "errors")) for p in csv_paths],
        "build": [AtomicWriter(sidecar_path(p, "build")) for p in csv_paths],
    }
    all_writers = [w for group in writers.values() for w in group]
    summary = BuildSummary()
    try:
        for writer, size in zip(writers["csv"], config.sizes):
            writer.write(onehot_header(size * size, config.classes))
        for writer in writers["manifest"]:
            writer.write(csv_text(MANIFEST_HEADER, []))
        for writer in writers["errors"]:
            writer.write(csv_text(ERRORS_HEADER, []))
        for result in results:
            for writer, lines in zip(writers["csv"], result.csv_lines):
                writer.write(lines)
            errors_text = _rows_only(ERRORS_HEADER, result.errors)
            for writer in writers["manifest"]:
                writer.write(result.manifest_lines)
            for writer in writers["errors"]:
                writer.write(errors_text)
            for path, reason in result.errors:
                on_skip(path, reason)
            summary.written += result.written
            summary.skipped += len(result.errors)
            summary.errors.extend(result.errors)
            on_progress(result.written + len(result.errors))
        counts = {"rows": summary.written, "skipped": summary.skipped}
        for writer, size in zip(writers["build"], config.sizes):
            writer.write((json.dumps({**record, **counts, "size": size}, indent=2, sort_keys=True) + "\n").encode())
    except BaseException:
        for writer in all_writers:
            writer.abort()
        raise
    if strict and summary.skipped:
        for writer in all_writers:
            writer.abort()
        return summary
    for writer in all_writers:
        writer.commit()
    summary.outputs = csv_paths
    return summary


def _rows_only(header: list[str], rows: list[tuple]) -> bytes:
    """CSV lines for rows, without the header line csv_text adds."""
    if not rows:
        return b""
    return csv_text(header, rows).split(b"\n", 1)[1]


def build_record(sources, config: BuildConfig, labels: str, pattern: str | None = None) -> dict:
    """The options the data was built with, for the trainer to store in its models (write_outputs
    adds the row counts and the size)."""
    options = asdict(config.options)
    return {
        "sources": [Path(os.path.relpath(s)).as_posix() for s in sources],
        "classes": format_classes(config.classes),
        "labels": labels,
        "pattern": pattern,
        "deskew": options["deskew"],
        "center": options["center"],
        "box": options["box"],
    }
