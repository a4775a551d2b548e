"""Finding labelled images: walk the sources, derive each file's label and tag, in a fixed order.

Folders are walked like torchvision's ImageFolder with ``followlinks``: symbolic links to folders
are followed, but a folder reached a second time (a link loop, or two links to one folder) is
reported instead of walked again. The walk keeps its own stack, so nesting depth has no limit.
Names that are not UTF-8 are kept as the file system gives them (``surrogateescape``) and shown
with backslash escapes in messages and manifests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".pnm")

# The original project's names: <label>_<tag>_<anything>.png, tag = drawing size (20 or 8).
ORIGINAL_NAME = re.compile(r"^(?P<label>\d+)_(?P<tag>\d+)_")

LABEL_MODES = ("auto", "folder", "filename", "name", "labelrow")  # name: short for filename
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Candidate(NamedTuple):
    """One file found under a source: where it is, and its label if known before decoding."""

    path: str
    display: str  # the path shown in messages and the manifest: relative to the working directory
    origin: str
    label: int | None = None
    tag: str = ""
    problem: str | None = None  # why the file is unusable before it is even read


_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_key(text: str) -> list:
    """Sort key ordering 'img2' before 'img10' (and '07' before '7', as text decides ties)."""
    parts: list = _DIGIT_RUNS.split(text)
    parts[1::2] = map(int, parts[1::2])  # the split alternates text and digit runs
    return [parts, text]


def shown(text: str) -> str:
    """``text`` printable and encodable as UTF-8: bytes that are not UTF-8 as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def walk_images(folder: str, display: str) -> Iterator[tuple[str, str, str, str | None]]:
    """(path, shown path, its folder's name, problem or None) of each image-named entry under
    ``folder``, each folder's entries in natural order with subfolders walked where they fall."""
    seen = {_identity(folder)}
    stack = [_entries(folder, display)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        entry, shown_path, parent = item
        is_image = entry.name.lower().endswith(IMAGE_SUFFIXES)
        if entry.is_dir():
            identity = _identity(entry.path)
            if is_image:
                yield (entry.path, shown_path, parent, "is a directory, not an image")
            elif identity in seen:
                yield (entry.path, shown_path, parent, "folder reached again through a symbolic link: not walked")
            else:
                seen.add(identity)
                try:
                    stack.append(_entries(entry.path, shown_path))
                except OSError as exc:
                    yield (entry.path, shown_path, parent, f"folder cannot be read ({exc.strerror or exc})")
        elif is_image:
            dangling = entry.is_symlink() and not os.path.exists(entry.path)
            yield (entry.path, shown_path, parent, "dangling symbolic link" if dangling else None)


def _identity(folder: str) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _entries(folder: str, display: str) -> Iterator[tuple[os.DirEntry, str, str]]:
    """A folder's entries in natural order, with their shown paths and the folder's name."""
    prefix = f"{display}/" if display != "." else ""
    parent = os.path.basename(os.path.normpath(folder))
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: natural_key(entry.name))
    return iter([(entry, prefix + shown(entry.name), parent) for entry in entries])


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
    if pattern is not None:
        label, tag = label_and_tag_from_name(os.path.basename(path), pattern)
        return label, tag, None if label is not None else "no label: file name does not match --pattern"
    if mode in ("folder", "auto"):
        if parent.isdigit():
            return int(parent), "", None
        if parent.lower() in DIGIT_WORDS:  # not taken as the label: a folder "one" may mean anything
            digit = DIGIT_WORDS.index(parent.lower())
            return None, "", f"no label: folder {shown(parent)!r} spells a digit; name it {digit}"
        if mode == "folder":
            return None, "", f"no label: parent folder {shown(parent)!r} is not a digit"
    label, tag = label_and_tag_from_name(os.path.basename(path), ORIGINAL_NAME)
    if label is None:
        return None, "", "no label: neither a digit folder nor a <label>_<tag>_<n> file name"
    return label, tag, None


def label_pattern(pattern: str | None) -> re.Pattern | None:
    """``--pattern`` compiled (None for none), or a ValueError saying what is wrong with it (the
    option is not named: the command line's check and ``find_candidates`` each name it their way)."""
    try:
        compiled = re.compile(pattern) if pattern else None
    except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}: OverflowError
        raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
    if compiled is not None and "label" not in compiled.groupindex:
        raise ValueError(f"{pattern!r} has no named group 'label', e.g. (?P<label>\\d)_(?P<tag>\\d+)")
    return compiled


def find_candidates(
    sources: list[Path],
    mode: str = "auto",
    pattern: str | None = None,
    classes: tuple[int, ...] = tuple(range(10)),
    origin: str | None = None,
) -> list[Candidate]:
    """Every image under the sources, labelled, in a deterministic order (sources as given, then
    natural path order). Files that cannot be used carry a ``problem`` instead of being dropped.
    A missing source or a bad pattern is a ValueError before any folder is walked."""
    try:
        compiled = label_pattern(pattern)
    except ValueError as exc:
        raise ValueError(f"--pattern {exc}") from None
    sources = [Path(source) for source in sources]
    for source in sources:
        if not source.exists():
            raise ValueError(f"{source}: no such file or folder")
    found = []
    for source in sources:
        resolved = source.resolve()
        source_origin = origin or (resolved.name if source.is_dir() else resolved.parent.name)
        display = shown(Path(os.path.relpath(source)).as_posix())
        if source.is_dir():
            entries = walk_images(str(source), display)
        else:
            entries = [(str(source), display, resolved.parent.name, None)]
        for path, display_path, parent, problem in entries:
            label, tag = None, ""
            if problem is None:
                label, tag, problem = label_file(path, parent, mode, compiled)
            if label is not None and label not in classes:
                problem = f"label {label} is not in the class set"
            found.append(Candidate(path, display_path, source_origin, label, tag, problem))
    return found


@dataclass(frozen=True)
class Census:
    """What a walk found, before any file is read: how many files, and how many of them are usable
    images per class of the class set (``per_class`` is None when labels are read from the images)."""

    files: int
    usable: int
    per_class: dict[int, int] | None

    def line(self) -> str:
        """One line in the manner of Keras' image_dataset_from_directory: ``Found 50 images in 10
        classes (5 each)``, ``(3-7 each)`` when uneven, and the files that will be skipped."""
        if self.per_class is None:
            found = f"Found {plural(self.usable, 'image')} (labels read from each image's first row)"
        elif not self.usable:
            return f"Found no usable image among {plural(self.files, 'file')}"
        else:
            counts = [count for count in self.per_class.values() if count]
            low, high = min(counts), max(counts)
            each = f" ({low} each)" if low == high else f" ({low}-{high} each)"
            found = f"Found {plural(self.usable, 'image')} in {plural(len(counts), 'class')}"
            found += each if len(counts) > 1 else ""
        others = self.files - self.usable
        return found + (f"; {plural(others, 'other file')} will be skipped" if others else "")


def census(candidates: list[Candidate], classes: tuple[int, ...], labels_known: bool = True) -> Census:
    """Usable candidates (no ``problem``) counted per class of ``classes``, zeros included."""
    usable = [c for c in candidates if c.problem is None]
    per_class = None
    if labels_known:
        per_class = dict.fromkeys(classes, 0)
        for candidate in usable:
            per_class[candidate.label] += 1
    return Census(len(candidates), len(usable), per_class)


def plural(count: int, noun: str) -> str:
    """``1 image``, ``2 images``, ``3 classes``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's'}"
