"""`digitprep slice`: pages of digits cut into labelled PNGs, each label from the digit's place.

A layout (a ``Cutter``) turns one page into cells: a regular grid of ROWS x COLS equal cells
(``grid_cutter``; OpenCV's ``digits.png``: 50 x 100 cells of 20 x 20 pixels), free rows of digits
found from the ink (``textlines.rows_cutter``) or a photo of a printed form (``forms.form_cutter``).
Every layout's cells go the same way, into ``DIR/<label>/<page stem>_<row>_<col>.png``, the layout
`build --labels folder` reads. Labels follow position: ``rows=0123456789`` gives row i the character
``(i // repeat) % 10`` of the string (``cols=`` the same along a row). Cells without ink (the paper
test `build` uses) are not written but listed in ``DIR/slice.skipped.csv``. A page that cannot be
read or cut is reported and the others are still cut. A page's cuts replace the ones an earlier run
made of a page of that name and leave the rest, so pages can be cut a batch at a time into one
folder; everything goes into one staging folder swapped in at the end, so an error or Ctrl-C leaves
the old tree as it was.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitprep.atomic import OutputSet, write_staged
from digitprep.decode import UnusableImage, decode_grey
from digitprep.paper import paper_and_ink
from digitprep.pngtree import encode_png
from digitprep.sheet import contact_sheet, fitted

SKIPPED_NAME = "slice.skipped.csv"  # the empty cells, beside the label folders
CUT_NAME = re.compile(r"^(?P<stem>.+)_\d+_\d+\.png$")  # <page stem>_<row>_<col>.png
GRID = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
LABELS = re.compile(r"^(rows|cols)=(.+)$")


@dataclass(frozen=True)
class Grid:
    """How a page is cut and labelled: ``rows`` x ``cols`` cells; the label characters run along
    ``axis`` ("rows": down the rows, "cols": along the columns), each held by ``repeat`` of them."""

    rows: int
    cols: int
    axis: str
    labels: str
    repeat: int = 1

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"a grid of {self.rows}x{self.cols} cells has no cell")
        if self.axis not in ("rows", "cols"):
            raise ValueError(f"labels run along rows or cols, not {self.axis!r}")
        if not self.labels or not self.labels.isdigit() or not self.labels.isascii():
            raise ValueError(f"labels {self.labels!r} must be digits 0-9 (one per label step)")
        if self.repeat < 1:
            raise ValueError(f"--repeat {self.repeat} must be at least 1")

    def cell_labels(self) -> np.ndarray:
        """(rows, cols) int64: each cell's label, from its row (or column) number."""
        steps = np.arange(self.rows if self.axis == "rows" else self.cols) // self.repeat
        along = np.array([int(self.labels[k]) for k in (steps % len(self.labels)).tolist()], np.int64)
        if self.axis == "rows":
            return np.repeat(along[:, None], self.cols, axis=1)
        return np.repeat(along[None, :], self.rows, axis=0)


def parse_grid(text: str) -> tuple[int, int]:
    """ "50x100" -> (50, 100); ValueError for anything else."""
    match = GRID.match(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"{text!r} is not ROWSxCOLS (e.g. 50x100)")
    return int(match[1]), int(match[2])


def parse_labels(text: str) -> tuple[str, str]:
    """ "rows=0123456789" -> ("rows", "0123456789"); ValueError for anything else."""
    match = LABELS.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not rows=DIGITS or cols=DIGITS (e.g. rows=0123456789)")
    return match[1], match[2]


def cut_cells(page: np.ndarray, rows: int, cols: int, name: str) -> np.ndarray:
    """(H, W) uint8 page -> (rows, cols, H / rows, W / cols) uint8 cells, the page's own pixels.
    ValueError naming ``name`` when a side is not a whole number of cells."""
    height, width = page.shape
    if width % cols:
        raise ValueError(f"{name}: {width} px wide is not {cols} columns of whole pixels; check --grid")
    if height % rows:
        raise ValueError(f"{name}: {height} px high is not {rows} rows of whole pixels; check --grid")
    h, w = height // rows, width // cols
    return page.reshape(rows, h, cols, w).transpose(0, 2, 1, 3)


