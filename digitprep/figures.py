"""The file formats figures are written in (contact sheets, learning curves, charts): the file
name's ending picks PNG, PDF or SVG, as matplotlib's ``savefig`` does."""

from __future__ import annotations

from pathlib import Path

FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
DEFAULT_DPI = 150  # PNG pixels per inch: a 10 x 4.2 inch figure is 1500 x 630 pixels


class FigureFormatError(ValueError):
    """A figure file name whose ending is not one of FIGURE_FORMATS."""


def figure_format(path: Path) -> str:
    """The format ``path``'s ending names (any case): "png", "pdf" or "svg"; FigureFormatError naming the
    file otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        found = f"unknown figure format {suffix!r}" if suffix else "no figure format"
        raise FigureFormatError(f"{path}: {found} (the name's ending picks it: .png, .pdf or .svg)")
    return FIGURE_FORMATS[suffix]
