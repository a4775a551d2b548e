"""The `digitprep` command: thin click wrappers around the library; no logic a test would call.

Errors from the library (ValueError, OSError, a dead worker) become one line on stderr and exit 1
in one place (``Commands.invoke``); SIGTERM stops a run like Ctrl-C does, through the same clean-up
(temporaries removed, workers ended), and exits 143.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from digitprep import __version__
from digitprep.build import BuildConfig, build_dataset
from digitprep.classes import parse_classes
from digitprep.csvio import sidecar_path
from digitprep.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    AugmentStrengths,
    NormalizeOptions,
    RenderConfig,
    classes_option,
    normalize_options,
    render_options,
    run_options,
    sizes_option,
    strength_options,
)
from digitprep.parallel import WorkerDied
from digitprep.sources import LABEL_MODES


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


class Commands(click.Group):
    """The command group: library errors become one-line messages here, once for every command."""

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().invoke(ctx)
        except WorkerDied as exc:
            raise click.ClickException(
                f"{ctx.invoked_subcommand}: {exc}; rerun with --jobs 1 to see which file"
            ) from None
        except (ValueError, OSError) as exc:  # DatasetFormatError, OutputError, a missing source...
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None


class Progress:
    """A progress bar on stderr when it is a terminal; silent otherwise or with --quiet."""

    def __init__(self, quiet: bool, label: str):
        self.enabled = not quiet and sys.stderr.isatty()
        self.label = label
        self.bar = None
        self.stack = contextlib.ExitStack()

    def start(self, total: int) -> None:
        if self.enabled:
            self.bar = self.stack.enter_context(click.progressbar(length=total, label=self.label, file=sys.stderr))

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stack.close()


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version")
def main():
    """Turn folders of labelled digit images into clean one-hot CSV training data."""


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@sizes_option(20)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="One-hot CSV to write; OUT.manifest.csv, OUT.errors.csv and OUT.build.json go beside it.",
)
@click.option(
    "--labels",
    "label_mode",
    type=click.Choice(LABEL_MODES),
    default="auto",
    show_default=True,
    help="Where labels come from: folder (ROOT/<label>/x.png), filename or name (<label>_<tag>_<n>.png), "
    "labelrow (the original extra first row), or auto (folder if it is a digit, else file name).",
)
@click.option(
    "--pattern",
    default=None,
    help="Regex searched in each file name (without extension) with named groups 'label' and optional 'tag'.",
)
@classes_option
@normalize_options
@click.option("--origin", default=None, help="Origin recorded in the manifest [default: each source folder's name].")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels than this (before decoding them).",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(1),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Refuse images that decode to more bytes than this (pixels x channels x bytes per sample).",
)
@run_options
def build(
    sources, sizes, out, label_mode, pattern, classes_spec, deskew, center, box, origin, max_pixels, max_bytes, jobs,
    strict, quiet,
):  # fmt: skip
    """Decode, normalise and resize labelled images under SOURCES into one-hot CSVs."""
    classes = _parse_classes(classes_spec)
    options = NormalizeOptions(deskew, center, box)
    config = BuildConfig(tuple(dict.fromkeys(sizes)), classes, options, label_mode == "labelrow", max_pixels, max_bytes)
    with Progress(quiet, "decoding") as progress:
        summary = build_dataset(
            list(sources), out, config, label_mode, pattern, origin, jobs, strict,
            skip_reporter(quiet), progress.start, progress.advance,
        )  # fmt: skip
    report_summary(summary, strict, "file(s)")


def skip_reporter(quiet: bool):
    """on_skip for the CSV-writing commands: one line per unusable input, unless --quiet."""

    def report_skip(path: str, reason: str) -> None:
        if not quiet:
            click.echo(f"skipped {path}: {reason}", err=True)

    return report_skip


def report_summary(summary, strict: bool, what: str) -> None:
    """The last line of a CSV-writing command, or its --strict failure."""
    if strict and summary.skipped:
        raise click.ClickException(f"--strict: {summary.skipped} {what} could not be used; nothing written")
    names = ", ".join(str(p) for p in summary.outputs)
    skipped = ""
    if summary.skipped:
        skipped = f"; skipped {summary.skipped} (see {sidecar_path(summary.outputs[0], 'errors')})"
    click.echo(f"wrote {summary.written} rows to {names}{skipped}", err=True)


@main.command()
@click.argument("csv_path", metavar="CSV", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
@click.option(
    "--per-class", type=click.IntRange(1, 100), default=12, show_default=True, help="Samples shown per class."
)
@click.option("--scale", type=click.IntRange(0, 32), default=0, help="Pixel magnification [default: 0 = automatic].")
@click.option("--seed", type=int, default=None, help="Pick random samples with this seed [default: the first rows].")
def show(csv_path, out, per_class, scale, seed):
    """Write a contact sheet of CSV's samples: one row per class."""
    from digitprep.atomic import write_atomic
    from digitprep.csvio import read_onehot_csv
    from digitprep.pngtree import encode_png
    from digitprep.sheet import contact_sheet

    pixels, labels, classes = read_onehot_csv(csv_path)
    write_atomic(out, encode_png(contact_sheet(pixels, labels, classes, per_class, scale, seed)))
    click.echo(f"wrote {out} ({len(labels)} rows, {per_class} per class shown)", err=True)


