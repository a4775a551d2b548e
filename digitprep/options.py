"""Options and limits that the command line, the build and the image steps share, as validated
dataclasses: the command line takes its defaults and help texts from here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import click

DEFAULT_MAX_PIXELS = 64_000_000  # a 64-megapixel scan; anything larger is treated as a bomb
# Decoded bytes (pixels x channels x bytes per sample): a 64-megapixel 8-bit RGB photo passes; a
# 16-bit RGBA image of that size, 512 MB before it is even made grey, does not.
DEFAULT_MAX_BYTES = 256 << 20
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

    def __post_init__(self):
        # The command line's bounds, checked again for callers of the library.
        if self.canvas < 8:  # tag 8 needs at least one output pixel per grid cell
            raise ValueError(f"canvas must be >= 8 pixels, not {self.canvas}")
        if not self.tags or any(tag not in TAGS for tag in self.tags):
            raise ValueError(f"tags must be a subset of {','.join(TAGS)}, not {self.tags!r}")
        if self.variants < 1 or self.seed < 0:
            raise ValueError("variants must be >= 1 and seed >= 0")
        for name, (low, high), (least, most) in (("stroke", self.stroke, (-0.1, 0.1)), ("scale", self.scale, (0.2, 1))):
            if not least <= low <= high <= most:
                raise ValueError(f"{name} must be LOW,HIGH with {least} <= LOW <= HIGH <= {most}, not {low},{high}")
        if not 0 <= self.rotation <= 45 or not 0 <= self.jitter < math.inf:
            raise ValueError(f"need 0 <= rotation <= 45 and a finite jitter >= 0, not {self.rotation}, {self.jitter}")


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


# ---------------------------------------------------------------- the options as the command line declares them


def classes_option(function):
    return click.option(
        "--classes",
        "classes_spec",
        default="0-9",
        show_default=True,
        help="Digits in the data set, e.g. 0-9 or 1-5 (gives isOne..isFive); other labels are skipped.",
    )(function)


def sizes_option(default: int):
    """--size, repeatable, for commands that write one-hot CSVs."""
    return click.option(
        "--size",
        "sizes",
        type=click.IntRange(2, 512),
        multiple=True,
        default=(default,),
        show_default=True,
        help="Output side in pixels; repeat for several sizes (OUT gets a _SIZE suffix each).",
    )


def run_options(function):
    """--jobs, --strict, --quiet: shared by the commands that write one-hot CSVs."""
    function = click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-input skip lines.")(
        function
    )
    function = click.option("--strict", is_flag=True, help="Any unusable input is an error: exit 1 and write nothing.")(
        function
    )
    return click.option("--jobs", type=click.IntRange(0), default=0, help="Worker processes [default: 0 = all cores].")(
        function
    )


def normalize_options(function):
    """--deskew, --center, --box: shared by every command that normalises images."""
    function = click.option(
        "--box",
        type=click.FloatRange(0.05, 1.0),
        default=MNIST_BOX,
        show_default="20/28",
        help="With --center: share of the side the digit's longer edge is fitted into.",
    )(function)
    function = click.option(
        "--center/--no-center",
        default=False,
        help="Crop to the ink, fit it into --box keeping aspect ratio, place by centre of mass.",
    )(function)
    function = click.option(
        "--deskew/--no-deskew", default=False, help="Undo slant: shear from second-order image moments."
    )(function)
    return function


def strength_options(function):
    """One option per augmentation strength (--rotation, --elastic-sigma...), help from the dataclass."""
    from dataclasses import fields

    for item in reversed(fields(AugmentStrengths)):
        function = click.option(
            f"--{item.name.replace('_', '-')}",
            type=click.FloatRange(0),
            default=item.default,
            show_default=True,
            help=item.metadata["help"],
        )(function)
    return function


def render_options(function):
    """The options of `render`: fonts, variants, drawing sizes and how much each image varies."""
    function = click.option(
        "--glyph-size",
        default=",".join(map(str, RenderConfig.scale)),
        show_default=True,
        callback=lambda ctx, param, value: parse_range(value, "--glyph-size", 0.2, 1.0),
        help="LOW,HIGH: the digit's longer side as a share of its drawing box (20/28 of the image, or the 8x8 grid).",
    )(function)
    function = click.option(
        "--stroke",
        default=",".join(map(str, RenderConfig.stroke)),
        show_default=True,
        callback=lambda ctx, param, value: parse_range(value, "--stroke", -0.1, 0.1),
        help="LOW,HIGH: strokes thickened (+) or thinned (-) per side, as a share of the glyph height.",
    )(function)
    function = click.option(
        "--jitter",
        type=click.FloatRange(0),
        default=RenderConfig.jitter,
        show_default=True,
        help="Largest shift of the digit from the centre, output pixels each way and axis (kept inside the image).",
    )(function)
    function = click.option(
        "--rotation",
        type=click.FloatRange(0, 45),
        default=RenderConfig.rotation,
        show_default=True,
        help="Largest rotation either way, degrees.",
    )(function)
    function = click.option(
        "--seed", type=click.IntRange(0), default=RenderConfig.seed, show_default=True, help="Seed of the variations."
    )(function)
    function = click.option(
        "--size",
        "canvas",
        type=click.IntRange(8, 512),
        default=RenderConfig.canvas,
        show_default=True,
        help="Side of the written images in pixels.",
    )(function)
    function = click.option(
        "--tags",
        default=",".join(RenderConfig.tags),
        show_default=True,
        callback=lambda ctx, param, value: parse_tags(value),
        help="Drawing sizes: 20 = drawn large (MNIST's 20/28 box), 8 = drawn on an 8x8 grid and scaled up.",
    )(function)
    function = click.option(
        "--variants",
        type=click.IntRange(1, 1000),
        default=RenderConfig.variants,
        show_default=True,
        help="Images per font, digit and tag.",
    )(function)
    function = click.option(
        "--fonts",
        "font_dirs",
        type=click.Path(exists=True, path_type=Path),
        multiple=True,
        help="Font folder or file (.ttf/.otf/.ttc), repeatable [default: matplotlib's bundled fonts, "
        "/usr/share/fonts, /usr/local/share/fonts, ~/.fonts, ~/.local/share/fonts].",
    )(function)
    return function


def parse_tags(value: str) -> tuple[str, ...]:
    tags = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [tag for tag in tags if tag not in TAGS]
    if not tags or unknown:
        raise click.BadParameter(f"expected a comma-separated subset of {','.join(TAGS)}, got {value!r}")
    return tags


def parse_range(value: str, name: str, low: float, high: float) -> tuple[float, float]:
    try:
        first, second = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH, got {value!r}", param_hint=name) from None
    if not low <= first <= second <= high:
        raise click.BadParameter(f"need {low} <= LOW <= HIGH <= {high}, got {value!r}", param_hint=name)
    return first, second
