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
import tempfile
from pathlib import Path

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
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
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
    """SIGINT and SIGTERM wait until the block is done: the renames of a set are not cut in two."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class OutputFile:
    """One output being written: ``write`` bytes; an OSError becomes an OutputError naming it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(self.path.parent)
            handle, temporary = tempfile.mkstemp(
                prefix=f".{self.path.name}.{os.getpid()}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as exc:
            raise output_error(self.path, exc) from None
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

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            self.temporary.unlink()


class OutputFolder:
    """A folder of outputs written into a staging folder beside ``path``; on commit each of its
    top-level entries replaces the entry of that name in ``path`` (other entries are left)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            sweep_stale(self.path.parent)
            self.staging = Path(
                tempfile.mkdtemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".tmp", dir=self.path.parent)
            )
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def finish(self) -> None:
        """The staged files on disk (fsync of each folder's entries is left to the file system:
        these are regenerable image trees, thousands of small files)."""

    def publish(self) -> None:
        trash = self.staging / ".replaced"
        try:
            trash.mkdir()
            for entry in sorted(self.staging.iterdir()):
                if entry == trash:
                    continue
                target = self.path / entry.name
                if target.exists() or target.is_symlink():
                    target.rename(trash / entry.name)
                entry.rename(target)
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
        output = OutputFile(path)
        self.outputs.append(output)
        return output

    def folder(self, path: Path) -> Path:
        """A staging folder to write ``path``'s new entries into."""
        output = OutputFolder(path)
        self.outputs.append(output)
        return output.staging

    def write(self, path: Path, data: bytes) -> None:
        """A whole file's bytes."""
        self.open(path).write(data)

    def commit(self) -> None:
        for output in self.outputs:
            output.finish()
        with signals_held():
            for output in reversed(self.outputs):
                if isinstance(output, OutputFolder):
                    output.publish()
                    continue
                try:
                    os.replace(output.temporary, output.path)
                except OSError as exc:
                    raise output_error(output.path, exc) from None
        self.outputs = []

    def discard(self) -> None:
        for output in self.outputs:
            output.discard()
        self.outputs = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_atomic(path: Path, data: bytes) -> None:
    """Write one whole file atomically."""
    with OutputSet() as outputs:
        outputs.write(path, data)
        outputs.commit()