@main.command()
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV in: the one-hot CSV to write.")
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder in: the folder to write PNGs into."
)
@click.option("--copies", type=click.IntRange(1), default=1, show_default=True, help="Augmented copies per image.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--keep-originals/--no-keep-originals",
    default=True,
    show_default=True,
    help="Write each original before its copies.",
)
@strength_options
@click.option(
    "--labels",
    "label_mode",
    type=click.Choice([m for m in LABEL_MODES if m != "labelrow"]),
    default="auto",
    show_default=True,
    help="Folder in: where labels come from, as for build (unlabelled files are skipped).",
)
@click.option("--pattern", default=None, help="Folder in: a label regex, as for build.")
@classes_option
@click.option("--jobs", type=click.IntRange(0), default=0, help="Worker processes [default: 0 = all cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-file skip lines.")
def augment(
    src, out, out_dir, copies, seed, keep_originals, label_mode, pattern, classes_spec, jobs, quiet, **strengths
):
    """Write COPIES randomly transformed copies of every image of SRC: a one-hot CSV (with --out)
    or a folder of labelled images (with --out-dir, same layout, copies named NAME_a<k>.png)."""
    from digitprep.augment_data import AugmentJob, augment_csv, augment_tree

    if src.is_dir() != (out_dir is not None) or (out is None) == (out_dir is None):
        raise click.UsageError("give --out-dir for a folder SRC, or --out for a CSV SRC")
    try:
        job = AugmentJob(AugmentStrengths(**strengths), copies, seed, keep_originals, _parse_classes(classes_spec))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with Progress(quiet, "augmenting") as progress:
        if out is not None:
            summary = augment_csv(src, out, job, jobs, progress.start, progress.advance)
        else:
            summary = augment_tree(
                src, out_dir, job, label_mode, pattern, jobs, skip_reporter(quiet), progress.start, progress.advance
            )
    skipped = f"; skipped {len(summary.skipped)}" if summary.skipped else ""
    what = "rows" if out is not None else "PNGs"
    click.echo(f"wrote {summary.written} {what} to {out or out_dir} from {summary.sources} images{skipped}", err=True)


@main.command()
@click.argument("csv_path", metavar="CSV", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--test",
    "test_fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of each class that goes to the test side.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same split.")
@click.option(
    "--by",
    default=None,
    help="Manifest column whose rows stay together (e.g. path, sha256): all rows sharing a value go to one side.",
)
@click.option(
    "--train-out", type=click.Path(dir_okay=False, path_type=Path), help="Train CSV [default: CSV's NAME_train.csv]."
)
@click.option(
    "--test-out", type=click.Path(dir_okay=False, path_type=Path), help="Test CSV [default: CSV's NAME_test.csv]."
)
def split(csv_path, test_fraction, seed, by, train_out, test_out):
    """Split a one-hot CSV (and its manifest) into stratified train and test parts. Augment after this."""
    from digitprep.split import split_file

    (train_path, n_train), (test_path, n_test) = split_file(csv_path, test_fraction, seed, by, train_out, test_out)
    click.echo(f"wrote {n_train} rows to {train_path}, {n_test} rows to {test_path}", err=True)


@main.command()
@click.argument(
    "csv_paths", metavar="CSV...", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Mixed one-hot CSV to write."
)
@click.option("--shuffle", is_flag=True, help="Shuffle the rows (with --seed) instead of concatenating in order.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --shuffle.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="Keep only rows with this manifest tag (drawing size, e.g. 8); 'none' = untagged rows. Repeatable.",
)
def mix(csv_paths, out, shuffle, seed, tags):
    """Concatenate one-hot CSVs of one image size and class set; the manifest keeps each row's origin."""
    from digitprep.mix import mix_files

    rows = mix_files(list(csv_paths), out, shuffle, seed, tags)
    click.echo(f"wrote {rows} rows from {len(csv_paths)} files to {out}", err=True)


@main.command()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write <label>_8_<n>.png files into.",
)
def digits(out_dir):
    """Export scikit-learn's bundled handwritten 8x8 digits (1797) as labelled PNGs (tag 8)."""
    from digitprep.mnist import load_sklearn_digits
    from digitprep.pngtree import write_png_tree

    images, labels = load_sklearn_digits()
    count = write_png_tree(images, labels, out_dir, tag="8", layout="name")
    click.echo(f"wrote {count} PNGs to {out_dir}", err=True)


