"""Finding labelled images: walk the sources, derive each file's label and tag, in a fixed order."""

from __future__ import annotations

import os
import re
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


def natural_key(text: str) -> list:
    """Sort key ordering 'img2' before 'img10'."""
    parts = _DIGIT_RUNS.split(text)
    parts[1::2] = map(int, parts[1::2])  # the split alternates text and digit runs
    return parts


def walk_images(folder: str, display: str):
    """Yield (path, display path, parent folder name, problem) for image-named entries under
    ``folder``, each folder's entries in natural order. Works on strings: this runs once per file
    of data sets with tens of thousands of files."""
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: natural_key(entry.name))
    parent = os.path.basename(folder)
    prefix = f"{display}/" if display != "." else ""
    for entry in entries:
        name = entry.name
        is_image = name.lower().endswith(IMAGE_SUFFIXES)
        if entry.is_dir(follow_symlinks=False):
            if is_image:
                yield entry.path, prefix + name, parent, "is a directory, not an image"
            else:
                yield from walk_images(entry.path, prefix + name)
        elif is_image:
            dangling = entry.is_symlink() and not os.path.exists(entry.path)
            yield entry.path, prefix + name, parent, "dangling symbolic link" if dangling else None


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
    compiled = re.compile(pattern) if pattern else None
    if compiled is not None and "label" not in compiled.groupindex:
        raise ValueError("--pattern needs a named group 'label', e.g. (?P<label>\\d)_(?P<tag>\\d+)")
    candidates: list[Candidate] = []
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        resolved = source.resolve()
        source_origin = origin or (resolved.name if source.is_dir() else resolved.parent.name)
        display = Path(os.path.relpath(source)).as_posix()
        if source.is_dir():
            found = walk_images(str(source), display)
        else:
            found = [(str(source), display, resolved.parent.name, None)]
        by_folder: dict[str, tuple[int | None, str, str | None]] = {}
        for path, shown, parent, problem in found:
            if problem:
                candidates.append(Candidate(path, shown, source_origin, problem=problem))
                continue
            labelled = by_folder.get(parent)
            if labelled is None:
                labelled = label_file(path, parent, mode, compiled)
                if labelled[0] is not None and labelled[0] not in classes:
                    labelled = (labelled[0], labelled[1], f"label {labelled[0]} is not in the class set")
                if compiled is None and (mode == "folder" or (mode == "auto" and parent.isdigit())):
                    by_folder[parent] = labelled  # the folder alone decides: work it out once per folder
            candidates.append(Candidate(path, shown, source_origin, *labelled))
    return candidates
