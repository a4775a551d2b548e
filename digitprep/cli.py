"""The `digitprep` command: thin click wrappers around the library; no logic a test would call."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from digitprep.build import BuildConfig, build_dataset, sidecar_path
from digitprep.classes import parse_classes
from digitprep.csvio import DatasetFormatError, read_onehot_csv
from digitprep.decode import DEFAULT_MAX_PIXELS
from digitprep.normalize import MNIST_BOX, NormalizeOptions
from digitprep.sources import LABEL_MODES


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Where labels come from: folder (ROOT/<label>/x.png), filename (<label>_<tag>_<n>.png), "
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
@run_options
def build(
    sources, sizes, out, label_mode, pattern, classes_spec, deskew, center, box, origin, max_pixels, jobs, strict, quiet
):
    """Decode, normalise and resize labelled images under SOURCES into one-hot CSVs."""
    classes = _parse_classes(classes_spec)
    sizes = tuple(dict.fromkeys(sizes))
    config = BuildConfig(sizes, classes, NormalizeOptions(deskew, center, box), label_mode == "labelrow", max_pixels)

    with Progress(quiet, "decoding") as progress:
        try:
            summary = build_dataset(
                list(sources),
                out,
                config,
                label_mode,
                pattern,
                origin,
                jobs,
                strict,
                on_skip=skip_reporter(quiet),
                on_start=progress.start,
                on_progress=progress.advance,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
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
    from digitprep.csvio import write_atomic
    from digitprep.pngtree import encode_png
    from digitprep.sheet import contact_sheet

    try:
        pixels, labels, classes = read_onehot_csv(csv_path)
    except DatasetFormatError as exc:
        raise click.ClickException(str(exc)) from None
    sheet = contact_sheet(pixels, labels, classes, per_class, scale, seed)
    write_atomic(out, encode_png(sheet))
    click.echo(f"wrote {out} ({len(labels)} rows, {per_class} per class shown)", err=True)


@main.command()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write <label>_8_<n>.png files into.",
)
def digits(out_dir):
    """Export scikit-learn's bundled handwritten 8x8 digits (1797) as labelled PNGs (tag 8)."""
    from digitprep.pngtree import write_labelled_pngs
    from digitprep.sklearn_digits import load_sklearn_digits

    images, labels = load_sklearn_digits()
    count = write_labelled_pngs(images, labels, out_dir, tag="8", layout="name")
    click.echo(f"wrote {count} PNGs to {out_dir}", err=True)


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
    from digitprep.mnist import MnistFormatError
    from digitprep.mnist_export import export_csv, export_png_tree

    if (out_dir is None) == (out is None):
        raise click.UsageError("give either --out-dir (PNG tree) or --out (one-hot CSVs)")
    if out_dir is not None:
        context = click.get_current_context()
        flags = {p.name: p.opts[0] for p in context.command.params}
        csv_only = ("sizes", "classes_spec", "deskew", "center", "box", "origin", "jobs", "strict")
        given = [flags[n] for n in csv_only if context.get_parameter_source(n) is not ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --out (one-hot CSVs), not to --out-dir")
        with Progress(quiet, "writing PNGs") as progress:
            try:
                count = export_png_tree(list(sources), out_dir, progress.start, progress.advance)
            except MnistFormatError as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {count} PNGs to {out_dir}", err=True)
        return
    classes = _parse_classes(classes_spec)
    config = BuildConfig(tuple(dict.fromkeys(sizes)), classes, NormalizeOptions(deskew, center, box))

    with Progress(quiet, "normalising") as progress:
        try:
            summary = export_csv(
                list(sources), out, config, origin, jobs, strict, skip_reporter(quiet), progress.start, progress.advance
            )
        except MnistFormatError as exc:
            raise click.ClickException(str(exc)) from None
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
    from digitprep.download import MNIST_MD5, MNIST_MIRRORS, DownloadError, fetch_mnist

    def report(name: str, status: str) -> None:
        click.echo(f"{name}: {status}", err=True)

    try:
        fetch_mnist(folder, tuple(mirrors) or MNIST_MIRRORS, MNIST_MD5, on_file=report)
    except DownloadError as exc:
        raise click.ClickException(str(exc)) from None


def _parse_classes(spec: str) -> tuple[int, ...]:
    try:
        return parse_classes(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from None
