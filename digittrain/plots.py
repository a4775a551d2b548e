"""Pictures a person would rather look at than numbers: the confusion matrix; and the pieces every
figure here shares: pyplot on a file-only backend, the file format a name asks for, a title that
fits its figure, and a figure's bytes (the command writes them through ``digitprep.atomic``, with
its other outputs)."""

from __future__ import annotations

import io
import textwrap

import numpy as np

# The formats (PNG for looking at; PDF and SVG for a report: they stay sharp when scaled) and the
# default resolution are digitprep's, shared with its contact sheets.
from digitprep.figures import DEFAULT_DPI, FigureFormatError, figure_format

__all__ = ["DEFAULT_DPI", "FigureFormatError", "figure_format"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed). Imported on first use: it costs
    about 0.3 s, and only the commands that draw need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fitted_title(figure, text: str, fontsize: float = 10) -> None:
    """``text`` as the figure's title, wrapped at spaces into lines no wider than the figure: a run's
    description (file, layers, optimiser, epochs...) is longer than a figure is wide, and a title on
    one line is cut off at both edges. The characters are measured in this font, not guessed."""
    renderer = figure.canvas.get_renderer()
    probe = figure.text(0, 0, text, fontsize=fontsize)
    width = probe.get_window_extent(renderer).width
    probe.remove()
    per_line = max(20, int(0.95 * figure.bbox.width * len(text) / max(width, 1.0)))
    figure.suptitle(textwrap.fill(text, per_line), fontsize=fontsize)


def figure_bytes(figure, fmt: str = "png", dpi: int = DEFAULT_DPI, tight: bool = False) -> bytes:
    """``figure`` as ``fmt`` ("png", "pdf" or "svg") bytes at ``dpi`` (pixels per inch of a PNG and of
    the images inside a PDF or SVG), and the figure freed; ``tight`` crops to what is drawn. The same
    figure gives the same bytes: no creation date in a PDF or SVG, SVG element ids from a fixed salt."""
    import matplotlib

    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "digittrain"}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(figure)
    return buffer.getvalue()


def figure_png(figure, tight: bool = False) -> bytes:
    """``figure`` as PNG bytes at DEFAULT_DPI (``figure_bytes``)."""
    return figure_bytes(figure, "png", DEFAULT_DPI, tight)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j] = rows of class i predicted as j."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (truth, predicted), 1)
    return counts


def confusion_figure(truth: np.ndarray, predicted: np.ndarray, classes):
    """The confusion matrix with counts in the cells, as a matplotlib Figure."""
    plt = pyplot()
    counts = confusion_matrix(truth, predicted, len(classes))
    figure, axes = plt.subplots(figsize=(1 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)), layout="constrained")
    axes.imshow(counts, cmap="Blues")
    axes.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
        title=f"accuracy {np.trace(counts) / max(counts.sum(), 1):.4f}",
    )
    for (i, j), value in np.ndenumerate(counts):
        axes.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > counts.max() / 2 else "black",
        )
    return figure


def confusion_png(truth: np.ndarray, predicted: np.ndarray, classes) -> bytes:
    """Confusion matrix PNG with counts in the cells."""
    return figure_png(confusion_figure(truth, predicted, classes))
