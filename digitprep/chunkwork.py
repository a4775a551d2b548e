"""The work of `digitprep build`'s worker processes: a chunk of files -> encoded output rows.

Reading, decoding (simple PNGs as a batch), normalising (same-shaped images as one stack) and CSV
encoding all happen here, so the main process only walks folders and writes what comes back.
"""

from __future__ import annotations

import ctypes
import hashlib
import os

import cv2
import numpy as np

from digitprep.build import MANIFEST_HEADER, BuildConfig, ChunkResult, rows_only
from digitprep.csvio import encode_onehot_rows
from digitprep.decode import UnusableImage, decode_grey
from digitprep.normalize import ImageTooLarge, normalize_stack
from digitprep.pngbatch import decode_simple_pngs
from digitprep.sources import Candidate

READ_BYTES = 1 << 16  # one read takes a whole small image; larger files take more


def read_source(candidate: Candidate) -> bytes | str:
    """A file's bytes, or the reason it cannot be read. Plain os calls: this runs once per file."""
    if candidate.problem:
        return candidate.problem
    try:
        handle = os.open(candidate.path, os.O_RDONLY)
        try:
            data = os.read(handle, READ_BYTES)
            if len(data) == READ_BYTES:  # a large file: read on to the end
                parts = [data]
                while part := os.read(handle, 1 << 20):
                    parts.append(part)
                data = b"".join(parts)
        finally:
            os.close(handle)
    except IsADirectoryError:
        return "is a directory, not an image"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return data


def decode_file(
    candidate: Candidate, data: bytes, config: BuildConfig, grey: np.ndarray | None = None
) -> tuple[np.ndarray, tuple] | str:
    """One file's bytes -> (grey image, manifest row), or the reason it cannot be used. ``grey``
    is the image when the batched PNG decoder has already decoded it."""
    if grey is None:
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


def decode_chunk(candidates: list[Candidate], config: BuildConfig) -> list[tuple[np.ndarray, tuple] | str]:
    """Per file (grey image, manifest row) or the reason it cannot be used. Simple PNGs are
    decoded together (pngbatch); every other file by the general decoder."""
    contents = [read_source(candidate) for candidate in candidates]
    fast = decode_simple_pngs([data if isinstance(data, bytes) else b"" for data in contents], config.max_pixels)
    return [
        data if isinstance(data, str) else decode_file(candidate, data, config, grey)
        for candidate, data, grey in zip(candidates, contents, fast)
    ]


BLANK = "blank image (no ink found)"


def process_chunk(candidates: list[Candidate], config: BuildConfig) -> ChunkResult:
    """Many files -> encoded rows, in file order; the unit of work sent to a worker process."""
    return rows_from_images(decode_chunk(candidates, config), [candidate.display for candidate in candidates], config)


def rows_from_images(outcomes: list[tuple | str], displays: list[str], config: BuildConfig) -> ChunkResult:
    """Decoded images with their manifest rows (or the reason each item cannot be used) -> encoded
    rows and errors, in order. Normalisation runs once per group of same-shaped images, and its
    results go straight into one pixel matrix per size, row i for item i."""
    reasons = [outcome if isinstance(outcome, str) else None for outcome in outcomes]
    groups: dict[tuple[int, int], list[int]] = {}
    for position, outcome in enumerate(outcomes):
        if reasons[position] is None:
            groups.setdefault(outcome[0].shape, []).append(position)
    pixels = [np.empty((len(outcomes), size * size), np.uint8) for size in config.sizes]
    for positions in groups.values():
        try:
            stacks, blank = normalize_stack(np.stack([outcomes[p][0] for p in positions]), config.sizes, config.options)
        except ImageTooLarge as exc:  # every image of the group has that shape: each gets the reason
            for position in positions:
                reasons[position] = str(exc)
            continue
        members = np.asarray(positions)
        for matrix, stack in zip(pixels, stacks):
            matrix[members[~blank]] = stack.reshape(len(stack), matrix.shape[1])
        for position in members[blank].tolist():
            reasons[position] = BLANK
    written = [position for position, reason in enumerate(reasons) if reason is None]
    manifest = [outcomes[position][1] for position in written]
    labels = np.asarray([row[1] for row in manifest], np.int64)
    csv_lines = [encode_onehot_rows(matrix[written], labels, config.classes) if written else b"" for matrix in pixels]
    errors = [(display, reason) for display, reason in zip(displays, reasons) if reason is not None]
    return ChunkResult(csv_lines, rows_only(MANIFEST_HEADER, manifest), len(manifest), errors)


_worker_config: BuildConfig | None = None


def init_worker(config: BuildConfig) -> None:
    """Per worker process, once: keep the configuration; tune OpenCV and the allocator."""
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


def work(candidates: list[Candidate]) -> ChunkResult:
    """One chunk in a worker process set up by ``init_worker``."""
    return process_chunk(candidates, _worker_config)


def work_with_config(function, chunk) -> ChunkResult:
    """``function(chunk, config)`` in a worker process set up by ``init_worker`` (build.run_chunks)."""
    return function(chunk, _worker_config)
