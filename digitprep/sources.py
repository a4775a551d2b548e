"""Finding labelled images: walk the sources, derive each file's label and tag, in a fixed order."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".pnm")

# The original project's names: <label>_<tag>_<anything>.png, tag = drawing size (20 or 8).
ORIGINAL_NAME = re.compile(r"^(?P<label>\d+)_(?P<tag>\d+)_")

LABEL_MODES = ("auto", "folder", "filename", "name", "labelrow")  # name: short for filename


class Candidate(NamedTuple):
    """One file found under a source: where it is, and its label if known before decoding.
    A named tuple: tens of thousands are made and sent to worker processes per run."""

    path: str
    display: str  # the path shown in messages and the manifest: relative to the working directory
    origin: str
    label: int | None = None
    tag: str = ""
    problem: str | None = None  # why the file is unusable before it is even read


_DIGIT_RUNS = re.compile(r"(\d+)")
# Names that are numbers without leading zeros, all with one extension ('7.png', '12.png'), one per
# line: for such a folder natural order is order by length, then by text (two sorts in C, no key
# per name), and its extension alone tells whether its files are images.
_PLAIN_NUMBER_LINES = re.compile(r"(?:[1-9]\d*|0)\.(\w+)\n(?:(?:[1-9]\d*|0)\.\1\n)*")


def natural_key(text: str) -> list:
    """Sort key ordering 'img2' before 'img10'."""
    parts = _DIGIT_RUNS.split(text)
    parts[1::2] = map(int, parts[1::2])  # the split alternates text and digit runs
    return parts


def plain_extension(names: list[str]) -> str | None:
    """The extension of ``names`` when every one is a number without leading zeros followed by
    that one extension, else None. One regular expression over all the names: folders hold tens
    of thousands of them."""
    lines = "\n".join(names) + "\n"
    if not names or lines.count("\n") != len(names):  # a name with a line break in it
        return None
    match = _PLAIN_NUMBER_LINES.fullmatch(lines)
    return match.group(1) if match else None


def natural_sorted(names: list[str], plain: bool | None = None) -> list[str]:
    """``names`` in natural order; names equal as numbers ('7.png', '07.png') in text order.
    ``plain``: whether ``plain_extension(names)`` finds one, when the caller knows already."""
    ordered = sorted(names)
    if plain is None:
        plain = plain_extension(ordered) is not None
    if plain:
        ordered.sort(key=len)
    else:
        ordered.sort(key=natural_key)
    return ordered


class Listing(NamedTuple):
    """Consecutive image-named entries of one folder, in natural order."""

    base: str  # the folder's path with a trailing separator: base + name is the file's path
    display: str  # the folder's display path with a trailing "/", or "" for "."
    parent: str  # the folder's own name
    names: list[str]
    problems: list[str | None]  # per name, why it cannot be an image file (a directory...)


def walk_images(folder: str, display: str) -> Iterator[Listing]:
    """Image-named entries under ``folder`` as Listings, each folder's entries in natural order
    with subfolders walked where they fall in it. Works on whole folders, not on each file: data
    sets have tens of thousands of files."""
    with os.scandir(folder) as scan:
        found = list(scan)
    every_name = [entry.name for entry in found]
    base = os.path.join(folder, "")
    prefix = f"{display}/" if display != "." else ""
    parent = os.path.basename(folder)
    extension = plain_extension(every_name)
    ordered = natural_sorted(every_name, extension is not None)
    special = {entry.name for entry in found if not entry.is_file(follow_symlinks=False)}
    if not special:  # the usual folder: files only, so its images are all there is to it
        if extension is not None:  # numbered files of one extension: all images or none
            images = ordered if f".{extension}".lower().endswith(IMAGE_SUFFIXES) else []
        else:
            images = [name for name in ordered if name.lower().endswith(IMAGE_SUFFIXES)]
        if images:
            yield Listing(base, prefix, parent, images, [None] * len(images))
        return
    entries = {entry.name: entry for entry in found}
    names: list[str] = []
    problems: list[str | None] = []
    for name in ordered:
        entry = entries[name]
        is_image = name.lower().endswith(IMAGE_SUFFIXES)
        if entry.is_dir(follow_symlinks=False):
            if is_image:
                names.append(name)
                problems.append("is a directory, not an image")
                continue
            if names:
                yield Listing(base, prefix, parent, names, problems)
                names, problems = [], []
            yield from walk_images(entry.path, prefix + name)
        elif is_image:
            names.append(name)
            dangling = name in special and not os.path.exists(entry.path)
            problems.append("dangling symbolic link" if dangling else None)
    if names:
        yield Listing(base, prefix, parent, names, problems)


def label_and_tag_from_name(name: str, pattern: re.Pattern) -> tuple[int | None, str]:
    """Label and tag from a file name (without extension) matched by ``pattern``."""
    match = pattern.search(os.path.splitext(name)[0])
    if not match or not (match.group("label") or "").isdigit():
        return None, ""
    return int(match.group("label")), match.groupdict().get("tag") or ""


def label_file(path: str, parent: str, mode: str, pattern: re.Pattern | None) -> tuple[int | None, str, str | None]:
    """(label, tag, problem) for one file under a labelling mode; labelrow files wait for decoding."""
    if mode == "labelrow":
        return None, "", None
    name = os.path.basename(path)
    if pattern is not None:
        label, tag = label_and_tag_from_name(name, pattern)
        return label, tag, None if label is not None else "no label: file name does not match --pattern"
    if mode in ("folder", "auto"):
        if parent.isdigit():
            return int(parent), "", None
        if mode == "folder":
            return None, "", f"no label: parent folder {parent!r} is not a digit"
    label, tag = label_and_tag_from_name(name, ORIGINAL_NAME)
    if label is None:
        return None, "", "no label: neither a digit folder nor a <label>_<tag>_<n> file name"
    return label, tag, None


def find_candidates(
    sources: list[Path],
    mode: str = "auto",
    pattern: str | None = None,
    classes: tuple[int, ...] = tuple(range(10)),
    origin: str | None = None,
) -> list[Candidate]:
    """Every image under the sources, labelled, in a deterministic order (sources as given, then
    natural path order). Files that cannot be used carry a ``problem`` instead of being dropped."""
    return [candidate for found in iter_candidates(sources, mode, pattern, classes, origin) for candidate in found]


def iter_candidates(
    sources: list[Path],
    mode: str = "auto",
    pattern: str | None = None,
    classes: tuple[int, ...] = tuple(range(10)),
    origin: str | None = None,
) -> Iterator[list[Candidate]]:
    """``find_candidates``' files a folder's listing at a time, found as they are taken, so work on
    the first can start while the rest are walked. The sources and the pattern are checked here,
    before any folder is walked."""
    compiled = label_pattern(pattern)
    runs = walk_sources(sources, origin)
    return (labelled_candidates(listing, run_origin, mode, compiled, classes) for listing, run_origin in runs)


class FolderRun(NamedTuple):
    """Consecutive image files of one folder (a Listing, or a slice of one) and their origin: how
    `build` sends files to its workers, which label them (``run_candidates``). A few names and
    two paths per folder instead of two paths per file."""

    listing: Listing
    origin: str

    @property
    def size(self) -> int:
        """The number of files in the run."""
        return len(self.listing.names)

    def part(self, start: int, stop: int) -> FolderRun:
        """Files ``start`` to ``stop`` of the run."""
        names, problems = self.listing.names, self.listing.problems
        if start == 0 and stop >= len(names):
            return self
        return FolderRun(self.listing._replace(names=names[start:stop], problems=problems[start:stop]), self.origin)


def label_pattern(pattern: str | None) -> re.Pattern | None:
    """``--pattern`` compiled, or a ValueError naming what it lacks."""
    compiled = re.compile(pattern) if pattern else None
    if compiled is not None and "label" not in compiled.groupindex:
        raise ValueError("--pattern needs a named group 'label', e.g. (?P<label>\\d)_(?P<tag>\\d+)")
    return compiled


def walk_sources(sources: list[Path], origin: str | None = None) -> Iterator[FolderRun]:
    """Every image file under the sources as FolderRuns in the order of ``find_candidates``,
    found as they are taken. The sources are checked here, before any folder is walked."""
    sources = [Path(source) for source in sources]
    for source in sources:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
    return _walk_sources(sources, origin)


def _walk_sources(sources: list[Path], origin: str | None) -> Iterator[FolderRun]:
    for source in sources:
        resolved = source.resolve()
        source_origin = origin or (resolved.name if source.is_dir() else resolved.parent.name)
        display = Path(os.path.relpath(source)).as_posix()
        if source.is_dir():
            listings = walk_images(str(source), display)
        else:
            folder, _, name = str(source).rpartition(os.sep)
            shown_folder = display[: len(display) - len(name)]
            listings = [Listing(folder + os.sep if folder else "", shown_folder, resolved.parent.name, [name], [None])]
        for listing in listings:
            yield FolderRun(listing, source_origin)


def run_candidates(runs: list[FolderRun], mode: str, pattern: str | None, classes: tuple[int, ...]) -> list[Candidate]:
    """The labelled Candidates of FolderRuns, in order."""
    compiled = label_pattern(pattern)  # re caches the compiled pattern
    return [
        candidate for run in runs for candidate in labelled_candidates(run.listing, run.origin, mode, compiled, classes)
    ]


def labelled_candidates(
    listing: Listing, origin: str, mode: str, pattern: re.Pattern | None, classes: tuple[int, ...]
) -> list[Candidate]:
    """The Candidates of one listing; a folder that decides the label alone is labelled once."""
    base, shown, parent = listing.base, listing.display, listing.parent
    if pattern is None and (mode == "folder" or (mode == "auto" and parent.isdigit())):
        label, tag, problem = label_file(base, parent, mode, None)
        if label is not None and label not in classes:
            problem = f"label {label} is not in the class set"
        make = tuple.__new__  # Candidate's own __new__, without its keyword handling: once per file
        return [
            make(Candidate, (base + name, shown + name, origin, None, "", unusable))
            if unusable
            else make(Candidate, (base + name, shown + name, origin, label, tag, problem))
            for name, unusable in zip(listing.names, listing.problems)
        ]
    candidates = []
    for name, unusable in zip(listing.names, listing.problems):
        if unusable:
            candidates.append(Candidate(base + name, shown + name, origin, problem=unusable))
            continue
        label, tag, problem = label_file(base + name, parent, mode, pattern)
        if label is not None and label not in classes:
            problem = f"label {label} is not in the class set"
        candidates.append(Candidate(base + name, shown + name, origin, label, tag, problem))
    return candidates
