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
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet
from digitprep.classes import format_classes
from digitprep.csvio import build_json, csv_lines, encode_onehot_rows, onehot_header, output_paths, sidecar_path
from digitprep.decode import UnusableImage, decode_image
from digitprep.normalize import ImageTooLarge, normalize_stack
from digitprep.options import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, MNIST_BOX, NormalizeOptions
from digitprep.parallel import NO_FEEDBACK, Feedback, advance, parallel_map, worker_count
from digitprep.sources import IMAGE_SUFFIXES, Candidate, Census, census, find_candidates, plural

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
# A row's digit is small when its ink spans under half of MNIST's 20/28 box of the image side:
# under 7 pixels at 20x20 and under 3 at 8x8, where its strokes blur into a speck (issue 14: 500
# drawings whose digits came out 2-6 pixels tall at 20x20 read 54%, and 95% once centred). Half,
# not a quarter: 5-7 pixel digits are specks too, and a digit drawn to fill even half its page
# spans more. The warning goes out when the median row is small (more than half the rows).
SMALL_INK = MNIST_BOX / 2
HALF_INK = 128  # output pixels at least this bright are the ink that is measured (the resize's fringe is not)
SKIP_EXAMPLES = 2  # skipped files named on each collapsed line; the rest are in OUT.errors.csv
# (reason pattern, what the files have in common, what to do): the first that matches a reason
# gathers its files on one line. Other reasons gather by their text before any " (".
SKIP_KINDS = (
    (r"no label: folder .* spells a digit", "no label: folders named in words", "name the folders 0 to 9"),
    (
        r"no label: file name does not match --pattern",
        "no label: the name does not match --pattern",
        "--pattern is searched in each name without its extension; it needs a group (?P<label>...)",
    ),
    (
        r"no label: parent folder",
        "no label: the folder is not a digit",
        "with --labels folder each image sits in a folder named 0 to 9; --labels auto also reads names",
    ),
    (r"no label", "no label in the name or folder", "put them in 0/..9/ folders or give --pattern '(?P<label>\\d)'"),
    (r"label \d+ .*is not in the class set", "label not in --classes", "--classes is {classes}; widen it to keep them"),
    (
        re.escape(BLANK),
        "blank: no ink stands out from the paper",
        "empty pages, or ink too faint to tell from the paper",
    ),
    (
        r"empty file|not an image|truncated|image has no pixels|cannot decode",
        "not a readable image",
        "re-save them as PNG or JPEG, or remove them",
    ),
    (r"refused: ", "too large", "raise --max-pixels or --max-bytes if they are genuine"),
    (r"too large to deskew", "too large to deskew", "shrink them, or give --no-deskew"),
)


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
    class_rows: tuple[int, ...] = ()  # rows per class of the class set, in its order
    small_ink: int = 0  # rows whose ink spans under SMALL_INK of the side (at the largest size)


@dataclass
class SkipGroup:
    """Files skipped for one kind of reason: how many, the first SKIP_EXAMPLES, and what to do."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    hint: str | None = None
    reason: str = ""  # the first file's own reason, told when it is the only one


@dataclass
class BuildSummary:
    """What a build did: rows written and inputs skipped (``skips``: by kind of reason), rows per
    class, rows whose digit is small, and the CSVs written."""

    written: int = 0
    skipped: int = 0
    outputs: list[Path] = field(default_factory=list)
    skips: dict[str, SkipGroup] = field(default_factory=dict)
    class_rows: dict[int, int] = field(default_factory=dict)
    small_ink: int = 0


class NothingWritten(ValueError):
    """No row came out of the inputs (none found, or every one skipped): no output is written.
    ``summary`` says why."""

    def __init__(self, message: str, summary: BuildSummary):
        super().__init__(message)
        self.summary = summary


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
    class_rows = tuple(int((labels == label).sum()) for label in config.classes)
    largest = max(range(len(config.sizes)), key=lambda i: config.sizes[i])
    small = ink_extents(pixels[largest][written], config.sizes[largest]) < SMALL_INK * config.sizes[largest]
    return ChunkResult(text, csv_lines(rows), len(rows), errors, class_rows, int(small.sum()))


def ink_extents(rows: np.ndarray, size: int) -> np.ndarray:
    """(k,) int64: the longer side, in pixels, of the box around each (k, size*size) uint8 row's
    pixels of at least HALF_INK (0 for a row without any)."""
    ink = rows.reshape(len(rows), size, size) >= HALF_INK
    extents = []
    for along in (ink.any(axis=2), ink.any(axis=1)):  # the rows, then the columns, that hold ink
        first, last = along.argmax(axis=1), size - along[:, ::-1].argmax(axis=1)
        extents.append(np.where(along.any(axis=1), last - first, 0))
    return np.maximum(*extents).astype(np.int64)


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
        advance()  # counted once decoded (its batch is normalised next): progress moves file by file
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
        tuple(map(sum, zip(*(part.class_rows for part in parts)))),
        sum(part.small_ink for part in parts),
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
    result = rows_from_images(items, displays, config)
    advance(len(images))
    return result


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
    ``strict`` and any file skipped, nothing is written. No row at all raises NothingWritten (and
    nothing is written: an empty CSV would only fail later, in the trainer)."""
    csv_paths = output_paths(out, config.sizes)
    summary = BuildSummary(class_rows=dict.fromkeys(config.classes, 0))
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
                gather_skip(summary.skips, path, reason, config.classes)
            summary.written += result.written
            summary.skipped += len(result.errors)
            summary.small_ink += result.small_ink
            for label, rows in zip(config.classes, result.class_rows):
                summary.class_rows[label] += rows
        if strict and summary.skipped:
            return summary
        if not summary.written:
            few = {0: "no inputs", 1: "its one input skipped"}
            why = few.get(summary.skipped, f"all {summary.skipped} inputs skipped")
            raise NothingWritten(f"{out}: not written: no rows ({why})", summary)
        counts = {"rows": summary.written, "skipped": summary.skipped}
        for path, size in zip(csv_paths, config.sizes):
            outputs.write(sidecar_path(path, "build"), build_json({**record, **counts, "size": size}))
        outputs.commit()
    summary.outputs = csv_paths
    return summary


