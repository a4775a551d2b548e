"""`digitprep augment`: N augmented copies of every image of a one-hot CSV or of a PNG tree.

CSV in, CSV out: each original (unless dropped) followed by its copies; the manifest gains
``source_row`` (0-based input row) and ``copy`` (0 = the original), the build record an ``augment``
step. PNG tree in, PNG tree out: the same relative paths, copies named ``NAME_a<k>.png`` beside
``NAME.png``, so folder and file-name labels carry over. Every copy's randoms come from its own key
(seed, image, copy), so the bytes do not depend on ``jobs`` or chunking; outputs go through one
OutputSet, so an error, Ctrl-C or SIGTERM leaves the old outputs as they were.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet, write_staged
from digitprep.augment import AugmentStrengths, augment_stack, copy_keys
from digitprep.build import BuildConfig, decode_file, read_file
from digitprep.csvio import DatasetWriter, csv_lines, encode_onehot_rows, read_dataset
from digitprep.paper import ink_high
from digitprep.parallel import NO_FEEDBACK, Feedback, advance, parallel_map
from digitprep.pngtree import encode_png
from digitprep.sources import Candidate, find_candidates

CHUNK_OUTPUTS = 2048  # augmented images per task (a few tens of MB of maps); less work is one task
CHUNK_FILES = 256  # at most this many files per task
PIXEL_BUDGET = CHUNK_OUTPUTS * 28 * 28  # output pixels augmented at once (maps, fields: ~16 bytes each)
PROVENANCE = ["source_row", "copy"]  # manifest columns augment adds (or overwrites)


@dataclass(frozen=True)
class AugmentJob:
    """What every task needs: the strengths, how many copies, the seed, and what to keep."""

    strengths: AugmentStrengths = field(default_factory=AugmentStrengths)
    copies: int = 1
    seed: int = 0
    keep_originals: bool = True
    classes: tuple[int, ...] = tuple(range(10))

    def numbers(self) -> list[int]:
        """The copy number of each output per source image: 0 is the original (when kept)."""
        return list(range(0 if self.keep_originals else 1, self.copies + 1))

    def chunk(self) -> int:
        """Source images per task, so that a task makes about CHUNK_OUTPUTS copies."""
        return max(1, CHUNK_OUTPUTS // self.copies)


@dataclass
class AugmentSummary:
    sources: int = 0
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def augmented_copies(images: np.ndarray, image_ids: np.ndarray, job: AugmentJob) -> np.ndarray:
    """(n, H, W) uint8 ink-high, ids (n,) int64 -> (n, copies, H, W) uint8, each copy keyed by its image's id."""
    n = len(images)
    ids = np.repeat(np.asarray(image_ids, np.int64), job.copies)
    keys = copy_keys(job.seed, ids, np.tile(np.arange(1, job.copies + 1), n))
    stack = augment_stack(np.repeat(images, job.copies, axis=0), job.strengths, keys)
    return stack.reshape(n, job.copies, *images.shape[1:])


def augment_rows(task: tuple[int, np.ndarray, np.ndarray, list[list[str]], AugmentJob]) -> tuple[bytes, bytes, int]:
    """(start, pixels (n, N) uint8, labels (n,), manifest rows without provenance, job) -> (CSV lines,
    manifest lines, row count) of each row's original (when kept) and copies; the row number is the id."""
    start, pixels, labels, manifest, job = task
    n, n_pixels = pixels.shape
    side = round(n_pixels**0.5)
    source_rows = start + np.arange(n)
    copies = augmented_copies(pixels.reshape(n, side, side), source_rows, job).reshape(n, job.copies, n_pixels)
    if job.keep_originals:
        copies = np.concatenate((pixels[:, None], copies), axis=1)
    numbers = job.numbers()
    out_labels = np.repeat(labels, len(numbers))
    out_manifest = [[*manifest[i], str(row), str(k)] for i, row in enumerate(source_rows.tolist()) for k in numbers]
    lines = encode_onehot_rows(copies.reshape(-1, n_pixels), out_labels, job.classes)
    return lines, csv_lines(out_manifest), len(out_labels)


def augment_csv(
    src: Path,
    out: Path,
    job: AugmentJob,
    jobs: int = 0,
    feedback: Feedback = NO_FEEDBACK,
) -> AugmentSummary:
    """Augment a one-hot data set of square images into ``out`` (CSV, manifest, build record, as one set)."""
    if Path(out).resolve() == Path(src).resolve():
        raise ValueError(f"{out}: the output must not be the input")
    dataset = read_dataset(src)
    if dataset.side is None:
        raise ValueError(f"{src}: {dataset.pixels.shape[1]} pixels per row is not a square image")
    job = replace(job, classes=dataset.classes)
    kept = [i for i, name in enumerate(dataset.manifest_header) if name not in PROVENANCE]
    base = [[row[i] for i in kept] for row in dataset.manifest_rows]
    n = len(dataset.labels)
    parts = [slice(start, start + job.chunk()) for start in range(0, n, job.chunk())]
    tasks = [(part.start, dataset.pixels[part], dataset.labels[part], base[part], job) for part in parts]
    header = [dataset.manifest_header[i] for i in kept] + PROVENANCE
    feedback.on_start(n)
    with (
        DatasetWriter(out, dataset.pixels.shape[1], dataset.classes, header) as writer,
        parallel_map(augment_rows, tasks, jobs) as results,
    ):
        for task, (lines, manifest, count) in zip(tasks, results):
            writer.write_rows(lines, manifest, count)
            feedback.on_progress(len(task[2]))
        settings = {"copies": job.copies, "seed": job.seed, "keep_originals": job.keep_originals}
        step = {"augment": {"from": Path(src).name, **settings, **asdict(job.strengths)}}
        writer.commit({**dataset.record, "steps": [*dataset.record.get("steps", []), step]})
        return AugmentSummary(sources=n, written=writer.rows)


