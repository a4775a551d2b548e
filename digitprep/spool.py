"""Output text handed from `digitprep build`'s workers to the main process through files.

A chunk's CSV text (half a megabyte for 512 MNIST images at 20x20) sent back through the result
pipe was copied five times in the main process: read from the pipe, gathered, unpickled, written,
each into freshly mapped memory. That process shares the cores with the workers, so every copy
there slows the whole run. Instead, each worker appends its text to a file of its own in a private
folder beside the output (the spool) and sends back only where it put it; the main process then
has the kernel copy that range into the output (``copy_file_range``), page cache to page cache.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

PART_BYTES = 1 << 20  # pieces of a range copied by reading and writing where the kernel cannot copy
FILE_LIMIT = 64 << 20  # a worker starts a new spool file past this; the main process deletes used ones


class Spooled(NamedTuple):
    """Where a worker put a piece of text: ``length`` bytes at ``offset`` in the spool file ``part``."""

    part: str
    offset: int
    length: int


def make_spool(beside: Path) -> str:
    """A new private folder for the spool files, beside ``beside`` (on its file system, so the
    kernel can copy from one to the other), hidden like the outputs' temporary files."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=".spool", dir=beside.parent)


def remove_spool(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class SpoolWriter:
    """A worker's side: text appended to the worker's own files in the spool folder, a new file
    every FILE_LIMIT bytes so that the main process can delete the ones it has copied (the spool
    then takes a few of them on disk, not a second copy of the whole output)."""

    def __init__(self, folder: str, file_limit: int = FILE_LIMIT):
        self.folder = folder
        self.file_limit = file_limit
        self.serial = 0
        self.fd: int | None = None
        self.size = 0

    def put(self, data: bytes) -> Spooled:
        if self.fd is not None and self.size >= self.file_limit:
            os.close(self.fd)
            self.fd, self.serial, self.size = None, self.serial + 1, 0
        if self.fd is None:  # created on first use: a worker that gets no chunk leaves no file
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            self.fd = os.open(os.path.join(self.folder, self.part), flags, 0o600)
        where = Spooled(self.part, self.size, len(data))
        _write_all(self.fd, data)
        self.size += len(data)
        return where

    @property
    def part(self) -> str:
        """The current file's name: the worker's pid, then the file's serial number."""
        return f"{os.getpid()}-{self.serial}.part"


class SpoolReader:
    """The main process's side: spooled ranges copied into output files."""

    def __init__(self, folder: str):
        self.folder = folder
        self.parts: dict[str, int] = {}
        self.kernel_copy = hasattr(os, "copy_file_range")

    def copy(self, spooled: Spooled, target_fd: int) -> None:
        """Append the spooled range to ``target_fd`` at its current position. A worker's ranges
        come in the order it wrote them: once one comes from its next file, the previous file
        has been copied whole and is deleted."""
        source = self.parts.get(spooled.part)
        if source is None:
            self._drop_earlier_parts(spooled.part)
            source = self.parts[spooled.part] = os.open(os.path.join(self.folder, spooled.part), os.O_RDONLY)
        offset, left = spooled.offset, spooled.length
        while left and self.kernel_copy:
            try:
                copied = os.copy_file_range(source, target_fd, left, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self.kernel_copy = False  # a file system that cannot: read and write from now on
                break
            if copied == 0:
                raise OSError(errno.EIO, f"spool file {spooled.part} is shorter than expected")
            offset, left = offset + copied, left - copied
        while left:
            piece = os.pread(source, min(left, PART_BYTES), offset)
            if not piece:
                raise OSError(errno.EIO, f"spool file {spooled.part} is shorter than expected")
            _write_all(target_fd, piece)
            offset, left = offset + len(piece), left - len(piece)

    def _drop_earlier_parts(self, part: str) -> None:
        worker = part.split("-", 1)[0]
        for earlier in [name for name in self.parts if name.split("-", 1)[0] == worker]:
            os.close(self.parts.pop(earlier))
            os.unlink(os.path.join(self.folder, earlier))

    def close(self) -> None:
        for fd in self.parts.values():
            os.close(fd)
        self.parts.clear()


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``: os.write may take only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
