"""Finding labelled images: walk the sources, derive each file's label and tag, in a fixed order."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".pnm"}

# The original project's names: <label>_<tag>_<anything>.png, tag = drawing size (20 or 8).
ORIGINAL_NAME = re.compile(r"^(?P<label>\d+)_(?P<tag>\d+)_")

LABEL_MODES = ("auto", "folder", "filename", "labelrow")


@dataclass(frozen=True)
class Candidate:
    """One file found under a source: where it is, and its label if known before decoding."""

    path: Path
    display: str  # the path shown in messages and the manifest: relative to the working directory
    origin: str
    label: int | None = None
    tag: str = ""
    problem: str | None = None  # why the file is unusable before it is even read


def natural_key(text: str) -> list:
    """Sort key ordering 'img2' before 'img10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def display_path(path: Path) -> str:
    """Path relative to the working directory (POSIX separators) so outputs do not embed $HOME."""
    return Path(os.path.relpath(path)).as_posix()


def _walk_images(root: Path):
    """Yield (path, problem) for image-named entries under root, in natural order."""
    if not root.is_dir():
        yield root, None
        return
    found: list[tuple[Path, str | None]] = []
    for folder, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                dirnames.remove(name)
                found.append((Path(folder, name), "is a directory, not an image"))
        for name in filenames:
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(folder, name)
            if path.is_symlink() and not path.exists():
                found.append((path, "dangling symbolic link"))
            else:
                found.append((path, None))
    found.sort(key=lambda item: natural_key(item[0].relative_to(root).as_posix()))
    yield from found


def label_from_folder(path: Path) -> int | None:
    name = path.parent.name
    return int(name) if name.isdigit() else None


def label_and_tag_from_name(path: Path, pattern: re.Pattern) -> tuple[int | None, str]:
    match = pattern.search(path.stem)
    if not match or not match.groupdict().get("label", "").isdigit():
        return None, ""
    return int(match.group("label")), match.groupdict().get("tag") or ""


def label_file(path: Path, mode: str, pattern: re.Pattern | None) -> tuple[int | None, str, str | None]:
    """(label, tag, problem) for one file under a labelling mode; labelrow files wait for decoding."""
    if mode == "labelrow":
        return None, "", None
    if pattern is not None:
        label, tag = label_and_tag_from_name(path, pattern)
        return label, tag, None if label is not None else "no label: file name does not match --pattern"
    if mode in ("folder", "auto"):
        label = label_from_folder(path)
        if label is not None:
            return label, "", None
        if mode == "folder":
            return None, "", f"no label: parent folder {path.parent.name!r} is not a digit"
    label, tag = label_and_tag_from_name(path, ORIGINAL_NAME)
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
        source_origin = origin or (source.resolve().name if source.is_dir() else source.resolve().parent.name)
        for path, problem in _walk_images(source):
            display = display_path(path)
            if problem:
                candidates.append(Candidate(path, display, source_origin, problem=problem))
                continue
            label, tag, problem = label_file(path, mode, compiled)
            if label is not None and label not in classes:
                problem = f"label {label} is not in the class set"
            candidates.append(Candidate(path, display, source_origin, label, tag, problem))
    return candidates
