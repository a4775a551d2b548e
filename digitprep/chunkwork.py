"""The work of `digitprep build`'s worker processes: a chunk of files -> encoded output rows.

Reading, decoding (simple PNGs as a batch), normalising (same-shaped images as one stack) and CSV
encoding all happen here, so the main process only walks folders and writes what comes back.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from digitprep.build import MANIFEST_HEADER, BuildConfig, ChunkResult, rows_only
from digitprep.chunkpool import report_progress
from digitprep.csvio import encode_onehot_rows
from digitprep.decode import UnusableImage, decode_grey
from digitprep.normalize import ImageTooLarge, normalize_stack
from digitprep.pngbatch import PNG_HEAD, simple_png_stacks
from digitprep.sources import Candidate, FolderRun, run_candidates
from digitprep.spool import SpoolWriter

READ_BYTES = 1 << 16  # one read takes a whole small image; larger files take more
OPEN_IN_FOLDER = os.open in os.supports_dir_fd and os.sep == "/"
PNG_SIZE = struct.Struct(">II")  # width and height, at byte 16 of a PNG


def read_source(candidate: Candidate, folder_fd: int | None = None, name: str = "") -> bytes | str:
    """A file's bytes, or the reason it cannot be read. With ``folder_fd``, an open descriptor of
    the file's folder, the file is opened by its ``name`` in it: the kernel then walks one path
    component instead of the whole path, a fifth of the cost of reading a small file."""
    if candidate.problem:
        return candidate.problem
    try:
        if folder_fd is None:
            handle = os.open(candidate.path, os.O_RDONLY)
        else:
            handle = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
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


def read_sources(candidates: list[Candidate]) -> list[bytes | str]:
    """Each file's bytes or the reason it cannot be read."""
    return [data for _, contents in read_in_batches(candidates, budget=None) for data in contents]


def read_in_batches(
    candidates: list[Candidate], budget: int | None = None
) -> Iterator[tuple[slice, list[bytes | str]]]:
    """The files' bytes (or the reason each cannot be read) in consecutive runs whose decoded
    pixels (``decoded_size``) add up to at most ``budget`` (at least one file each; one run when
    it is None), so a chunk of phone photos is read, decoded and normalised a few at a time, not
    all at once. Each folder is opened once (a chunk's files mostly share one). Plain os calls:
    this runs once per file."""
    folders: dict[str, int | None] = {}
    try:
        start, contents, pixels = 0, [], 0
        for position, candidate in enumerate(candidates):
            folder, _, name = candidate.path.rpartition("/")
            folder_fd = folders.get(folder, -1)
            if folder_fd == -1:
                try:
                    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY) if folder and OPEN_IN_FOLDER else None
                except OSError:  # the file will say what is wrong when opened by its path
                    folder_fd = None
                folders[folder] = folder_fd
            data = read_source(candidate, folder_fd, name)
            if budget is not None:
                size = decoded_size(data)
                if size and pixels and pixels + size > budget:
                    yield slice(start, position), contents
                    start, contents, pixels = position, [], 0
                pixels += size
            contents.append(data)
        if contents:
            yield slice(start, len(candidates)), contents
    finally:
        for folder_fd in folders.values():
            if folder_fd is not None:
                os.close(folder_fd)


COMPRESSION_GUESS = 8  # decoded bytes per file byte, for files whose header is not read here


def decoded_size(data: bytes | str) -> int:
    """The pixels a file decodes to: a PNG's from its header, any other file's guessed from its
    length; 0 for a file that could not be read."""
    if isinstance(data, str):
        return 0
    if data.startswith(PNG_HEAD) and len(data) >= 24:
        width, height = PNG_SIZE.unpack_from(data, 16)
        return width * height
    return len(data) * COMPRESSION_GUESS


@dataclass
class DecodedChunk:
    """A chunk's files decoded: same-shaped images as stacks, and per file its manifest row or the
    reason it cannot be used. Kept as stacks from decoding to normalising, so no file costs a
    NumPy view of its own or a copy into a new stack."""

    stacks: list[tuple[np.ndarray, np.ndarray]]  # (positions in the chunk, (k, H, W) uint8 images)
    rows: list[tuple | str]


