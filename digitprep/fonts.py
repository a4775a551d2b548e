"""Font files for rendered digits: where to find them, and whether a face has real digit glyphs.

A face is usable only when '0'-'9' each have their own glyph that draws ink and is not the font's
"missing character" box. matplotlib's own fonts fail this every way: no digits mapped (STIX size
variants, DejaVu Sans Display), every digit mapped to one fallback glyph (Last Resort), or other
symbols at the digit code points (cmex10 and cmsy10 put bracket pieces and operators there).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitprep.parallel import parallel_map

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
DIGITS = "0123456789"
MISSING_CHARACTER = "\uffff"  # a Unicode noncharacter: no font maps it, so it draws the .notdef glyph
MASK_PIXELS = 160  # em size the glyphs are drawn at; digits come out about 115 pixels high
MAX_HEIGHT_SPREAD = 2.0  # tallest digit / shortest digit beyond which they are not digits
MAX_FACES = 64  # faces tried in one collection file
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# A glyph name made of letters only names some other character ("parenlefttp", "infinity");
# names with a number in them ("uni0030", "glyph19", "cid00017") say nothing either way.
WORD_NAME = re.compile(r"^[A-Za-z]+(\.[A-Za-z]+)*$")


def default_font_dirs() -> list[Path]:
    """matplotlib's bundled fonts (present wherever digitprep is installed), then the system's and the user's."""
    import matplotlib

    system = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
    return [Path(matplotlib.get_data_path()) / "fonts" / "ttf", *(Path(folder).expanduser() for folder in system)]


def find_font_files(locations: list[Path]) -> list[Path]:
    """Font files under the folders (or the files themselves) in sorted order, each real file once."""
    found: dict[str, Path] = {}
    for location in map(Path, locations):
        walked = (Path(folder) / name for folder, _, names in os.walk(location, followlinks=True) for name in names)
        fonts = sorted(path for path in walked if path.name.lower().endswith(FONT_SUFFIXES))
        for path in [location] if location.is_file() else fonts:
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


@dataclass(frozen=True)
class FontFace:
    """One face of a font file (a .ttc collection holds several), with its names."""

    path: str
    index: int
    family: str
    style: str
    content_id: int  # from the file's bytes and the face index: seeds this face's variations

    @property
    def label(self) -> str:
        """How messages name the face: the file, with the face index inside a collection."""
        return self.path if self.index == 0 else f"{self.path}#{self.index}"


def open_font(path: str, index: int = 0) -> ImageFont.FreeTypeFont:
    """Pillow's font at MASK_PIXELS per em, laid out without libraqm so results do not depend on it."""
    return ImageFont.truetype(path, MASK_PIXELS, index=index, layout_engine=ImageFont.Layout.BASIC)


def list_faces(path: Path) -> tuple[list[FontFace], str | None]:
    """The faces in a font file, or ([], reason) when the file cannot be opened as a font."""
    try:
        file_id = int.from_bytes(hashlib.sha256(Path(path).read_bytes()).digest()[:8], "little")
    except OSError as exc:
        return [], f"cannot be read ({exc.strerror or exc})"
    faces = []
    for index in range(MAX_FACES if str(path).lower().endswith((".ttc", ".otc")) else 1):
        try:
            font = open_font(str(path), index)
        except OSError as exc:
            if index == 0:
                return [], f"cannot be opened as a font ({exc})"
            break  # past the last face of a collection
        family, style = font.getname()
        faces.append(FontFace(str(path), index, family or "", style or "", file_id ^ index))
    return faces, None


def crop_to_ink(mask: np.ndarray) -> np.ndarray:
    """The smallest box holding every non-zero pixel (the mask itself when blank)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) else mask


def glyph_mask(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    """uint8 image of one character's ink (ink = 255), cropped to the ink; (0, 0) when blank."""
    left, top, right, bottom = font.getbbox(char)
    pad = 2
    image = Image.new("L", (max(right - left, 1) + 2 * pad, max(bottom - top, 1) + 2 * pad), 0)
    ImageDraw.Draw(image).text((pad - left, pad - top), char, fill=255, font=font)
    mask = crop_to_ink(np.asarray(image))
    return np.ascontiguousarray(mask) if mask.any() else np.zeros((0, 0), np.uint8)


def digit_masks(face: FontFace, chars: str = DIGITS) -> list[np.ndarray]:
    """The ink masks of ``chars`` (the ten digits, '0' first) in a face."""
    font = open_font(face.path, face.index)
    return [glyph_mask(font, char) for char in chars]


def is_box(mask: np.ndarray) -> bool:
    """True when a band along each of the ink's four outer edges is (almost) fully inked: a frame,
    as fallback fonts draw for characters they lack (rounded or decorated frames included)."""
    if mask.size == 0 or min(mask.shape) < 3:
        return False
    ink = mask >= 128
    band = max(1, round(0.06 * min(ink.shape)))
    edges = (ink[:band].any(axis=0), ink[-band:].any(axis=0), ink[:, :band].any(axis=1), ink[:, -band:].any(axis=1))
    return min(edge.mean() for edge in edges) >= 0.85


