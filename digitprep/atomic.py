"""Outputs written whole or not at all: the one atomic writer every command and `digittrain` use.

Each output is written under a temporary name in its own folder (``.NAME.PID.XXXX.tmp``), flushed
and fsynced, and renamed over NAME with ``os.replace`` only when the whole set is complete. The
first file opened in a set (a data set's CSV) is renamed last, so a new CSV always comes with its
new sidecars. A run stopped by an error, Ctrl-C or SIGTERM removes its temporaries; one killed
outright (SIGKILL, a power cut) leaves them, and the next run that writes into the same folder
removes those whose process is gone. Every OSError while writing becomes one OutputError naming
the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

HELD = (signal.SIGINT, signal.SIGTERM)
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.\w+\.tmp$")


class OutputError(OSError):
    """An output that could not be written; the message names the file and the reason."""


def output_error(path: Path, exc: OSError) -> OutputError:
    if isinstance(exc, FileExistsError) and not Path(path).parent.is_dir():  # from mkdir(exist_ok=True)
        return OutputError(f"{path}: cannot write ({Path(path).parent} is a file, not a folder)")
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True


def sweep_stale(folder: Path) -> None:
    """Remove the temporaries that runs no longer alive left in ``folder``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = TEMPORARY.match(name)
        if match and int(match["pid"]) != os.getpid() and not _is_running(int(match["pid"])):
            path = Path(folder) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM wait until the block is done (the renames of a set are not cut in two):
    their handlers are set aside for it, and a signal caught meanwhile is raised again after."""
    if threading.current_thread() is not threading.main_thread():  # only it runs signal handlers
        yield
        return
    caught: list[int] = []
    held = {number: signal.signal(number, lambda number, frame: caught.append(number)) for number in HELD}
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def _staged(path: Path, make) -> str:
    """A temporary beside ``path``, named for it and this process (what ``sweep_stale`` reads)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path.parent)
        return make(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None


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


class OutputFile:
    """One output being written: ``write`` bytes; an OSError becomes an OutputError naming it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        check_replaceable(self.path)
        handle, temporary = _staged(self.path, tempfile.mkstemp)
        self.temporary = Path(temporary)
        self.handle = os.fdopen(handle, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def finish(self) -> None:
        """Everything on disk under the temporary name, with the usual permissions."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            os.fchmod(self.handle.fileno(), _file_mode())
            self.handle.close()
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def publish(self) -> None:
        try:
            os.replace(self.temporary, self.path)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            self.temporary.unlink()


class OutputFolder:
    """A folder of outputs written into a staging folder beside ``path``; on commit each of its
    top-level entries replaces the entry of that name in ``path``, and the entries ``replaces``
    picks out as the old tree's go too; others are left. Not fsynced: these trees are thousands of
    small files that a rerun makes again."""

    def __init__(self, path: Path, replaces: Callable[[Path], bool]):
        self.path = Path(path)
        self.replaces = replaces
        self.staging = Path(_staged(self.path, tempfile.mkdtemp))

    def finish(self) -> None:
        """Nothing to sync (see the class)."""

    def publish(self) -> None:
        trash = self.staging / ".replaced"
        try:
            self.path.mkdir(exist_ok=True)
            trash.mkdir()
            new = {entry.name for entry in self.staging.iterdir()} - {trash.name}
            for old in [entry for entry in self.path.iterdir() if entry.name in new or self.replaces(entry)]:
                old.rename(trash / old.name)
            for name in sorted(new):
                (self.staging / name).rename(self.path / name)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        finally:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


class OutputSet:
    """Files (and folders) written together: ``open`` each, write, then ``commit``. Leaving the
    ``with`` block without a commit (an error, an interrupt, ``--strict``) removes every temporary
    and leaves the old outputs as they were."""

    def __init__(self):
        self.outputs: list[OutputFile | OutputFolder] = []

    def open(self, path: Path) -> OutputFile:
        self.outputs.append(OutputFile(path))
        return self.outputs[-1]

    def folder(self, path: Path, replaces: Callable[[Path], bool] = lambda entry: False) -> Path:
        """A staging folder to write ``path``'s new entries into; ``replaces(entry)``: whether an entry
        already in ``path`` belongs to the old tree, to be removed even if the new one lacks it."""
        self.outputs.append(OutputFolder(path, replaces))
        return self.outputs[-1].staging

    def write(self, path: Path, data: bytes) -> None:
        """A whole file's bytes."""
        self.open(path).write(data)

    def commit(self) -> None:
        for output in self.outputs:
            output.finish()
        with signals_held():
            for output in reversed(self.outputs):
                output.publish()
        self.outputs = []

    def discard(self) -> None:
        for output in self.outputs:
            output.discard()
        self.outputs = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_staged(staging: Path, folder: Path, relative: str, data: bytes) -> None:
    """One file of a folder being staged (``OutputSet.folder(folder)``), from any process; an
    OSError names the file it is to become, ``folder / relative``."""
    try:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(data)
    except OSError as exc:
        raise output_error(Path(folder) / relative, exc) from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write one whole file atomically."""
    with OutputSet() as outputs:
        outputs.write(path, data)
        outputs.commit()
