"""`digitprep augment`: N augmented copies of every image of a one-hot CSV or of a PNG tree.

CSV in, CSV out: the originals (unless dropped) each followed by their copies, the manifest
saying for every row which input row (``source_row``, 0-based) and which copy (``copy``, 0 = the
original) it is, the build record gaining an ``augment`` step. PNG tree in, PNG tree out: the same
relative paths, each copy named ``NAME_a<k>.png`` beside where ``NAME.png`` goes, so labels and tags
read from folders or from ``<label>_<tag>_<n>`` names carry over.

The work runs on a pool of worker processes, a chunk of images per task. Every copy's random
numbers come from its own key, (seed, image, copy), so the output is byte-identical whatever the
number of workers and the chunking.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digitprep import keyed_random
from digitprep.augment import AugmentStrengths, augment_stack
from digitprep.build import BuildConfig, worker_pool  # the build pool, reused as it is
from digitprep.chunkwork import _keep_freed_memory, decode_chunk, decoded_images  # the build's set-up, decoder
from digitprep.csvio import encode_onehot_rows
from digitprep.dataset import DatasetWriter, manifest_lines, read_dataset
from digitprep.normalize import ink_high
from digitprep.pngtree import encode_png
from digitprep.sources import Candidate, find_candidates

CHUNK_OUTPUTS = 2048  # augmented images per task sent to a worker: a few tens of MB of maps
CHUNK_FILES = 256  # at most this many files per task, decoded at once whatever their size
PIXEL_BUDGET = CHUNK_OUTPUTS * 28 * 28  # output pixels augmented at once (maps, fields: ~16 bytes each)
POOL_THRESHOLD = 16384  # fewer copies than this are made in this process: starting workers costs more (~1 s)
PROVENANCE = ["source_row", "copy"]  # manifest columns augment adds (or overwrites)


@dataclass(frozen=True)
class AugmentJob:
    """Everything a worker needs: the strengths, how many copies, the seed, and what to keep."""

    strengths: AugmentStrengths = field(default_factory=AugmentStrengths)
    copies: int = 1
    seed: int = 0
    keep_originals: bool = True
    classes: tuple[int, ...] = tuple(range(10))
    out_dir: str = ""  # tree mode: where the PNGs go


@dataclass
class AugmentSummary:
    sources: int = 0
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def copy_numbers(job: AugmentJob) -> np.ndarray:
    """The copy index of each output per source image: 0 is the original (when kept)."""
    return np.arange(0 if job.keep_originals else 1, job.copies + 1)


def augmented_copies(images: np.ndarray, image_ids: np.ndarray, job: AugmentJob) -> np.ndarray:
    """(n, copies, H, W): ``job.copies`` augmented copies of each image, keyed by its id."""
    n = len(images)
    ids = np.repeat(np.asarray(image_ids, np.int64), job.copies)
    copies = np.tile(np.arange(1, job.copies + 1), n)
    keys = keyed_random.stream_keys(job.seed, ids, copies)
    stack = augment_stack(np.repeat(images, job.copies, axis=0), job.strengths, keys)
    return stack.reshape(n, job.copies, *images.shape[1:])


# ---------------------------------------------------------------- worker pool


_job: AugmentJob | None = None


def _init_worker(job: AugmentJob) -> None:
    global _job
    _job = job
    cv2.setNumThreads(1)  # the pool already uses every core
    _keep_freed_memory()


def _rows_task(task) -> tuple[bytes, bytes, int]:
    return augment_rows(*task, _job)


def _files_task(task) -> tuple[int, list[tuple[str, str]]]:
    return augment_files(task, _job)


def run_tasks(tasks: list, task_function, local_function, job: AugmentJob, jobs: int) -> Iterator:
    """Results of every task in order: on a pool when there is enough work, else here."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield local_function(task, job)
        return
    with worker_pool(job, jobs, initializer=_init_worker) as pool:
        yield from pool.map(task_function, tasks)


