"""Pictures a person would rather look at than numbers: the confusion matrix; and the two pieces
every plot here shares, pyplot on a file-only backend and a figure's PNG bytes (the command writes
them through ``digitprep.atomic``, with its other outputs)."""

from __future__ import annotations

import io

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed). Imported on first use: it costs
    about 0.3 s, and only the commands that draw need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(figure, tight: bool = False) -> bytes:
    """``figure`` as PNG bytes, and the figure freed; ``tight`` crops to what is drawn (keeps a
    legend placed outside the axes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(figure)
    return buffer.getvalue()


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j] = rows of class i predicted as j."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (truth, predicted), 1)
    return counts


def confusion_png(truth: np.ndarray, predicted: np.ndarray, classes) -> bytes:
    """Confusion matrix PNG with counts in the cells."""
    plt = pyplot()
    counts = confusion_matrix(truth, predicted, len(classes))
    figure, axes = plt.subplots(figsize=(1 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
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
    figure.tight_layout()
    return figure_png(figure)
