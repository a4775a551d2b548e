"""What a run leaves behind: the results table row and the learning-curve plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from digitprep.csvio import write_atomic
from digittrain.train import History


def append_result(path: Path, row: dict) -> None:
    """Append one run to a CSV results table, rewriting it atomically; new columns widen the header."""
    path = Path(path)
    rows: list[dict] = []
    if path.exists():
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    rows.append({k: "" if v is None else v for k, v in row.items()})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode())


def plot_learning_curves(path: Path, history: History, title: str, metric: str = "accuracy") -> None:
    """Training loss and train/test metric per epoch, side by side, as a PNG."""
    from digittrain.plots import pyplot, save_figure

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
    save_figure(figure, path)
