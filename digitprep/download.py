"""Fetching the four MNIST IDX files from a public mirror, each checked against its MD5 sum.

A file is streamed into a temporary file beside its target and renamed into place only once its
sum matches, so a failed, corrupt or interrupted download never leaves a file that looks complete.
Nothing here runs at import time; the mirror list is a parameter, so tests use file:// URLs or a
local server.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from digitprep.csvio import AtomicWriter

# The sums torchvision checks (torchvision.datasets.MNIST.resources).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The mirror torchvision tries first, then Google's CVDF copy (yann.lecun.com no longer serves them).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
TIMEOUT_SECONDS = 60
BLOCK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched with the right checksum from any mirror; says which and why."""


def md5_of(path: Path) -> str:
    """Hex MD5 of a file, read in blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def mirror_url(base: str, name: str) -> str:
    """``base`` (with or without its trailing slash) joined with a file name."""
    return base.rstrip("/") + "/" + name


def download(url: str, target: Path, md5: str, timeout: float = TIMEOUT_SECONDS) -> None:
    """Fetch ``url`` to ``target`` through a temporary file beside it, renamed into place only when
    its MD5 is ``md5``. A mismatch raises DownloadError naming the file, the expected and the
    actual sum; no file and no temporary file is left behind, whatever the failure."""
    target = Path(target)
    writer = AtomicWriter(target)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(BLOCK_BYTES):
                digest.update(block)
                writer.write(block)
        if digest.hexdigest() != md5:
            raise DownloadError(
                f"{target.name}: wrong MD5 from {url}: expected {md5}, got {digest.hexdigest()}; file removed"
            )
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def fetch(
    name: str,
    folder: Path,
    md5: str,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    timeout: float = TIMEOUT_SECONDS,
) -> str:
    """Make ``folder/name`` a verified copy: kept when already there with the right MD5, else
    downloaded from the first mirror that serves it with that sum. Returns what was done."""
    target = Path(folder) / name
    failures: list[str] = []
    if target.is_file():
        found = md5_of(target)
        if found == md5:
            return "present, MD5 verified"
        # A corrupt copy must not survive a failed re-download looking like a finished one.
        target.unlink()
        failures.append(f"the copy there had MD5 {found}, expected {md5}: removed")
    for base in mirrors:
        url = mirror_url(base, name)
        try:
            download(url, target, md5, timeout)
        except DownloadError as exc:
            failures.append(str(exc).removeprefix(f"{name}: "))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"cannot fetch {url} ({reason})")
        else:
            earlier = f" (after: {'; '.join(failures)})" if failures else ""
            return f"downloaded from {url}, MD5 verified{earlier}"
    raise DownloadError(f"{target}: " + "; ".join(failures + ([] if mirrors else ["no mirror given"])))


def fetch_mnist(
    folder: Path,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    checksums: dict[str, str] = MNIST_MD5,
    on_file: Callable[[str, str], None] = lambda name, status: None,
) -> None:
    """Fetch every file of ``checksums`` (MNIST's four IDX files) into ``folder``, verified;
    ``on_file(name, status)`` after each that succeeds. Every file is tried; DownloadError at the
    end names those that failed and why."""
    failures: list[str] = []
    for name, md5 in checksums.items():
        try:
            on_file(name, fetch(name, folder, md5, mirrors))
        except DownloadError as exc:
            failures.append(str(exc))
    if failures:
        raise DownloadError("; ".join(failures))
