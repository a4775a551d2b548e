"""Options and limits that the command line, the build and the image steps share, in a module that
imports neither NumPy nor OpenCV: the main process of `digitprep build` only walks folders and
writes files, and starts faster without them (its workers import them once, in the forkserver)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_PIXELS = 64_000_000  # a 64-megapixel scan; anything larger is treated as a bomb
MNIST_BOX = 20 / 28  # MNIST fits each digit into a 20x20 box inside its 28x28 frame


@dataclass(frozen=True)
class NormalizeOptions:
    """What the pipeline does besides decode and resize."""

    deskew: bool = False
    center: bool = False
    box: float = MNIST_BOX
