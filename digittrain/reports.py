"""What a run leaves behind: the results table row and the learning-curve plot.

The results table is shared by every run: rows are appended under an exclusive ``flock`` on the
table, so runs finishing at the same moment each add their row."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import stat
from pathlib import Path

from digitprep.atomic import OutputError, OutputSet, output_error, write_atomic
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


def check_replaceable(path: Path) -> None:
    """OutputError now if a new file could be written beside ``path`` but not renamed over it: in
    a folder with the sticky bit (/tmp, shared folders) only the owner of a file, of the folder, or
    root may replace it, which creating the temporary beside it does not show."""
    path = Path(path)
    try:
        folder, target = os.stat(path.parent), os.stat(path)
    except OSError:
        return  # nothing to replace, or no folder yet: opening the output tells
    if folder.st_mode & stat.S_ISVTX and os.geteuid() not in (0, folder.st_uid, target.st_uid):
        raise OutputError(f"{path}: cannot write (another user's file in a folder with the sticky bit)")


def _write_all(path: Path, fd: int, data: bytes) -> None:
    """``data`` at the end of the file (O_APPEND), in one write unless the system splits it, synced."""
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError as exc:
        raise output_error(path, exc) from None


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
