"""`digitprep build`: labelled image files -> one-hot CSVs (one per size), manifest and errors.

Files are decoded and normalised in worker processes, in chunks, and the results are written in
order as they arrive, so memory stays bounded whatever the number of files and rows come out in
the same order on every run. All outputs are written under temporary names and renamed at the end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from itertools import chain, islice
from pathlib import Path

from digitprep.chunkpool import WorkerPool
from digitprep.classes import format_classes
from digitprep.options import DEFAULT_MAX_PIXELS, NormalizeOptions
from digitprep.sources import FolderRun, label_pattern, run_candidates, walk_sources
from digitprep.spool import Spooled, SpoolReader, make_spool, remove_spool
from digitprep.textfiles import AtomicWriter, commit_all, csv_text, onehot_header
from digitprep.workers import start_worker_server, worker_context

MANIFEST_HEADER = ["path", "label", "tag", "origin", "width", "height", "sha256"]
ERRORS_HEADER = ["path", "reason"]
# Files per task sent to a worker: a task's fixed costs (its NumPy and OpenCV calls, the canvases)
# are spread over them. MNIST build, 8-10 alternating runs each: 1024 files took 5% less CPU than
# 512, 2048 another 5% less; 4096 was 10% slower (stacks too large for the caches and for one remap).
CHUNK_FILES = 2048
WALK_AHEAD_CHUNKS = 50  # chunks found before the workers start (build_dataset): about 100 000 files
PIXEL_BUDGET = 1 << 23  # decoded pixels per batch: 8 MB as uint8, 32 MB as float32, a few hundred MB while normalised


@dataclass(frozen=True)
class BuildConfig:
    """Everything a worker needs to turn one file into rows."""

    sizes: tuple[int, ...]
    classes: tuple[int, ...]
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
    labelrow: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    spool: str | None = None  # the folder where workers leave their output text (spool.py)
    pixel_budget: int = PIXEL_BUDGET  # decoded pixels read and normalised at once (chunkwork)
    labels: str = "auto"  # how workers label the files they are sent (sources.run_candidates)
    pattern: str | None = None


@dataclass
class ChunkResult:
    """One chunk of files made into output text, in file order: CSV lines per size, manifest
    lines, and the files skipped. Encoded in the worker so the parent only writes; a worker with
    a spool leaves the text there and sends where it is. Defined here, not in chunkwork: the
    parent unpickles it and must not import NumPy and OpenCV to do so."""

    csv_lines: list[bytes | Spooled]
    manifest_lines: bytes | Spooled
    written: int
    errors: list[tuple[str, str]]
    reported: int = 0  # files of the chunk already counted as done by progress reports


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


def _init_worker(config: BuildConfig) -> None:
    from digitprep.chunkwork import init_worker  # already imported by the forkserver

    init_worker(config)


@contextlib.contextmanager
def worker_pool(config, jobs: int, initializer: Callable = _init_worker):
    """A pool of ``jobs`` worker processes (chunkpool), each given ``config`` by ``initializer``,
    or None for ``jobs`` <= 1 (work in this process). On an error or an interrupt here the
    workers are ended at once."""
    if jobs <= 1:
        yield None
        return
    pool = WorkerPool(jobs, worker_context(), initializer, config)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    pool.close()


def _work(runs: list[FolderRun]) -> ChunkResult:
    from digitprep.chunkwork import work

    return work(runs)


def _run_task(work: Callable, chunk) -> ChunkResult:
    from digitprep.chunkwork import work_with_config

    return work_with_config(work, chunk)


class FoundChunks:
    """The files found under the sources (FolderRuns, ``walk_sources``) in chunks of ``size``
    files, cut as the folders are walked; ``files`` counts those handed out so far.

    The last two chunks are held back until more files come, so that the final files go out in
    quarter chunks: the workers then finish within a quarter chunk of each other instead of one
    waiting up to a whole chunk for the other."""

    def __init__(self, runs: Iterator[FolderRun], size: int):
        self.files = 0
        self._chunks = self._cut(runs, size)

    def _cut(self, runs: Iterator[FolderRun], size: int) -> Iterator[list[FolderRun]]:
        held: list[list[FolderRun]] = []
        for chunk in _cut_runs(runs, size):
            held.append(chunk)
            if len(held) > 2:
                self.files += size
                yield held.pop(0)
        last = (run for chunk in held for run in chunk)
        for quarter in _cut_runs(last, max(1, size // 4)):
            self.files += sum(run.size for run in quarter)
            yield quarter

    def __iter__(self) -> Iterator[list[FolderRun]]:
        return self._chunks

    def take(self, count: int) -> list[list[FolderRun]]:
        """The next ``count`` chunks (fewer when the files run out)."""
        return list(islice(self._chunks, count))


def _cut_runs(runs: Iterator[FolderRun], size: int) -> Iterator[list[FolderRun]]:
    """FolderRuns regrouped into chunks of ``size`` files (the last one smaller), in order."""
    chunk: list[FolderRun] = []
    room = size
    for run in runs:
        start = 0
        while start < run.size:
            taken = min(room, run.size - start)
            chunk.append(run.part(start, start + taken))
            start, room = start + taken, room - taken
            if room == 0:
                yield chunk
                chunk, room = [], size
    if chunk:
        yield chunk


def process_all(
    chunks: Iterable[list[FolderRun]],
    config: BuildConfig,
    pool,
    on_progress: Callable[[int], None] = lambda n: None,
) -> Iterator[ChunkResult]:
    """Chunk results in file order, computed on the pool's workers (or here when it is None).
    With a pool, the first chunks go out and every chunk is found before this returns: folders
    still to be walked (``chunks`` may be lazy) are walked while the workers start. The workers
    label the files themselves: this process, which competes with them for the cores, only walks
    the folders and sends each chunk as a few folder paths and file names."""
    if pool is None:
        from digitprep.chunkwork import process_chunk  # NumPy and OpenCV in this process after all

        labelled = [run_candidates(chunk, config.labels, config.pattern, config.classes) for chunk in chunks]
        return run_chunks(labelled, process_chunk, config, None)
    return _then_stop(pool.map(_work, chunks, take_all=True, on_progress=on_progress), pool)


def _then_stop(results: Iterator[ChunkResult], pool) -> Iterator[ChunkResult]:
    """``results``, then the pool's workers told to end: they exit while the outputs are committed."""
    yield from results
    pool.stop()


