"""Shared fixtures: tiny images written in the test, and the real MNIST from ../shared/data."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
CACHE = REPO / "data" / "cache"


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    """Encode an array with Pillow in a given mode (L, I;16, RGB, RGBA, LA, P...)."""
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def write_image(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array, **kw))
    return path


def drawn_digit(
    text: str = "7",
    canvas: int = 120,
    at: tuple[int, int] = (20, 70),
    scale: float = 2.0,
    thickness: int = 6,
    ink: int = 0,
    paper: int = 255,
) -> np.ndarray:
    """A digit drawn with OpenCV's Hershey font: dark ink on light paper by default."""
    image = np.full((canvas, canvas), paper, np.uint8)
    cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness, cv2.LINE_AA)
    return image


@pytest.fixture(scope="session")
def mnist_png_root() -> Path:
    """The 70 000 MNIST PNGs extracted once into data/cache (git-ignored); skip without shared data."""
    tarball = SHARED_MNIST / "mnist_png.tar.gz"
    if not tarball.exists():
        pytest.skip("../shared/data/mnist is absent")
    if not (CACHE / "testing" / "9").is_dir() or not (CACHE / "training" / "9").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(tarball), "-C", str(CACHE)], check=True)
    return CACHE


@pytest.fixture(scope="session")
def t10k() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images and labels straight from the IDX files (no project code involved)."""
    import gzip

    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip("../shared/data/mnist is absent")
    pixels = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return pixels, labels.astype(np.int64)


def png_of_zeros(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, rows: int | None = None) -> bytes:
    """A valid PNG of all-zero pixels, compressed as it is streamed, so a test can hold an image
    that decodes to hundreds of megabytes in a few hundred kilobytes (a decompression bomb).
    colour_type: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA (the PNG specification's numbers); ``rows``:
    only that many rows of data, a truncated file whose header still claims ``height``."""
    import struct
    import zlib

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = bytes(1 + width * channels * bit_depth // 8)  # filter byte 0, then the samples
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def descendants(pid: int) -> list[int]:
    """Living (not zombie) descendants of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                state, parent = handle.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if state != "Z":
            children.setdefault(int(parent), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids that still run (zombies count as gone)."""
    living = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                    living.append(pid)
        except OSError:
            pass
    return living


def gone_within(pids: list[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pids)


def terminated_once(command: list, ready, env: dict | None = None, timeout: float = 120) -> tuple[int, str, list[int]]:
    """Run ``command``, send it SIGTERM as soon as ``ready()`` holds; its exit code, its standard
    error and the processes that ran under it."""
    process = subprocess.Popen(
        list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, process.communicate()
        family = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr, family


def halves_csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    """A one-hot CSV of n 4x4 images, classes 1 and 2 told apart by which half is inked: a data set
    any network learns in a few epochs, for tests of what training writes."""
    from digitprep.csvio import write_onehot_csv

    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 3, n)
    pixels = rng.integers(0, 40, (n, 4, 4))
    pixels[labels == 1, :, :2] += 200
    pixels[labels == 2, :, 2:] += 200
    write_onehot_csv(path, pixels.reshape(n, 16).astype(np.uint8), labels, (1, 2))
    return path