def path_id(relative: str) -> int:
    """A file's stable image id (signed 64-bit): its copies do not change when other files come or go."""
    return int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "little", signed=True)


def augment_batch(batch: list, job: AugmentJob, staging: Path, out_dir: Path) -> tuple[int, list[tuple[str, str]]]:
    """(grey, file bytes, candidate, relative path) of decoded files -> (files written, skipped (file,
    reason)). Images of one shape are augmented as one stack, ink-high, and written in their own polarity."""
    written, errors = 0, []
    shapes: dict[tuple[int, int], list] = {}
    for member in batch:
        shapes.setdefault(member[0].shape, []).append(member)
    for members in shapes.values():
        greys = np.stack([grey for grey, *_ in members])
        inked = ink_high(greys)
        flipped = inked[:, 0, 0] != greys[:, 0, 0]  # ink_high inverts every pixel or none
        try:
            copies = augmented_copies(inked, np.array([path_id(m[3]) for m in members], np.int64), job)
        except ValueError as exc:
            errors.extend((candidate.display, str(exc)) for _, _, candidate, _ in members)
            continue
        copies[flipped] = 255 - copies[flipped]
        for (_, data, _, relative), images in zip(members, copies):
            for k in job.numbers():  # the original keeps its name and its bytes
                name = relative if k == 0 else f"{os.path.splitext(relative)[0]}_a{k}.png"
                write_staged(staging, out_dir, name, data if k == 0 else encode_png(images[k - 1]))
                written += 1
    return written, errors


def augment_files(
    task: tuple[list[tuple[Candidate, str]], AugmentJob, Path, Path],
) -> tuple[int, list[tuple[str, str]]]:
    """((candidate, relative path) pairs, job, staging folder, output folder) -> (files written, skipped).
    Files are decoded until their copies reach PIXEL_BUDGET pixels, so large scans go a few at a time."""
    items, job, staging, out_dir = task
    config = BuildConfig((), job.classes)
    written, errors, batch, pixels = 0, [], [], 0
    for position, (candidate, relative) in enumerate(items):
        data = read_file(candidate)
        outcome = data if isinstance(data, str) else decode_file(candidate, data, config)
        advance()  # counted once decoded, as `build` counts
        if isinstance(outcome, str):
            errors.append((candidate.display, outcome))
        else:
            batch.append((outcome[0], data, candidate, relative))
            pixels += outcome[0].size * job.copies
        if batch and (pixels >= PIXEL_BUDGET or position == len(items) - 1):
            done, failed = augment_batch(batch, job, staging, out_dir)
            written += done
            errors.extend(failed)
            batch, pixels = [], 0
    return written, errors


def augment_tree(
    src: Path,
    out_dir: Path,
    job: AugmentJob,
    label_mode: str = "auto",
    pattern: str | None = None,
    jobs: int = 0,
    feedback: Feedback = NO_FEEDBACK,
) -> AugmentSummary:
    """Augment every labelled image under ``src`` into ``out_dir`` (same layout; each top-level entry
    replaces the one of that name); unusable files are reported to ``feedback``, as `build` does."""
    src, out_dir = Path(src), Path(out_dir)
    if label_mode == "labelrow":
        raise ValueError("augment cannot keep a label row intact; use folder or file-name labels")
    if out_dir.resolve() == src.resolve() or src.resolve() in out_dir.resolve().parents:
        raise ValueError(f"{out_dir}: the output folder must not be inside {src} (a rerun would augment copies)")
    candidates = find_candidates([src], label_mode, pattern, job.classes)
    feedback.on_start(len(candidates))
    items = [(c, Path(os.path.relpath(c.path, src)).as_posix()) for c in candidates]
    chunk = min(CHUNK_FILES, job.chunk())
    summary = AugmentSummary(sources=len(candidates))
    with OutputSet() as outputs:
        staging = outputs.folder(out_dir)
        tasks = [(items[i : i + chunk], job, staging, out_dir) for i in range(0, len(items), chunk)]
        with parallel_map(augment_files, tasks, jobs, feedback.on_progress) as results:
            for written, errors in results:
                summary.written += written
                summary.skipped.extend(errors)
                for path, reason in errors:
                    feedback.on_skip(path, reason)
        outputs.commit()
    return summary
