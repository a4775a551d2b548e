"""What a run leaves behind: the results table row and the learning-curve plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from digittrain.train import History


def results_with(path: Path, row: dict) -> bytes:
    """The CSV results table at ``path`` (if any) with one more run: the whole new file, which the
    command writes atomically. New columns widen the header; a table that cannot be read is a
    ValueError naming it."""
    path = Path(path)
    rows: list[dict] = []
    if path.exists():
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: cannot read the results table ({exc.__class__.__name__}: {exc})") from None
    rows.append({k: "" if v is None else v for k, v in row.items()})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def learning_curves_png(history: History, title: str, metric: str = "accuracy") -> bytes:
    """Training loss and train/test metric per epoch, side by side, as a PNG."""
    from digittrain.plots import figure_png, pyplot

    plt = pyplot()

    epochs = range(1, len(history.loss) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history.loss)
    left.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    right.plot(epochs, history.train_metric, label="train")
    right.plot(epochs, history.test_metric, label="test")
    right.set(xlabel="epoch", ylabel=metric, title=metric)
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure_png(figure)
