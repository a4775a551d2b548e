"""Options and limits that the command line, the build and the image steps share, in a module that
imports neither NumPy nor OpenCV: the main process of `digitprep build` only walks folders and
writes files, and starts faster without them (its workers import them once, in the forkserver).
The command line builds its options from the dataclasses here (defaults, help), so importing it
must not import the image code either."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

DEFAULT_MAX_PIXELS = 64_000_000  # a 64-megapixel scan; anything larger is treated as a bomb
MNIST_BOX = 20 / 28  # MNIST fits each digit into a 20x20 box inside its 28x28 frame


@dataclass(frozen=True)
class NormalizeOptions:
    """What the pipeline does besides decode and resize."""

    deskew: bool = False
    center: bool = False
    box: float = MNIST_BOX


TAGS = ("20", "8")  # `render`'s drawing sizes, in the order variations are numbered


@dataclass(frozen=True)
class RenderConfig:
    """What `render` draws and how much each image may vary; ranges are (low, high), drawn uniformly."""

    canvas: int = 28
    tags: tuple[str, ...] = TAGS
    variants: int = 4
    seed: int = 0
    rotation: float = 8.0  # degrees either way
    jitter: float = 1.5  # output pixels either way, each axis
    stroke: tuple[float, float] = (-0.01, 0.04)  # share of the glyph height, per side
    scale: tuple[float, float] = (0.85, 1.0)  # the digit's longer side, share of its drawing box


def _strength(default: float, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AugmentStrengths:
    """How far each `augment` transform may go; each copy draws its own amount within these bounds.
    The field help texts are the command line's option help."""

    rotation: float = _strength(
        10.0, "Degrees: each copy turned by an angle uniform in +-ROTATION (counter-clockwise > 0). 0: off."
    )
    shift: float = _strength(
        2.0, "Pixels at 28x28 (scaled to the image): each axis moved uniformly within +-SHIFT. 0: off."
    )
    scale: float = _strength(0.1, "Each copy resized by a factor log-uniform in [1/(1+SCALE), 1+SCALE]. 0: off.")
    shear: float = _strength(10.0, "Degrees of horizontal shear, uniform in +-SHEAR. 0: off.")
    elastic: float = _strength(
        20.0, "Elastic distortion: Simard et al.'s alpha at 28x28 (scaling of the displacement field). 0: off."
    )
    elastic_sigma: float = _strength(
        4.0, "Elastic distortion: Simard's sigma at 28x28 (smoothness of the field, pixels)."
    )
    thickness: float = _strength(
        0.6, "Pixels at 28x28 added to (+) or taken from (-) each side of a stroke, uniform in +-THICKNESS. 0: off."
    )
    noise: float = _strength(
        0.0, "Gaussian noise: standard deviation as a share of 255, uniform in [0, NOISE] per copy. 0: off."
    )

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"augmentation strength {name} must be a finite number >= 0, not {value}")
        if self.elastic_sigma == 0 and self.elastic > 0:
            raise ValueError("elastic_sigma must be > 0 when elastic is used")

    @classmethod
    def none(cls) -> AugmentStrengths:
        """Every transform off: the identity."""
        return cls(**{f.name: 0.0 for f in fields(cls)})