def decode_general(data: bytes, config: BuildConfig) -> np.ndarray | str:
    """A file the batched PNG decoder does not take -> its grey image, or why it is unusable."""
    try:
        return decode_grey(data, config.max_pixels)
    except UnusableImage as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on a hostile file must not end the run
        return f"cannot decode ({exc.__class__.__name__}: {exc})"


def decode_chunk(
    candidates: list[Candidate], config: BuildConfig, contents: list[bytes | str] | None = None
) -> DecodedChunk:
    """Read (unless ``contents`` are given) and decode a chunk's files: simple PNGs together
    (pngbatch), every other file by the general decoder, then grouped by shape."""
    if contents is None:
        contents = read_sources(candidates)
    rows: list[tuple | str | None] = [data if isinstance(data, str) else None for data in contents]
    stacks = simple_png_stacks([b"" if row else data for data, row in zip(contents, rows)], config.max_pixels)
    taken = {position for positions, _ in stacks for position in positions.tolist()}
    if len(taken) < rows.count(None):  # files the batched PNG decoder left to the general one
        by_shape: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for position, data in enumerate(contents):
            if rows[position] is None and position not in taken:
                grey = decode_general(data, config)
                if isinstance(grey, str):
                    rows[position] = grey
                else:
                    by_shape.setdefault(grey.shape, []).append((position, grey))
        for members in by_shape.values():
            stacks.append((np.array([p for p, _ in members]), np.stack([grey for _, grey in members])))
    if config.labelrow:
        stacks = [labels_from_rows(positions, images, candidates, rows, config) for positions, images in stacks]
    sha256 = hashlib.sha256
    for positions, images in stacks:
        height, width = images.shape[1:]
        if config.labelrow:
            for position in positions.tolist():
                _, display, origin, _, _, _ = candidates[position]
                label, tag = rows[position]
                digest = sha256(contents[position]).hexdigest()  # the size: label row included
                rows[position] = (display, label, tag, origin, width, height + 1, digest)
            continue
        for position in positions.tolist():
            _, display, origin, label, tag, _ = candidates[position]
            rows[position] = (display, label, tag, origin, width, height, sha256(contents[position]).hexdigest())
    return DecodedChunk(stacks, rows)