def chunk_sources(job: AugmentJob) -> int:
    """Source images per task, so that a task makes about CHUNK_OUTPUTS copies."""
    return max(1, CHUNK_OUTPUTS // job.copies)


def _workers(jobs: int, work: int) -> int:
    jobs = jobs or os.cpu_count() or 1
    return jobs if work >= POOL_THRESHOLD else 1


# ---------------------------------------------------------------- CSV in, CSV out


def augment_rows(
    start: int, pixels: np.ndarray, labels: np.ndarray, manifest: list[list[str]], job: AugmentJob
) -> tuple[bytes, bytes, int]:
    """Rows ``start``.. of a data set -> (CSV lines, manifest lines, row count) of their outputs:
    each row's original (when kept) then its copies. ``manifest`` rows lack the provenance columns."""
    n, n_pixels = pixels.shape
    side = round(n_pixels**0.5)
    source_rows = start + np.arange(n)
    copies = augmented_copies(pixels.reshape(n, side, side), source_rows, job).reshape(n, job.copies, n_pixels)
    if job.keep_originals:
        copies = np.concatenate((pixels[:, None], copies), axis=1)
    numbers = copy_numbers(job)
    out_pixels = copies.reshape(-1, n_pixels)
    out_labels = np.repeat(labels, len(numbers))
    out_manifest = [
        [*manifest[i], str(row), str(number)] for i, row in enumerate(source_rows.tolist()) for number in numbers
    ]
    return encode_onehot_rows(out_pixels, out_labels, job.classes), manifest_lines(out_manifest), len(out_labels)


def augment_csv(
    src: Path,
    out: Path,
    job: AugmentJob,
    jobs: int = 0,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> AugmentSummary:
    """Augment a one-hot data set into ``out`` (CSV, manifest, build record, written atomically).
    The pixel count must be a square; images are augmented at that size."""
    if Path(out).resolve() == Path(src).resolve():
        raise ValueError(f"{out}: the output must not be the input")
    dataset = read_dataset(src)
    if dataset.side is None:
        raise ValueError(f"{src}: {dataset.pixels.shape[1]} pixels per row is not a square image")
    job = AugmentJob(job.strengths, job.copies, job.seed, job.keep_originals, dataset.classes)
    kept = [i for i, name in enumerate(dataset.manifest_header) if name not in PROVENANCE]
    header = [dataset.manifest_header[i] for i in kept] + PROVENANCE
    base = [[row[i] for i in kept] for row in dataset.manifest_rows]
    n, chunk = len(dataset.labels), chunk_sources(job)
    tasks = [
        (start, dataset.pixels[start : start + chunk], dataset.labels[start : start + chunk],
         base[start : start + chunk])
        for start in range(0, n, chunk)
    ]  # fmt: skip
    on_start(n)
    summary = AugmentSummary(sources=n)
    with DatasetWriter(out, dataset.pixels.shape[1], dataset.classes, header) as writer:
        workers = _workers(jobs, n * job.copies)
        for (start, *_), (lines, manifest, count) in zip(
            tasks, run_tasks(tasks, _rows_task, lambda task, j: augment_rows(*task, j), job, workers)
        ):
            writer.write_rows(lines, manifest, count)
            on_progress(min(chunk, n - start))
        step = {"augment": {"from": Path(src).name, **augment_settings(job)}}
        writer.commit({**dataset.record, "steps": [*dataset.record.get("steps", []), step]})
        summary.written = writer.rows
    return summary


def augment_settings(job: AugmentJob) -> dict:
    """What a run did, for the build record."""
    return {"copies": job.copies, "seed": job.seed, "keep_originals": job.keep_originals, **asdict(job.strengths)}


# ---------------------------------------------------------------- PNG tree in, PNG tree out


def path_id(relative: str) -> int:
    """A file's stable image id: its copies do not change when other files come or go."""
    return int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "little", signed=True)


def copy_name(relative: str, number: int) -> str:
    """``dir/NAME.ext`` -> ``dir/NAME_a<number>.png``; the original (0) keeps its name."""
    if number == 0:
        return relative
    stem, _ = os.path.splitext(relative)
    return f"{stem}_a{number}.png"


def write_small_file(path: Path, data: bytes) -> None:
    """Write under a temporary name, then rename: an interrupted run never leaves half a file under
    the real name. Unlike csvio.write_atomic there is no fsync: for thousands of small PNGs it
    would cost milliseconds each, and the worst a power cut can do is lose the newest copies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def augment_files(items: list[tuple[Candidate, str]], job: AugmentJob) -> tuple[int, list[tuple[str, str]]]:
    """(candidate, path relative to the source folder) pairs -> PNGs under ``job.out_dir``; returns
    (files written, skipped files with reasons). Images of one shape are augmented as one stack,
    ink-high, and written back in their own polarity."""
    config = BuildConfig((), job.classes)
    errors: list[tuple[str, str]] = []
    groups: dict[tuple[int, int], list[tuple[np.ndarray, Candidate, str]]] = {}
    outcomes = decoded_images(decode_chunk([candidate for candidate, _ in items], config))
    for (candidate, relative), outcome in zip(items, outcomes):
        if isinstance(outcome, str):
            errors.append((candidate.display, outcome))
        else:
            groups.setdefault(outcome[0].shape, []).append((outcome[0], candidate, relative))
    written = 0
    out_dir = Path(job.out_dir)
    batches = []
    for (height, width), members in groups.items():
        size = max(1, PIXEL_BUDGET // (job.copies * height * width))  # big scans: a few at a time
        batches.extend(members[i : i + size] for i in range(0, len(members), size))
    for members in batches:
        greys = np.stack([grey for grey, _, _ in members])
        inked = ink_high(greys)
        flipped = inked[:, 0, 0] != greys[:, 0, 0]  # ink_high inverts every pixel or none
        try:
            copies = augmented_copies(inked, np.array([path_id(r) for _, _, r in members]), job)
        except ValueError as exc:
            errors.extend((candidate.display, str(exc)) for _, candidate, _ in members)
            continue
        copies[flipped] = 255 - copies[flipped]
        for (_, candidate, relative), images in zip(members, copies):
            if job.keep_originals:
                write_small_file(out_dir / relative, Path(candidate.path).read_bytes())
                written += 1
            for number, image in enumerate(images, start=1):
                write_small_file(out_dir / copy_name(relative, number), encode_png(image))
                written += 1
    return written, errors


def augment_tree(
    src: Path,
    out_dir: Path,
    job: AugmentJob,
    label_mode: str = "auto",
    pattern: str | None = None,
    jobs: int = 0,
    on_skip: Callable[[str, str], None] = lambda path, reason: None,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> AugmentSummary:
    """Augment every labelled image under the folder ``src`` into ``out_dir`` (same layout).
    Unusable files are skipped and reported through ``on_skip``, as `build` does."""
    src, out_dir = Path(src), Path(out_dir)
    if label_mode == "labelrow":
        raise ValueError("augment cannot keep a label row intact; use folder or file-name labels")
    if out_dir.resolve() == src.resolve() or src.resolve() in out_dir.resolve().parents:
        raise ValueError(f"{out_dir}: the output folder must not be inside {src} (a rerun would augment copies)")
    candidates = find_candidates([src], label_mode, pattern, job.classes)
    job = AugmentJob(job.strengths, job.copies, job.seed, job.keep_originals, job.classes, str(out_dir))
    on_start(len(candidates))
    items = [(c, Path(os.path.relpath(c.path, src)).as_posix()) for c in candidates]
    chunk = min(CHUNK_FILES, chunk_sources(job))
    tasks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    summary = AugmentSummary(sources=len(candidates))
    workers = _workers(jobs, len(items) * job.copies)
    for task, (written, errors) in zip(tasks, run_tasks(tasks, _files_task, augment_files, job, workers)):
        summary.written += written
        summary.skipped.extend(errors)
        for path, reason in errors:
            on_skip(path, reason)
        on_progress(len(task))
    return summary
