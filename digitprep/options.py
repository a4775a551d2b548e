"""Options and limits shared by the command line, the build and the image steps, as validated dataclasses."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import click

from digitprep.classes import parse_classes

DEFAULT_MAX_PIXELS = 64_000_000  # a 64-megapixel scan; anything larger is treated as a bomb
DEFAULT_MAX_BYTES = 256 << 20  # decoded: a 64-megapixel 8-bit RGB photo passes, 16-bit RGBA (512 MB) does not
MNIST_BOX = 20 / 28  # MNIST fits each digit into a 20x20 box inside its 28x28 frame
MIN_BOX = 0.05  # --box below this leaves a digit of a pixel or two
STROKE_WIDTHS = (0.5, 10.0)  # --stroke's range, pixels of a 20-pixel digit


@dataclass(frozen=True)
class NormalizeOptions:
    """What the pipeline does besides decode and resize."""

    deskew: bool = False
    center: bool = False
    box: float = MNIST_BOX
    stroke: float = 0.0  # strokes re-drawn this wide (pixels of a 20-pixel digit); 0: as drawn

    def __post_init__(self):
        # The command line's bounds, checked again for callers of the library: a NaN box once
        # turned every row to zeros without a word.
        if not MIN_BOX <= self.box <= 1:
            raise ValueError(f"box must be a share from {MIN_BOX} to 1, not {self.box}")
        low, high = STROKE_WIDTHS
        if self.stroke != 0 and not low <= self.stroke <= high:
            raise ValueError(f"stroke must be 0 (as drawn) or a width from {low:g} to {high:g} px, not {self.stroke}")


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


@dataclass(frozen=True)
class AugmentStrengths:
    """How far each `augment` transform may go; each copy draws its own amount within these bounds."""

    rotation: float = 10.0
    shift: float = 2.0
    scale: float = 0.1
    shear: float = 10.0
    elastic: float = 20.0
    elastic_sigma: float = 4.0
    thickness: float = 0.6
    noise: float = 0.0

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


STRENGTH_HELP = {  # the --help of each AugmentStrengths field's option
    "rotation": "Degrees: each copy turned by an angle uniform in +-ROTATION (counter-clockwise > 0). 0: off.",
    "shift": "Pixels at 28x28 (scaled to the image): each axis moved uniformly within +-SHIFT. 0: off.",
    "scale": "Each copy resized by a factor log-uniform in [1/(1+ZOOM), 1+ZOOM]. 0: off.",
    "shear": "Degrees of horizontal shear, uniform in +-SHEAR. 0: off.",
    "elastic": "Elastic distortion: Simard et al.'s alpha at 28x28 (scaling of the displacement field). 0: off.",
    "elastic_sigma": "Elastic distortion: Simard's sigma at 28x28 (smoothness of the field, pixels).",
    "thickness": "Pixels at 28x28 added to (+) or taken from (-) each stroke side, uniform in +-THICKNESS. 0: off.",
    "noise": "Gaussian noise: standard deviation as a share of 255, uniform in [0, NOISE] per copy. 0: off.",
}


class OptionError(click.ClickException):
    """A usage error (a bad option value, an unknown option, a missing argument) shown as the one
    line that says what is wrong, ``Error: Invalid value for '--box': ...``, without click's usage
    and help lines above it; exit status 2 as click gives usage errors."""

    exit_code = 2

    @classmethod
    def of(cls, error: click.UsageError) -> OptionError:
        return cls(error.format_message())


def stacked(*decorators):
    """Several click options as one decorator, listed in --help in the order given."""
    return lambda function: functools.reduce(lambda wrapped, option: option(wrapped), reversed(decorators), function)


class FiniteFloat(click.FloatRange):
    """click's FloatRange that also refuses NaN and the infinities, as scikit-learn's check_scalar
    does: click lets ``nan`` through any bounds (every comparison with it is false) and ``inf``
    through an unbounded end. A refusal is click's one line naming the option, exit 2."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def _classes(ctx, param, spec: str) -> tuple[int, ...]:
    try:
        return parse_classes(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None


def comma_list(item: click.ParamType, example: str):
    """A click callback: ``"A,B,..."`` -> a tuple of ``item`` values in the order given, duplicates
    dropped. An empty entry (pointing to ``example``) or a bad one (``item``'s refusal, naming it) is
    click's one-line BadParameter, exit 2. The one parser of every list option (--sizes,
    --drawing-sizes), so they read alike."""

    def parse(ctx, param, value: str | None) -> tuple | None:
        if value is None:
            return None
        parts = [part.strip() for part in str(value).split(",")]
        if not all(parts):
            raise click.BadParameter(f"{value!r} has an empty entry; give a comma list such as {example}")
        values = []
        for part in parts:
            try:
                values.append(item.convert(part, param, ctx))
            except click.BadParameter as exc:
                where = f" (in {value!r})" if len(parts) > 1 else ""
                raise click.BadParameter(f"{exc.message.rstrip('.')}{where}") from None
        return tuple(dict.fromkeys(values))

    return parse


def _range(low: float, high: float):
    def parse(ctx, param, value: str) -> tuple[float, float]:
        try:
            first, second = (float(part) for part in value.split(","))
        except ValueError:
            raise click.BadParameter(f"expected LOW,HIGH, got {value!r}", param_hint=param.opts[0]) from None
        if not low <= first <= second <= high:  # false for a NaN too
            raise click.BadParameter(f"need {low} <= LOW <= HIGH <= {high}, got {value!r}", param_hint=param.opts[0])
        return first, second

    return parse


HELP = {  # the --help of options that several commands share; the group shows their defaults
    "out": "One-hot CSV to write; OUT.manifest.csv, OUT.errors.csv and OUT.build.json go beside it.",
    "sizes": "Output sides in pixels, comma-separated, e.g. 20,8 (with several, OUT gets a _SIZE suffix each).",
    "classes": "Digits in the data set, e.g. 0-9 or 1-5 (gives isOne..isFive); other labels are skipped.",
    "deskew": "Undo slant: shear from second-order image moments.",
    "center": "Crop to the ink, fit it into --box keeping aspect ratio, place by centre of mass; --no-center "
    "resizes the whole image (a digit drawn small on a large page becomes a speck).",
    "normalised": "On by default: drawings seldom sit upright in the middle of their page.",
    "mirrored": "Off by default: the rows mirror the source's pixels (MNIST's digits are centred already).",
    "box": "With --center: share of the side the digit's longer edge is fitted into.",
    "stroke": "Re-draw the strokes this many pixels wide, in pixels of a digit whose longer side is 20 (MNIST's "
    "box): a width from 0.5 to 10, 'auto' (MNIST's median, 2.9) or 'keep' (as drawn; the default, and the "
    "better choice for a model trained on MNIST as drawn: see the README).",
    "max_pixels": "Refuse images with more pixels than this (before decoding them).",
    "max_bytes": "Refuse images that decode to more bytes than this (pixels x channels x bytes per sample).",
}


SIZE_RANGE = click.IntRange(2, 512)  # an image side in pixels, as --sizes takes it
SIZE_RANGE.name = "integer"  # click's refusal of 'x' then reads "not a valid integer", not "integer range"
parse_sizes = comma_list(SIZE_RANGE, "20,8")  # also `digittrain compare --sizes`


def sizes_option(default: str, help_text: str = HELP["sizes"]):
    """--sizes 20,8: a comma list of image sides (duplicates dropped) -> a tuple of ints."""
    return click.option("--sizes", default=default, metavar="N[,N...]", callback=parse_sizes, help=help_text)


def examples(*lines: str) -> str:
    """A command's --help epilog: "Examples:" and one command line per entry of ``lines``, indented
    and kept as written (click's ``\\b`` stops it re-wrapping the paragraph)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def quiet_option(lines: str):
    """--quiet/-q: no progress bar and no LINES lines on stderr."""
    return click.option("--quiet", "-q", is_flag=True, help=f"No progress bar and no {lines} lines.")


def label_options(modes: tuple[str, ...], labels_help: str, pattern_help: str):
    """--labels (one of MODES, default auto) and --pattern: how `build` and `augment` find each file's label."""
    return stacked(
        click.option("--labels", "label_mode", type=click.Choice(modes), default="auto", help=labels_help),
        click.option("--pattern", callback=_pattern, help=pattern_help),
    )


def _pattern(ctx, param, value: str | None) -> str | None:
    """--pattern checked before any folder is walked: a bad regex is one line naming the option."""
    from digitprep.sources import label_pattern

    try:
        label_pattern(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _stroke(ctx, param, value: str) -> float:
    """--stroke: 'keep' -> 0, 'auto' -> MNIST's width, or a width from 0.5 to 10 pixels."""
    from digitprep.stroke import MNIST_STROKE

    if value in ("keep", "auto"):
        return 0.0 if value == "keep" else MNIST_STROKE
    try:
        width = float(value)
    except ValueError:
        width = float("nan")
    low, high = STROKE_WIDTHS
    if not low <= width <= high:  # false for a NaN too
        raise click.BadParameter(f"{value!r} is not 'keep', 'auto' or a width from {low:g} to {high:g} pixels")
    return width


classes_option = click.option("--classes", default="0-9", callback=_classes, help=HELP["classes"])
jobs_option = click.option("--jobs", type=click.IntRange(0), default=0, help="Worker processes; 0 = all cores.")
strict_option = click.option("--strict", is_flag=True, help="Any unusable input is an error: exit 1 and write nothing.")
run_options = stacked(jobs_option, strict_option, quiet_option("per-input skip"))  # for the one-hot CSV writers


def normalize_options(normalised: bool):
    """--deskew/--no-deskew and --center/--no-center, both on when ``normalised`` (`build`: drawings
    seldom sit centred on their page) or both off (`mnist`: its rows mirror their source), the
    default's reason in their help. Then --box and --stroke."""
    why = HELP["normalised" if normalised else "mirrored"]
    return stacked(
        click.option("--deskew/--no-deskew", default=normalised, help=f"{HELP['deskew']} {why}"),
        click.option("--center/--no-center", default=normalised, help=f"{HELP['center']} {why}"),
        click.option("--box", type=FiniteFloat(MIN_BOX, 1), default=MNIST_BOX, show_default="20/28", help=HELP["box"]),
        click.option("--stroke", default="keep", callback=_stroke, help=HELP["stroke"]),
    )


limit_options = stacked(
    click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS, help=HELP["max_pixels"]),
    click.option("--max-bytes", type=click.IntRange(1), default=DEFAULT_MAX_BYTES, help=HELP["max_bytes"]),
)
# The flag of each AugmentStrengths field: its name, but --zoom for `scale` (the field keeps its name, the
# build record's key; --scale would read like `show`'s magnification or digittrain's input scaling).
STRENGTH_FLAGS = {
    f.name: "--zoom" if f.name == "scale" else f"--{f.name.replace('_', '-')}" for f in fields(AugmentStrengths)
}
strength_options = stacked(  # --rotation, --zoom, --elastic-sigma...: one per AugmentStrengths field
    *(
        click.option(STRENGTH_FLAGS[f.name], f.name, type=FiniteFloat(0), default=f.default, help=STRENGTH_HELP[f.name])
        for f in fields(AugmentStrengths)
    )
)
RENDER_HELP = {  # by RenderConfig field, and --fonts and --out-dir
    "out_dir": "Folder to write <label>_<tag>_<n>.png files, render.manifest.csv and render.fonts.csv into.",
    "fonts": "Font folder or file (.ttf/.otf/.ttc), repeatable [default: matplotlib's bundled fonts, "
    "/usr/share/fonts, /usr/local/share/fonts, ~/.fonts, ~/.local/share/fonts].",
    "variants": "Images per font, digit and drawing size.",
    "tags": "Drawing sizes, comma-separated: 20 = drawn large (MNIST's 20/28 box), 8 = drawn on an 8x8 grid and "
    "scaled up; the size is the <tag> of each file name.",
    "canvas": "Side of the written images in pixels.",
    "seed": "Seed of the variations.",
    "rotation": "Largest rotation either way, degrees.",
    "jitter": "Largest shift of the digit from the centre, output pixels each way and axis (kept inside the image).",
    "stroke": "LOW,HIGH: strokes thickened (+) or thinned (-) per side, as a share of the glyph height.",
    "scale": "LOW,HIGH: the digit's longer side as a share of its drawing box (20/28 of the image, or the 8x8 grid).",
}


def _render_option(flag: str, field: str, **kwargs):
    """A `render` option setting RenderConfig.FIELD, with that field's default (LOW,HIGH for a range)."""
    default = getattr(RenderConfig, field)
    default = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return click.option(flag, field, default=default, help=RENDER_HELP[field], **kwargs)


render_options = stacked(
    click.option("--fonts", type=click.Path(exists=True, path_type=Path), multiple=True, help=RENDER_HELP["fonts"]),
    _render_option("--variants", "variants", type=click.IntRange(1, 1000)),
    _render_option("--drawing-sizes", "tags", metavar="N[,N...]", callback=comma_list(click.Choice(TAGS), "20,8")),
    _render_option("--size", "canvas", type=click.IntRange(8, 512)),
    _render_option("--seed", "seed", type=click.IntRange(0)),
    _render_option("--rotation", "rotation", type=FiniteFloat(0, 45)),
    _render_option("--jitter", "jitter", type=FiniteFloat(0)),
    _render_option("--stroke", "stroke", callback=_range(-0.1, 0.1)),
    _render_option("--glyph-size", "scale", callback=_range(0.2, 1.0)),
)
TABLE_HELP = {  # the options of tables (one image per row: digitprep.tables.read_table)
    "label_column": "Tables: the column holding labels: auto (a header column named label, class, target, digit "
    "or y; else told from the data), first, last, none (every column a pixel) or a header column NAME.",
    "labels_file": "Tables: the labels in a file of their own, one per line (plain digits, or ten one-hot 0/1 "
    "columns), as many as the table has rows; the table then holds pixels only.",
    "value_range": "Tables: the pixel values' range, scaled to 0-255: auto (0-255, or 0-1 when no value "
    "exceeds 1), 0-1, 0-255 or any LOW-HIGH (0-16 for scikit-learn's digits).",
    "shape": "Tables: the images' height and width, e.g. 32x24 [default: the pixel count's square root].",
    "transpose": "Transpose every image (EMNIST stores its images transposed against MNIST; IDX files too).",
}
table_options = stacked(
    click.option("--label-column", default="auto", help=TABLE_HELP["label_column"]),
    click.option(
        "--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=TABLE_HELP["labels_file"]
    ),
    click.option("--value-range", default="auto", help=TABLE_HELP["value_range"]),
    click.option("--shape", metavar="HxW", help=TABLE_HELP["shape"]),
    click.option("--transpose", is_flag=True, help=TABLE_HELP["transpose"]),
)


def table_arguments(
    label_column: str = "auto",
    labels_file: Path | None = None,
    value_range: str = "auto",
    shape: str | tuple[int, int] | None = None,
    transpose: bool = False,
) -> dict:
    """The click values of ``table_options`` as ``digitprep.tables.read_table``'s keyword arguments: --shape
    HxW parsed into (h, w); a bad --shape or --value-range is a one-line click.BadParameter."""
    from digitprep.tables import parse_value_range  # imported here: tables imports the MNIST readers

    try:
        parse_value_range(value_range)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--value-range'") from None
    if isinstance(shape, str):
        match = re.fullmatch(r"\s*([1-9]\d*)\s*[xX]\s*([1-9]\d*)\s*", shape)
        if not match:
            raise click.BadParameter(f"{shape!r} is not HxW with sides >= 1, e.g. 28x28", param_hint="'--shape'")
        shape = int(match.group(1)), int(match.group(2))
    return {
        "label_column": label_column,
        "labels_file": labels_file,
        "value_range": value_range,
        "shape": shape,
        "transpose": transpose,
    }