@main.command()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write <label>_<tag>_<n>.png files, render.manifest.csv and render.fonts.csv into.",
)
@render_options
@click.option("--jobs", type=click.IntRange(0), default=0, help="Worker processes [default: 0 = all cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-font lines.")
def render(out_dir, font_dirs, variants, tags, canvas, seed, rotation, jitter, stroke, glyph_size, jobs, quiet):
    """Render labelled digit PNGs from every usable TrueType/OpenType font, with seeded variations."""
    from digitprep.fonts import default_font_dirs
    from digitprep.render import render_font_digits

    config = RenderConfig(canvas, tags, variants, seed, rotation, jitter, stroke, glyph_size)
    locations = list(font_dirs) or default_font_dirs()
    with Progress(quiet, "rendering") as progress:
        summary = render_font_digits(locations, out_dir, config, jobs, progress.start, progress.advance)
    if not quiet:
        for face in summary.used:
            click.echo(f"used {face.label} ({face.family} {face.style})", err=True)
        for check in summary.skipped:
            click.echo(f"skipped {check.label}: {check.problem}", err=True)
    if not summary.used:
        where = ", ".join(str(p) for p in locations)
        raise click.ClickException(f"no usable font (ten distinct digit glyphs) found in {where}")
    click.echo(
        f"wrote {summary.written} PNGs to {out_dir} from {len(summary.used)} fonts; "
        f"skipped {len(summary.skipped)} (see {out_dir / 'render.fonts.csv'})",
        err=True,
    )


@main.command(short_help="MNIST IDX or Kaggle CSV -> PNG tree or one-hot CSVs.")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the PNG tree OUT_DIR/<digit>/<index>.png (index: position in SOURCES), replacing its digit folders.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one-hot CSVs instead, as build does (with OUT.manifest.csv, OUT.errors.csv, OUT.build.json).",
)
@sizes_option(28)
@classes_option
@normalize_options
@click.option("--origin", default="mnist", show_default=True, help="Origin recorded in the manifest.")
@run_options
def mnist(sources, out_dir, out, sizes, classes_spec, deskew, center, box, origin, jobs, strict, quiet):
    """MNIST IDX files (labels found beside their images) or Kaggle CSVs -> a PNG tree or one-hot CSVs."""
    from digitprep.build import build_from_images
    from digitprep.mnist import concatenate_sets, read_mnist_sets
    from digitprep.pngtree import write_png_tree

    if (out_dir is None) == (out is None):
        raise click.UsageError("give either --out-dir (PNG tree) or --out (one-hot CSVs)")
    if out_dir is not None:
        context = click.get_current_context()
        flags = {p.name: p.opts[0] for p in context.command.params}
        csv_only = ("sizes", "classes_spec", "deskew", "center", "box", "origin", "strict")
        given = [flags[n] for n in csv_only if context.get_parameter_source(n) is not ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --out (one-hot CSVs), not to --out-dir")
    sets = read_mnist_sets(list(sources))
    if out_dir is not None:
        images, labels = concatenate_sets(sets)
        with Progress(quiet, "writing PNGs") as progress:
            count = write_png_tree(images, labels, out_dir, None, "folder", jobs, progress.start, progress.advance)
        click.echo(f"wrote {count} PNGs to {out_dir}", err=True)
        return
    config = BuildConfig(
        tuple(dict.fromkeys(sizes)), _parse_classes(classes_spec), NormalizeOptions(deskew, center, box)
    )
    with Progress(quiet, "normalising") as progress:
        summary = build_from_images(
            sets, out, config, origin, jobs, strict, skip_reporter(quiet), progress.start, progress.advance
        )
    report_summary(summary, strict, "image(s)")


@main.command("fetch-mnist", short_help="Download the four MNIST IDX files, MD5-checked.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    default=None,
    help="Base URL holding the four .gz files (https://, http:// or file://), tried in order; repeat for "
    "fallbacks [default: torchvision's S3 mirror, then Google's CVDF mirror].",
)
def fetch_mnist(folder, mirrors):
    """Download MNIST's four IDX files into FOLDER and check their MD5 sums; verified copies are kept."""
    from digitprep.mnist import MNIST_MD5, MNIST_MIRRORS, fetch_mnist

    def report(name: str, status: str) -> None:
        click.echo(f"{name}: {status}", err=True)

    fetch_mnist(folder, tuple(mirrors) or MNIST_MIRRORS, MNIST_MD5, on_file=report)


def _parse_classes(spec: str) -> tuple[int, ...]:
    try:
        return parse_classes(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None
