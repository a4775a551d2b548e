"""What a run leaves behind: the results table row, the learning-curve figure and the per-epoch
history CSV.

The results table is shared by every run: rows are appended under an exclusive ``flock`` on the
table, so runs finishing at the same moment each add their row."""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
from pathlib import Path

from digitprep.atomic import OutputSet, output_error, write_atomic
from digitprep.csvio import csv_text
from digittrain.plots import DEFAULT_DPI, figure_bytes, fitted_title, pyplot
from digittrain.train import History


def _same_file(handle, path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path`` (not replaced or removed since)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino)


def _read_table(path: Path, handle) -> tuple[list[str], list[list[str]], bool]:
    """(header, rows, ends with a newline) of the results table open in ``handle``; ([], [], True)
    for an empty file. A table that is not UTF-8 CSV, or a row longer than the header, is a
    ValueError naming ``path``."""
    try:
        handle.seek(0)
        text = handle.read().decode("utf-8")
        table = [row for row in csv.reader(io.StringIO(text, newline="")) if row]  # blank lines: no rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the results table ({exc.__class__.__name__}: {exc})") from None
    if not table:
        return [], [], True
    header, rows = table[0], table[1:]
    longest = max(map(len, rows), default=0)
    if longest > len(header):
        raise ValueError(f"{path}: cannot read the results table (a row of {longest} fields, {len(header)} columns)")
    return header, rows, text.endswith("\n")


def _csv_lines(rows: list[list]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def check_results_writable(path: Path) -> None:
    """Fail now, not after a training, if a row could not be appended to the table at ``path``
    later: its folder is made and must take a new file (a widened table is rewritten beside it),
    and an existing table must open for writing and read as CSV. OutputError or ValueError naming
    ``path``."""
    path = Path(path)
    with OutputSet() as probe:  # creates the folder and a temporary in it; leaving removes it
        probe.open(path)
    try:
        handle = open(path, "r+b")  # no O_CREAT: a missing table stays missing until the row comes
    except FileNotFoundError:
        return
    except OSError as exc:
        raise output_error(path, exc) from None
    with handle:
        _read_table(path, handle)


def append_result(path: Path, row: dict) -> None:
    """Add one run (column -> value, None for empty) to the CSV results table at ``path``, made
    with a header if missing. Runs appending at once lose nothing: under an exclusive lock a row
    whose columns the header has is appended in one write; new columns widen the header and the
    whole table is rewritten atomically. A table that cannot be read is a ValueError naming it; a
    write that fails, an OutputError."""
    path = Path(path)
    values = {k: "" if v is None else v for k, v in row.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    while True:
        with _open_table(path) as handle:
            # The lock is on the table itself, not on a separate lock file: nothing extra is left
            # beside every table, and the one way to lose the lock, a run widening the table by
            # replacing the file, shows as the locked file no longer being the one at ``path``.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the handle closes
            if not _same_file(handle, path):
                continue  # another run replaced (or removed) the table while we waited: lock the new one
            header, rows, newline_ended = _read_table(path, handle)
            if header and set(values) <= set(header):
                line = ("" if newline_ended else "\n").encode() + _csv_lines([[values.get(c, "") for c in header]])
                _write_all(path, handle.fileno(), line)
            elif not header:
                _write_all(path, handle.fileno(), _csv_lines([list(values), list(values.values())]))
            else:  # new columns: every row widened, the file replaced whole while we hold the lock
                columns = header + [k for k in values if k not in header]
                widened = [row + [""] * (len(columns) - len(row)) for row in rows]
                write_atomic(path, _csv_lines([columns, *widened, [values.get(c, "") for c in columns]]))
            return


def _open_table(path: Path):
    """The table open for reading and appending (O_APPEND: every write at the end), made if missing.
    An existing table is opened without O_CREAT, which a sticky folder such as /tmp refuses for
    another user's file (fs.protected_regular) even when the file itself is writable."""
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise output_error(path, exc) from None
    return open(fd, "rb")


def _write_all(path: Path, fd: int, data: bytes) -> None:
    """``data`` at the end of the file (O_APPEND), in one write unless the system splits it, synced."""
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError as exc:
        raise output_error(path, exc) from None


def history_columns(held_out: str = "test", metric: str = "accuracy") -> list[str]:
    """The history CSV's header; ``held_out`` ("validation" or "test") names the held-out columns."""
    return ["epoch", "train_loss", f"{held_out}_loss", f"train_{metric}", f"{held_out}_{metric}", "lr", "seconds"]


def history_csv(history: History, held_out: str = "test", metric: str = "accuracy") -> bytes:
    """One row per epoch, as Keras' CSVLogger writes: epochs trained (a fraction for a stopped
    epoch), the mean training loss over the epoch's batches, the held-out loss and both metrics
    after it, the learning rate of its last update, and its training seconds (evaluation excluded)."""
    rows = [
        (
            f"{round(epoch, 4):g}",
            f"{loss:.6g}",
            f"{held_loss:.6g}",
            f"{train:.6g}",
            f"{test:.6g}",
            f"{lr:.6g}",
            f"{sec:.3f}",
        )
        for epoch, loss, held_loss, train, test, lr, sec in zip(
            history.epoch,
            history.loss,
            history.held_out_loss,
            history.train_metric,
            history.test_metric,
            history.lr,
            history.epoch_seconds,
        )
    ]
    return csv_text(history_columns(held_out, metric), rows)


def learning_curves_figure(history: History, title: str, held_out: str = "test", metric: str = "accuracy"):
    """Loss (train and ``held_out``, log scale) and the metric (train and ``held_out``) per epoch,
    side by side, under ``title`` wrapped to the figure's width; a matplotlib Figure.
    ``held_out`` is what the held-out rows are: "validation" (a split of the training file) or "test"."""
    plt = pyplot()
    epochs = history.epoch
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 30 else {}  # a few epochs: show each one
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    left.plot(epochs, history.loss, label="train", **style)
    if any(math.isfinite(v) for v in history.held_out_loss):
        left.plot(epochs, history.held_out_loss, label=held_out, **style)
    left.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    right.plot(epochs, history.train_metric, label="train", **style)
    right.plot(epochs, history.test_metric, label=held_out, **style)
    right.set(xlabel="epoch", ylabel=metric, title=metric)
    for axes in (left, right):
        axes.legend()
        axes.grid(alpha=0.3)
        if history.interrupted:  # where Ctrl-C stopped it: the last point is a part of an epoch
            axes.axvline(history.epochs_trained, color="grey", linestyle=":", linewidth=1)
    stopped = f" (interrupted after {history.epochs_trained:g} epochs)" if history.interrupted else ""
    fitted_title(figure, title + stopped)
    return figure


def learning_curves(
    history: History,
    title: str,
    held_out: str = "test",
    fmt: str = "png",
    dpi: int = DEFAULT_DPI,
    metric: str = "accuracy",
) -> bytes:
    """``learning_curves_figure`` as ``fmt`` ("png", "pdf", "svg") bytes at ``dpi``."""
    return figure_bytes(learning_curves_figure(history, title, held_out, metric), fmt, dpi)
