"""`digitprep render`: labelled digit PNGs rendered from every usable font, with seeded variations.

Work is split per font file (checking) and per usable face (rendering and writing its PNGs) over
worker processes. Each image's variation is drawn from a generator seeded with the run's seed, the
font's bytes and the image's (digit, tag, variant), and its number from the face's rank among the
used fonts, so the same seed and fonts give the same files byte for byte whatever ``jobs`` is.
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import re
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digitprep.csvio import csv_text, write_atomic
from digitprep.fonts import DIGITS, FontFace, digit_masks, find_font_files, list_faces, usable_problem
from digitprep.options import RenderConfig  # defined without NumPy: the command line reads its defaults
from digitprep.pngtree import encode_png, labelled_png_name
from digitprep.render import TAGS, Variation, render_digit

MANIFEST_NAME = "render.manifest.csv"
FONTS_NAME = "render.fonts.csv"
MANIFEST_HEADER = ["file", "label", "tag", "font", "face", "family", "style", "scale", "stroke", "rotation", "dx", "dy"]
FONTS_HEADER = ["font", "face", "family", "style", "status", "reason"]
RENDERED_NAME = re.compile(r"^\d+_\d+_\d+\.png$")


@dataclass(frozen=True)
class FaceCheck:
    """The verdict on one face (or on a file that holds no usable face)."""

    path: str
    face: FontFace | None
    problem: str | None

    @property
    def label(self) -> str:
        return self.face.label if self.face else self.path


@dataclass
class RenderSummary:
    used: list[FontFace] = field(default_factory=list)
    skipped: list[FaceCheck] = field(default_factory=list)
    written: int = 0


def sample_variation(config: RenderConfig, face: FontFace, digit: int, tag: str, variant: int) -> Variation:
    """The variation of one image, drawn from its own seeded generator and rounded to the four
    decimals the manifest records, so a manifest row reproduces its image exactly."""
    rng = np.random.default_rng([config.seed, face.content_id, digit, TAGS.index(tag), variant])
    u = rng.random(5)

    def between(low: float, high: float, share: float) -> float:
        return round(low + (high - low) * float(share), 4)

    return Variation(
        scale=between(*config.scale, u[0]),
        stroke=between(*config.stroke, u[1]),
        rotation=between(-config.rotation, config.rotation, u[2]),
        dx=between(-config.jitter, config.jitter, u[3]),
        dy=between(-config.jitter, config.jitter, u[4]),
    )


def check_file(path: str) -> list[FaceCheck]:
    """Every face of a font file with the reason it cannot be used (None when it can)."""
    faces, problem = list_faces(Path(path))
    if problem:
        return [FaceCheck(path, None, problem)]
    return [FaceCheck(path, face, usable_problem(face)) for face in faces]


def drop_duplicates(checks: list[FaceCheck]) -> list[FaceCheck]:
    """The same family and style found again (a system copy of a font matplotlib ships) is
    skipped in favour of the first usable one."""
    first: dict[tuple[str, str], FontFace] = {}
    result = []
    for check in checks:
        if check.face is not None and check.problem is None:
            key = (check.face.family.casefold(), check.face.style.casefold())
            if key in first:
                check = FaceCheck(check.path, check.face, f"duplicate of {first[key].label}")
            else:
                first[key] = check.face
        result.append(check)
    return result


def render_face(face: FontFace, rank: int, config: RenderConfig, out_dir: Path) -> list[tuple]:
    """Render and write every image of one face; returns its manifest rows. Image numbers count
    within each label and tag in font order: face ``rank`` owns ``rank * variants`` onwards."""
    masks = digit_masks(face)
    rows = []
    for digit, mask in zip(range(len(DIGITS)), masks):
        for tag in config.tags:
            for variant in range(config.variants):
                variation = sample_variation(config, face, digit, tag, variant)
                name = labelled_png_name(digit, rank * config.variants + variant, tag, "name")
                write_atomic(out_dir / name, encode_png(render_digit(mask, variation, tag, config.canvas)))
                rows.append((name, digit, tag, face.path, face.index, face.family, face.style, *astuple(variation)))
    return rows


def _render_task(task: tuple[FontFace, int, RenderConfig, Path]) -> list[tuple]:
    return render_face(*task)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads on tiny images only contend


@contextlib.contextmanager
def font_pool(jobs: int):
    """``jobs`` worker processes from a forkserver that has imported this module (a plain fork of a
    process running OpenCV threads can deadlock), or None to work in this process."""
    if jobs <= 1:
        yield None
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_init_worker) as pool:
        yield pool


def _map(pool, function, items):
    """Results in the order of ``items``, on the pool or here."""
    if pool is None:
        return map(function, items)
    return pool.imap(function, items)


def render_font_digits(
    locations: list[Path],
    out_dir: Path,
    config: RenderConfig,
    jobs: int = 0,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> RenderSummary:
    """Find fonts under ``locations``, keep the usable ones and write their digits to ``out_dir``
    with ``render.manifest.csv`` (each file's font and variation) and ``render.fonts.csv`` (each
    font found: used or skipped, and why). Files an earlier run listed and this run did not
    write again are removed, so the folder holds exactly this run's images."""
    out_dir = Path(out_dir)
    files = [str(path) for path in find_font_files(locations)]
    jobs = jobs or os.cpu_count() or 1
    summary = RenderSummary()
    with font_pool(min(jobs, max(len(files), 1))) as pool:
        checks = drop_duplicates([check for checks in _map(pool, check_file, files) for check in checks])
        summary.used = [check.face for check in checks if check.problem is None]
        summary.skipped = [check for check in checks if check.problem is not None]
        on_start(len(summary.used) * len(DIGITS) * len(config.tags) * config.variants)
        tasks = [(face, rank, config, out_dir) for rank, face in enumerate(summary.used)]
        out_dir.mkdir(parents=True, exist_ok=True)
        previous = rendered_files(out_dir)
        manifest = []
        for rows in _map(pool, _render_task, tasks):
            manifest.extend(rows)
            on_progress(len(rows))
    write_atomic(out_dir / MANIFEST_NAME, csv_text(MANIFEST_HEADER, manifest))
    write_atomic(out_dir / FONTS_NAME, csv_text(FONTS_HEADER, [font_row(check) for check in checks]))
    for stale in previous - {row[0] for row in manifest}:
        (out_dir / stale).unlink(missing_ok=True)
    summary.written = len(manifest)
    return summary


def font_row(check: FaceCheck) -> tuple:
    """One line of render.fonts.csv."""
    face = check.face
    if face is None:
        return (check.path, "", "", "", "skipped", check.problem)
    status = "used" if check.problem is None else "skipped"
    return (face.path, face.index, face.family, face.style, status, check.problem or "")


def rendered_files(out_dir: Path) -> set[str]:
    """Image names an earlier run's manifest lists (only names of the form it writes)."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return set()
    with open(manifest, newline="", encoding="utf-8") as handle:
        names = {row.get("file", "") for row in csv.DictReader(handle)}
    return {name for name in names if RENDERED_NAME.match(name)}