def run_chunks(
    chunks: list, work: Callable[[object, BuildConfig], ChunkResult], config: BuildConfig, pool
) -> Iterator[ChunkResult]:
    """``work(chunk, config)`` for each chunk, results in chunk order, on the pool's workers (or
    here when it is None). ``work`` must be a module-level function so workers can unpickle it."""
    if pool is None or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk, config)
        return
    yield from pool.map(partial(_run_task, work), chunks)


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
    if jobs > 1:
        start_worker_server()  # its imports overlap the walk through the folders
    label_pattern(pattern)  # a bad pattern is an error before any folder is walked
    config = replace(config, labels=label_mode, pattern=pattern)
    chunks = FoundChunks(walk_sources(sources, origin), CHUNK_FILES)
    # Walked before the pool starts: creating it waits for the worker server, which is
    # importing NumPy and OpenCV meanwhile; 100 000 files take about as long to find.
    first = chunks.take(WALK_AHEAD_CHUNKS)
    record = build_record(sources, config, "pattern" if pattern else label_mode, pattern)
    # A single piece is not worth starting workers for: up to a quarter chunk (512 files), as
    # the last files go out in quarters.
    jobs = jobs if len(first) > 1 else 1
    spool = make_spool(out) if jobs > 1 else None
    try:
        with worker_pool(replace(config, spool=spool), jobs) as pool:
            results = process_all(chain(first, chunks), config, pool, on_progress)
            on_start(chunks.files)
            return write_outputs(results, out, config, record, strict, on_skip, on_progress, spool)
    finally:
        if spool is not None:
            remove_spool(spool)


def write_outputs(
    results: Iterable[ChunkResult],
    out: Path,
    config: BuildConfig,
    record: dict,
    strict: bool = False,
    on_skip: Callable[[str, str], None] = lambda path, reason: None,
    on_progress: Callable[[int], None] = lambda n: None,
    spool: str | None = None,
) -> BuildSummary:
    """Stream chunk results into temporary outputs (CSV per size, manifest, errors, and ``record``
    with the row counts as OUT.build.json); rename them into place at the end. Text the workers
    left in the ``spool`` folder is copied from there."""
    csv_paths = output_paths(out, config.sizes)
    writers = {
        "csv": [AtomicWriter(p) for p in csv_paths],
        "manifest": [AtomicWriter(sidecar_path(p, "manifest")) for p in csv_paths],
        "errors": [AtomicWriter(sidecar_path(p, "errors")) for p in csv_paths],
        "build": [AtomicWriter(sidecar_path(p, "build")) for p in csv_paths],
    }
    all_writers = [w for group in writers.values() for w in group]
    summary = BuildSummary()
    spooled = SpoolReader(spool) if spool is not None else None

    def write(writer: AtomicWriter, text: bytes | Spooled) -> None:
        if isinstance(text, Spooled):
            writer.append_with(lambda fd: spooled.copy(text, fd), text.length)
        else:
            writer.write(text)

    try:
        for writer, size in zip(writers["csv"], config.sizes):
            writer.write(onehot_header(size * size, config.classes))
        for writer in writers["manifest"]:
            writer.write(csv_text(MANIFEST_HEADER, []))
        for writer in writers["errors"]:
            writer.write(csv_text(ERRORS_HEADER, []))
        for result in results:
            for writer, lines in zip(writers["csv"], result.csv_lines):
                write(writer, lines)
            errors_text = rows_only(ERRORS_HEADER, result.errors)
            for writer in writers["manifest"]:
                write(writer, result.manifest_lines)
            for writer in writers["errors"]:
                writer.write(errors_text)
            for path, reason in result.errors:
                on_skip(path, reason)
            summary.written += result.written
            summary.skipped += len(result.errors)
            summary.errors.extend(result.errors)
            on_progress(result.written + len(result.errors) - result.reported)
        import json  # here: the worker server imports this module too, and never writes JSON

        counts = {"rows": summary.written, "skipped": summary.skipped}
        for writer, size in zip(writers["build"], config.sizes):
            writer.write((json.dumps({**record, **counts, "size": size}, indent=2, sort_keys=True) + "\n").encode())
    except BaseException:
        for writer in all_writers:
            writer.abort()
        raise
    finally:
        if spooled is not None:
            spooled.close()
    if strict and summary.skipped:
        for writer in all_writers:
            writer.abort()
        return summary
    commit_all(all_writers)
    summary.outputs = csv_paths
    return summary


def rows_only(header: list[str], rows: list[tuple]) -> bytes:
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
