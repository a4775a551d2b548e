"""y = f(x) regression (the original regression experiment): identity output, MSE loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class RegressionDataError(ValueError):
    """A data file that is not two numeric columns; the message names the file."""


def load_xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float32 columns from a two-column CSV, with or without a header row."""
    path = Path(path)
    try:
        lines = path.read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RegressionDataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if lines and not _is_number(lines[0].split(",")[0]):
        lines = lines[1:]  # a header row
    try:
        values = np.array([[float(v) for v in line.split(",")] for line in lines if line.strip()], np.float64)
    except ValueError:
        raise RegressionDataError(f"{path}: every row must be two numbers, x,y") from None
    if values.ndim != 2 or values.shape[1] != 2 or len(values) < 5:
        raise RegressionDataError(f"{path}: need at least 5 rows of exactly two columns, x,y")
    if not np.isfinite(values).all():
        raise RegressionDataError(f"{path}: contains NaN or infinite values")
    return values[:, :1].astype(np.float32), values[:, 1:].astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def mse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((predicted - truth) ** 2)) if len(truth) else float("nan")


def regression_png(x, y, x_val, y_val, predict, history, title: str) -> bytes:
    """Data with the fitted curve, and train/validation MSE per epoch, as one PNG."""
    from digittrain.plots import figure_png, pyplot

    plt = pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(x, y, s=6, alpha=0.5, label="train")
    left.scatter(x_val, y_val, s=6, alpha=0.5, label="validation")
    grid = np.linspace(min(x.min(), x_val.min()), max(x.max(), x_val.max()), 400, dtype=np.float32)[:, None]
    left.plot(grid, predict(grid), color="black", label="fit")
    left.set(xlabel="x", ylabel="y", title="fit")
    left.legend()
    epochs = range(1, len(history.loss) + 1)
    right.plot(epochs, history.train_metric, label="train")
    right.plot(epochs, history.test_metric, label="validation")
    right.set(xlabel="epoch", ylabel="MSE", yscale="log", title="error")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure_png(figure)