def blank_cells(cells: np.ndarray) -> np.ndarray:
    """(rows, cols, h, w) uint8 -> (rows, cols) bool: the cells where no ink stands out from the
    paper, judged each on its own as `build` judges a file (``paper.paper_and_ink``)."""
    rows, cols, h, w = cells.shape
    blank = paper_and_ink(np.ascontiguousarray(cells.reshape(rows * cols, h, w)))[1]
    return blank.reshape(rows, cols)


@dataclass
class PageCut:
    """One page cut by a layout: the cells to write as (row, col, label, uint8 (h, w) image) and
    the empty places (row, col), listed in slice.skipped.csv."""

    cells: list[tuple[int, int, int, np.ndarray]]
    empty: list[tuple[int, int]] = field(default_factory=list)


# A layout: (page (H, W) uint8, the page's name for messages) -> PageCut; ValueError (one line
# naming the page) when the page does not fit the layout.
Cutter = Callable[[np.ndarray, str], PageCut]


def labelled_cells(cells: np.ndarray, labels: np.ndarray, blank: np.ndarray | None = None) -> PageCut:
    """(rows, cols, h, w) uint8 cells and their (rows, cols) labels -> the PageCut of a page of
    cells: those with ink to write, those without (``blank_cells``, or the (rows, cols) bool
    ``blank`` given) listed as empty."""
    blank = blank_cells(cells) if blank is None else blank
    return PageCut(
        [(int(r), int(c), int(labels[r, c]), cells[r, c]) for r, c in zip(*np.nonzero(~blank))],
        [(int(r), int(c)) for r, c in zip(*np.nonzero(blank))],
    )


def grid_cutter(grid: Grid) -> Cutter:
    """The regular-grid layout: ``grid.rows`` x ``grid.cols`` equal cells, labelled by position;
    cells without ink are empty."""
    labels = grid.cell_labels()
    return lambda page, name: labelled_cells(cut_cells(page, grid.rows, grid.cols, name), labels)