def cmap_problem(face: FontFace) -> str | None:
    """Why a face's character map (read with matplotlib's FreeType wrapper) disqualifies it, or None."""
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(face.path, face_index=face.index) if face.index else FT2Font(face.path)
    except (TypeError, RuntimeError, OSError, ValueError):
        return None  # matplotlib before 3.11 opens only the first face of a collection: the drawings decide
    charmap = font.get_charmap()
    glyphs = [charmap.get(ord(digit), 0) for digit in DIGITS]
    missing = [digit for digit, glyph in zip(DIGITS, glyphs) if glyph == 0]
    if len(missing) == len(DIGITS):
        return "no digits in its character map"
    if missing:
        return f"no glyph for {', '.join(missing)}"
    # FreeType's FT_FACE_FLAG_GLYPH_NAMES: an int before matplotlib 3.10, an enum.Flag since.
    flags = font.face_flags
    has_names = bool(flags & (1 << 9)) if isinstance(flags, int) else "GLYPH_NAMES" in str(flags)
    names = [font.get_glyph_name(glyph) if has_names else "" for glyph in glyphs]
    if len(set(glyphs)) == 1:
        return f"every digit maps to the same glyph {names[0] or glyphs[0]!r} (a fallback font)"
    for digit, name in zip(DIGITS, names):
        if name and WORD_NAME.match(name) and not name.lower().startswith(DIGIT_NAMES):
            return f"digit {digit} maps to glyph {name!r}, not a digit (a symbol font)"
    return None


def render_problem(masks: list[np.ndarray], missing: np.ndarray) -> str | None:
    """Why a face's rendered digits disqualify it, or None: no ink, the missing-character glyph,
    two digits alike, every digit a box, or heights no set of digits has."""
    for digit, mask in zip(DIGITS, masks):
        if mask.size == 0 or not mask.any():
            return f"digit {digit} draws no ink"
        if np.array_equal(mask, missing):
            return f"digit {digit} draws the missing-character glyph"
    for (first, a), (second, b) in combinations(zip(DIGITS, masks), 2):
        if np.array_equal(a, b):
            return f"digits {first} and {second} draw the same glyph"
    if all(is_box(mask) for mask in masks):
        return "every digit is drawn as a box (a fallback font)"
    heights = [mask.shape[0] for mask in masks]
    if max(heights) > MAX_HEIGHT_SPREAD * min(heights):
        # Lining digits share one height and old-style ones differ by about 1.5x; the symbols a
        # symbol font keeps at '0'-'9' (bracket pieces, primes, arrows) differ far more.
        return f"digit heights differ {max(heights) / min(heights):.1f}-fold (symbols, not digits)"
    return None


def usable_problem(face: FontFace) -> str | None:
    """None when ``face`` has ten real, distinct digit glyphs; otherwise the reason it has not."""
    if problem := cmap_problem(face):
        return problem
    try:
        *masks, missing = digit_masks(face, DIGITS + MISSING_CHARACTER)
    except (OSError, ValueError) as exc:
        return f"cannot render ({exc})"
    return render_problem(masks, missing)


@dataclass(frozen=True)
class FaceCheck:
    """The verdict on one face (or on a file that holds no usable face): ``problem`` None = usable."""

    path: str
    face: FontFace | None
    problem: str | None

    @property
    def label(self) -> str:
        return self.face.label if self.face else self.path


def check_file(path: str) -> list[FaceCheck]:
    """Every face of a font file with the reason it cannot be used (None when it can)."""
    faces, problem = list_faces(Path(path))
    if problem:
        return [FaceCheck(path, None, problem)]
    return [FaceCheck(path, face, usable_problem(face)) for face in faces]


def drop_duplicates(checks: list[FaceCheck]) -> list[FaceCheck]:
    """The same family and style found again (a system copy of a font matplotlib ships) is
    skipped in favour of the first usable one, so no face is drawn twice."""
    first: dict[tuple[str, str], FontFace] = {}
    result = []
    for check in checks:
        if check.face is not None and check.problem is None:
            key = (check.face.family.casefold(), check.face.style.casefold())
            if first.setdefault(key, check.face) is not check.face:
                check = FaceCheck(check.path, check.face, f"duplicate of {first[key].label}")
        result.append(check)
    return result


def check_fonts(locations: list[Path], jobs: int = 0) -> list[FaceCheck]:
    """The verdict on every face of every font file under ``locations`` (files checked in parallel)."""
    with parallel_map(check_file, [str(path) for path in find_font_files(locations)], jobs) as results:
        return drop_duplicates([check for file_checks in results for check in file_checks])