def skip_kind(reason: str) -> tuple[str, str | None]:
    """(what files skipped for ``reason`` have in common, what to do about it or None), by SKIP_KINDS."""
    for pattern, kind, hint in SKIP_KINDS:
        if re.match(pattern, reason):
            return kind, hint
    return reason.split(" (")[0], None


def gather_skip(skips: dict[str, SkipGroup], path: str, reason: str, classes: tuple[int, ...]) -> None:
    """Count a skipped file into its kind's group (``skips``, by kind), keeping the first examples."""
    kind, hint = skip_kind(reason)
    if kind not in skips:
        skips[kind] = SkipGroup(hint=hint and hint.format(classes=format_classes(classes)), reason=reason)
    group = skips[kind]
    group.count += 1
    if len(group.examples) < SKIP_EXAMPLES:
        group.examples.append(path)


def skip_lines(summary: BuildSummary) -> list[str]:
    """One line per kind of skip, the commonest first: ``skipped 50 files: no label in the name or
    folder (e.g. a.png, b.png); put them in 0/..9/ folders or ...``; a kind with a single file
    gives its own reason, ``skipped a.png: truncated or corrupt PNG data; ...``."""
    lines = []
    for kind, group in sorted(summary.skips.items(), key=lambda item: -item[1].count):
        hint = f"; {group.hint}" if group.hint else ""
        if group.count == 1:
            lines.append(f"skipped {group.examples[0]}: {group.reason}{hint}")
            continue
        examples = ("e.g. " if group.count > len(group.examples) else "") + ", ".join(group.examples)
        lines.append(f"skipped {plural(group.count, 'file')}: {kind} ({examples}){hint}")
    return lines


def data_warnings(summary: BuildSummary, config: BuildConfig) -> list[str]:
    """Warnings about the rows written: classes of the class set with no row or a single one, and,
    without --center, digits too small in their image (SMALL_INK)."""
    written, warnings = summary.written, []
    missing = [label for label, rows in summary.class_rows.items() if rows == 0]
    single = [label for label, rows in summary.class_rows.items() if rows == 1]
    if missing and written:
        warnings.append(
            f"warning: {these_classes(missing, 'has', 'have')} no image (--classes {format_classes(config.classes)}): "
            "a model trained on these rows never predicts " + ("it" if len(missing) == 1 else "them")
        )
    if single:
        warnings.append(
            f"warning: {these_classes(single, 'has', 'have')} a single image: too few to train and test on "
            "(a split keeps each on one side)"
        )
    if not config.options.center and written and summary.small_ink * 2 > written:
        warnings.append(
            f"warning: small digits: in {summary.small_ink} of {plural(written, 'row')} the ink spans under "
            f"{SMALL_INK:.0%} of the image side (MNIST's digits: {MNIST_BOX:.0%}); --center crops each digit "
            "and fits it into --box"
        )
    return warnings


def these_classes(labels: list[int], one: str, many: str) -> str:
    """``class 4 has`` or ``classes 4, 7 have``."""
    if len(labels) == 1:
        return f"class {labels[0]} {one}"
    return f"classes {', '.join(map(str, labels))} {many}"


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
    on_found: Callable[[Census], None] = lambda found: None,
) -> BuildSummary:
    """Build one-hot CSVs from labelled images. What was found is told to ``on_found`` before any
    file is read; bad files are reported to ``feedback`` and listed in OUT.errors.csv; with
    ``strict`` nothing is written if any file is skipped. No image file, or no usable one, raises
    NothingWritten; a missing source or a bad pattern, ValueError; an output that cannot be
    written, OutputError."""
    candidates = find_candidates(sources, label_mode, pattern, config.classes, origin)
    if not candidates:
        where = ", ".join(Path(os.path.relpath(source)).as_posix() for source in sources)
        looked_for = ", ".join(IMAGE_SUFFIXES)
        raise NothingWritten(f"{where}: no image files (looked for {looked_for}); nothing written", BuildSummary())
    on_found(census(candidates, config.classes, labels_known=not config.labelrow))
    feedback.on_start(len(candidates))
    size = chunk_size(len(candidates), jobs)
    tasks = [(candidates[start : start + size], config) for start in range(0, len(candidates), size)]
    record = build_record(sources, config, "pattern" if pattern else label_mode, pattern)
    with parallel_map(process_files, tasks, jobs, feedback.on_progress) as results:
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
    with parallel_map(image_rows, tasks, jobs, feedback.on_progress) as results:
        return write_outputs(results, out, config, record, strict, feedback)