@dataclass
class SliceSummary:
    """What a run did: PNGs written, the empty cells (page, row, col), the pages that failed (one
    line each), and the cells written with their labels (for a contact sheet)."""

    pages: int = 0
    written: int = 0
    kept: int = 0  # PNGs of other pages already in the folder, left as they were
    replaced: int = 0  # PNGs an earlier run cut from pages of this run's names, now gone
    empty: list[tuple[str, int, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cells: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def read_page(path: Path) -> np.ndarray:
    """A page decoded upright and grey, (H, W) uint8; ValueError naming it when it cannot be read."""
    try:
        return decode_grey(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnusableImage as exc:
        raise ValueError(f"{path}: {exc}") from None


def skipped_csv(earlier: list[list[str]], empty: list[tuple[str, int, int]]) -> bytes:
    """slice.skipped.csv: the rows kept from an earlier run, then this run's empty places."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["page", "row", "col", "reason"])
    writer.writerows(earlier)
    writer.writerows([page, row, col, "no ink"] for page, row, col in empty)
    return buffer.getvalue().encode()


def carry_over(out_dir: Path, staging: Path, replaced: set[str]) -> tuple[int, int, list[list[str]]]:
    """Bring into ``staging`` what ``out_dir`` already holds that this run does not replace: every
    entry of its label folders (0, 1, ... 9) but the cuts of the pages in ``replaced`` (names
    ``<stem>_<row>_<col>.png``), hard-linked where the file system allows; and the rows of its
    slice.skipped.csv about other pages. Returns (PNGs kept, earlier cuts of these pages left out,
    skipped rows kept)."""
    kept, dropped, rows = 0, 0, []
    if not out_dir.is_dir():
        return kept, dropped, rows
    for folder in sorted(out_dir.iterdir()):
        if not (folder.name.isdigit() and folder.is_dir()):
            continue
        for entry in sorted(folder.iterdir()):
            match = CUT_NAME.match(entry.name)
            if match and match["stem"] in replaced:
                dropped += 1
                continue
            target = staging / folder.name / entry.name
            target.parent.mkdir(exist_ok=True)
            if entry.is_dir():
                shutil.copytree(entry, target, symlinks=True)
                continue
            try:
                os.link(entry, target, follow_symlinks=False)
            except OSError:  # another file system, or one without links
                shutil.copy2(entry, target, follow_symlinks=False)
            kept += entry.suffix.lower() == ".png"
    try:
        with open(out_dir / SKIPPED_NAME, newline="", encoding="utf-8") as handle:
            old = list(csv.reader(handle))[1:]
    except (OSError, UnicodeDecodeError, csv.Error):  # none yet, or not ours: this run's list stands
        old = []
    rows = [row for row in old if len(row) == 4 and Path(row[0]).stem not in replaced]
    return kept, dropped, rows


def slice_pages(pages: list[Path], out_dir: Path, cut: Cutter, keep_cells: bool = False) -> SliceSummary:
    """Cut every page by the layout ``cut`` into ``out_dir/<label>/<stem>_<row>_<col>.png`` (rows
    and columns from 0) and list the empty places in ``out_dir/slice.skipped.csv``. A page's cuts
    replace those an earlier run made of a page of its name; everything else in ``out_dir`` stays
    (counted in ``kept``), so pages can be cut a batch at a time into one folder. A page that cannot
    be read or cut is a line in ``failed`` and the others are still cut; nothing is written when no
    page could be. With ``keep_cells`` the cells written and their labels are kept in the summary
    (for ``cut_sheet``). ValueError when two pages share a stem (their cells would share names)."""
    pages, out_dir = [Path(p) for p in pages], Path(out_dir)
    stems: dict[str, Path] = {}
    for page in pages:
        if page.stem in stems:
            raise ValueError(f"{page}: has the same name as {stems[page.stem]}; their cells would collide")
        stems[page.stem] = page
    summary = SliceSummary(pages=len(pages))
    with OutputSet() as outputs:
        # Every label folder is staged whole (the old cuts of this run's pages left out) and replaces
        # its namesake, so a label a page no longer has loses that page's old cuts too.
        staging = outputs.folder(out_dir, replaces=lambda entry: entry.name.isdigit() and entry.is_dir())
        done: set[str] = set()
        for page in pages:
            try:
                result = cut(read_page(page), str(page))
            except ValueError as exc:
                summary.failed.append(str(exc))
                continue
            done.add(page.stem)
            summary.empty.extend((str(page), row, col) for row, col in result.empty)
            for row, col, label, image in result.cells:
                write_staged(staging, out_dir, f"{label}/{page.stem}_{row}_{col}.png", encode_png(image))
                if keep_cells:
                    summary.cells.append(image)
                    summary.labels.append(label)
                summary.written += 1
        if done:
            summary.kept, summary.replaced, earlier = carry_over(out_dir, staging, done)
            write_staged(staging, out_dir, SKIPPED_NAME, skipped_csv(earlier, summary.empty))
            outputs.commit()
    return summary


def cut_sheet(summary: SliceSummary, per_class: int = 12) -> np.ndarray:
    """A contact sheet (uint8 (H, W)) of the cells written, one row per label, the first ``per_class``
    of each; cells that are not square are drawn centred in a square of their longer side."""
    side = max(max(cell.shape) for cell in summary.cells)
    pixels = np.stack(
        [(cell if cell.shape == (side, side) else fitted(cell, side)).reshape(-1) for cell in summary.cells]
    )
    labels = np.array(summary.labels, np.int64)
    shown = min(per_class, int(np.bincount(labels).max()))  # no columns no label could fill
    return contact_sheet(pixels, labels, tuple(sorted(set(summary.labels))), shown)