def labels_from_rows(
    positions: np.ndarray, images: np.ndarray, candidates: list[Candidate], rows: list, config: BuildConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The original project's labelled PNGs: label and tag from each image's first row (pixels 0
    and 1), which is then cut off. Writes (label, tag) into ``rows`` for the images kept and the
    reason into it for the others; returns the kept positions and images."""
    height, width = images.shape[1:]
    if height < 2:
        for position in positions.tolist():
            rows[position] = "labelrow image has no rows below the label row"
        return positions[:0], images[:0, 1:]
    labels = images[:, 0, 0].astype(np.int64)
    tags = [str(tag) for tag in images[:, 0, 1].tolist()] if width > 1 else [""] * len(images)
    known = np.isin(labels, config.classes)
    for position, label, tag, keep in zip(positions.tolist(), labels.tolist(), tags, known.tolist()):
        rows[position] = (label, tag) if keep else f"label {label} (from the label row) is not in the class set"
    return positions[known], images[known, 1:]


def decoded_images(decoded: DecodedChunk) -> list[tuple[np.ndarray, tuple] | str]:
    """Per file (grey image, manifest row), or the reason it cannot be used."""
    outcomes = list(decoded.rows)
    for positions, images in decoded.stacks:
        for position, image in zip(positions.tolist(), images):
            outcomes[position] = (image, decoded.rows[position])
    return outcomes


BLANK = "blank image (no ink found)"


def process_chunk(candidates: list[Candidate], config: BuildConfig) -> ChunkResult:
    """Many files -> encoded rows, in file order; the unit of work sent to a worker process.
    Large images are read, decoded and normalised a few at a time (``read_in_batches``); in a
    worker, each such batch but the last is reported as progress as soon as it is done."""
    results = []
    reported = 0
    for part, contents in read_in_batches(candidates, config.pixel_budget):
        if results:  # the batch before this one is done, and the chunk is not
            report_progress(results[-1].written + len(results[-1].errors))
            reported += results[-1].written + len(results[-1].errors)
        decoded = decode_chunk(candidates[part], config, contents)
        results.append(rows_from_stacks(decoded, [candidate.display for candidate in candidates[part]], config))
    if len(results) == 1:
        return results[0]
    return ChunkResult(
        [b"".join(lines) for lines in zip(*(result.csv_lines for result in results))],
        b"".join(result.manifest_lines for result in results),
        sum(result.written for result in results),
        [error for result in results for error in result.errors],
        reported,
    )


def rows_from_stacks(decoded: DecodedChunk, displays: list[str], config: BuildConfig) -> ChunkResult:
    """Decoded images with their manifest rows (or the reason each item cannot be used) -> encoded
    rows and errors, in order. Each stack of same-shaped images is normalised in one go, and the
    results go straight into one pixel matrix per size, row i for item i."""
    reasons = [row if isinstance(row, str) else None for row in decoded.rows]
    pixels = [np.empty((len(reasons), size * size), np.uint8) for size in config.sizes]
    for positions, images in decoded.stacks:
        if not len(positions):
            continue
        try:
            stacks, blank = normalize_stack(images, config.sizes, config.options)
        except ImageTooLarge as exc:  # every image of the group has that shape: each gets the reason
            for position in positions.tolist():
                reasons[position] = str(exc)
            continue
        for matrix, stack in zip(pixels, stacks):
            matrix[positions[~blank]] = stack.reshape(len(stack), matrix.shape[1])
        for position in positions[blank].tolist():
            reasons[position] = BLANK
    if reasons.count(None) == len(reasons):  # the usual chunk: every file made a row
        written, manifest, errors = slice(None), decoded.rows, []
    else:
        written = [position for position, reason in enumerate(reasons) if reason is None]
        manifest = [decoded.rows[position] for position in written]
        errors = [(display, reason) for display, reason in zip(displays, reasons) if reason is not None]
    labels = np.asarray([row[1] for row in manifest], np.int64)
    csv_lines = [encode_onehot_rows(matrix[written], labels, config.classes) if manifest else b"" for matrix in pixels]
    return ChunkResult(csv_lines, manifest_lines(manifest), len(manifest), errors)


def manifest_lines(rows: list[tuple]) -> bytes:
    """The manifest's CSV lines for ``rows``, as the csv module writes them: joined directly when
    no field needs quoting (a few scans of the text tell), else by the csv module."""
    fields = len(MANIFEST_HEADER)
    text = "".join([f"{p},{label},{tag},{origin},{w},{h},{digest}\n" for p, label, tag, origin, w, h, digest in rows])
    plain = text.count(",") == (fields - 1) * len(rows) and text.count("\n") == len(rows)
    if plain and '"' not in text and "\r" not in text:
        return text.encode()
    return rows_only(MANIFEST_HEADER, rows)


_worker_config: BuildConfig | None = None
_spool: SpoolWriter | None = None


def init_worker(config: BuildConfig) -> None:
    """Per worker process, once: keep the configuration and open the spool; tune OpenCV and
    the allocator."""
    global _worker_config, _spool
    _worker_config = config
    _spool = SpoolWriter(config.spool) if config.spool is not None else None
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


def work(runs: list[FolderRun]) -> ChunkResult:
    """One chunk of `build`'s files in a worker process set up by ``init_worker``: labelled here,
    then made into rows; its text left in the spool."""
    config = _worker_config
    result = process_chunk(run_candidates(runs, config.labels, config.pattern, config.classes), config)
    if _spool is not None:
        result.csv_lines = [_spool.put(lines) for lines in result.csv_lines]
        result.manifest_lines = _spool.put(result.manifest_lines)
    return result


def work_with_config(function, chunk) -> ChunkResult:
    """``function(chunk, config)`` in a worker process set up by ``init_worker`` (build.run_chunks)."""
    return function(chunk, _worker_config)
