"""Files written safely and small CSV text, without NumPy: atomic replacement (temporary file +
rename), the one-hot header and small tables (manifest, errors). `digitprep build`'s main process
needs only these; ``digitprep.csvio`` re-exports them beside its NumPy encoders and readers."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from digitprep.classes import onehot_column_names


def onehot_header(n_pixels: int, classes: tuple[int, ...]) -> bytes:
    """The header line: pixel1..pixelN then isZero..isNine (or the subset in ``classes``)."""
    names = [f"pixel{i}" for i in range(1, n_pixels + 1)] + onehot_column_names(classes)
    return (",".join(names) + "\n").encode()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); finished files get the usual permissions instead.
FILE_MODE = 0o666 & ~_current_umask()


WRITEBACK_BYTES = 1 << 20  # written since the last nudge: the kernel is asked to start writing it
# (at 8 MiB the final commit of the MNIST build waited for the last few megabytes: 44 ms, 34 at 1)
SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writing the range out, do not wait
_start_writeback = None  # libc's sync_file_range once looked up; False where there is none


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages to disk, without waiting for it, so
    the fsync that ends a long write finds little left to do (Linux; elsewhere nothing)."""
    global _start_writeback
    if _start_writeback is None:
        try:
            import ctypes

            _start_writeback = ctypes.CDLL(None).sync_file_range
            _start_writeback.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        except (OSError, AttributeError):
            _start_writeback = False
    if _start_writeback:
        _start_writeback(fd, 0, 0, SYNC_FILE_RANGE_WRITE)  # a failure only means a longer fsync


class AtomicWriter:
    """A binary file written under a temporary name and renamed into place only on commit.

    An interrupted run (exception, Ctrl-C, kill) leaves any previous file at ``path`` untouched.
    Every WRITEBACK_BYTES the kernel is asked to start writing what is there, so committing a
    large file does not wait for all of it at once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.temp = Path(temp)
        self.file = os.fdopen(handle, "wb")
        self.unsynced = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self._written(len(data))

    def append_with(self, copy: Callable[[int], None], length: int) -> None:
        """Append ``length`` bytes that ``copy(fd)`` writes straight to the file's descriptor, at
        its current position (what is buffered here is written first)."""
        self.file.flush()
        copy(self.file.fileno())
        self._written(length)

    def _written(self, length: int) -> None:
        self.unsynced += length
        if self.unsynced >= WRITEBACK_BYTES:
            self.file.flush()
            start_writeback(self.file.fileno())
            self.unsynced = 0

    def commit(self) -> None:
        self.finish()
        self.publish()

    def finish(self) -> None:
        """Everything written on disk under the temporary name, with the usual permissions."""
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), FILE_MODE)
        self.file.close()

    def publish(self) -> None:
        """The finished file under its real name."""
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.temp.unlink(missing_ok=True)


def commit_all(writers: list[AtomicWriter]) -> None:
    """Commit several files: each is synced to disk in a thread of its own (fsync releases the
    GIL, and the file system gathers the syncs into one journal commit instead of one each), then
    each is renamed into place, in order."""
    from concurrent.futures import ThreadPoolExecutor  # here: the worker server imports this module

    try:
        with ThreadPoolExecutor(max(1, len(writers))) as pool:
            list(pool.map(AtomicWriter.finish, writers))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.publish()


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file atomically."""
    writer = AtomicWriter(path)
    try:
        writer.write(data)
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def csv_text(header: list[str], rows: list[tuple]) -> bytes:
    """A small CSV (manifest, errors) as bytes, quoting as the csv module does."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()
