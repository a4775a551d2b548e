"""The `digitprep` command: thin click wrappers around the library; no logic a test would call.

Library errors (ValueError, OSError, a dead worker) become one line on stderr and exit 1, all in `Commands.invoke`;
SIGTERM stops a run through Ctrl-C's clean-up (temporaries removed, workers ended) and exits 143."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import warnings
from pathlib import Path

import click
from click.core import ParameterSource
from tqdm import tqdm

from digitprep import __version__, options
from digitprep.atomic import write_atomic
from digitprep.augment_data import AugmentJob, augment_csv, augment_tree
from digitprep.build import BuildConfig, NothingWritten, build_dataset, build_from_images, data_warnings, skip_lines
from digitprep.csvio import read_dataset, read_onehot_csv, sidecar_path
from digitprep.figures import figure_format
from digitprep.fonts import default_font_dirs
from digitprep.forms import PAPERS, form_format, plan_form, write_form
from digitprep.mix import mix_files
from digitprep.mnist import concatenate_sets, load_sklearn_digits, read_mnist_sets
from digitprep.parallel import Feedback, WorkerDied
from digitprep.pngtree import write_png_tree
from digitprep.progressbar import progress_bar
from digitprep.render import render_font_digits
from digitprep.sheet import DEFAULT_DPI, caption, chosen_rows, contact_sheet, encode_sheet, read_sources
from digitprep.slice import SKIPPED_NAME, Grid, cut_sheet, grid_cutter, parse_grid, parse_labels, slice_pages
from digitprep.sources import LABEL_MODES, plural
from digitprep.split import split_file

FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)
EXISTING = click.Path(exists=True, path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
FRACTION = options.FiniteFloat(0, 1, min_open=True, max_open=True)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


class Commands(click.Group):
    """The command group: library errors become one-line messages here, once for every command."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the group's own options (digittrain's training options) are parsed here
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise options.OptionError.of(exc) from None

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C: the shell's 128 + SIGINT, not click's "Aborted!" and 1
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except click.UsageError as exc:  # one line, as every other error
            raise options.OptionError.of(exc) from None
        except WorkerDied as exc:
            message = f"{ctx.invoked_subcommand}: {exc}; rerun with --jobs 1 to see which file"
            raise click.ClickException(message) from None
        except (ValueError, OSError) as exc:  # DatasetFormatError, OutputError, a missing source...
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None


class Progress(contextlib.ExitStack):
    """A progress bar on stderr (``123/400 files, 24.00 files/s``, redrawn every second) when it is a
    terminal and not --quiet; nothing otherwise. Lines printed during the work go above it."""

    def __init__(self, quiet: bool, label: str, unit: str = "files"):
        super().__init__()
        self.quiet, self.enabled = quiet, not quiet and sys.stderr.isatty()
        self.label, self.unit = label, unit
        self.bar = None

    def feedback(self) -> Feedback:
        """The bar's start and advance, and a line per skipped input unless --quiet."""
        return Feedback(
            lambda path, reason: self.quiet or self.echo(f"skipped {path}: {reason}"),
            self.start,
            self.advance,
        )

    def echo(self, line: str) -> None:
        """A line on stderr, on its own above the bar (which is cleared and drawn again below it)."""
        if self.enabled:
            tqdm.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        self.bar = self.enter_context(progress_bar(total, self.label, self.unit))
        self.enter_context(warnings.catch_warnings())
        warnings.showwarning = self.warn
        stop = threading.Event()
        redraw = threading.Thread(target=self.redraw, args=(stop,), daemon=True)
        redraw.start()
        self.callback(redraw.join)
        self.callback(stop.set)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def redraw(self, stop: threading.Event) -> None:
        # tqdm draws only when a count arrives: a file that takes long would stop the clock.
        while not stop.wait(1):
            self.bar.refresh()

    def warn(self, message, category, filename, lineno, file=None, line=None) -> None:
        """Python's warnings while the bar is shown (warnings.showwarning), above it."""
        self.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n"))


def report_summary(summary, strict: bool, what: str, warnings: list[str] = ()) -> None:
    """The last line of a CSV-writing command after its ``warnings``, or its --strict failure."""
    if strict and summary.skipped:
        raise click.ClickException(f"--strict: {summary.skipped} {what} could not be used; nothing written")
    echo_lines(warnings)
    skipped = ""
    if summary.skipped:
        skipped = f"; skipped {summary.skipped} (see {sidecar_path(summary.outputs[0], 'errors')})"
    click.echo(f"wrote {summary.written} rows to {', '.join(map(str, summary.outputs))}{skipped}", err=True)


def echo_lines(lines) -> None:
    for line in lines:
        click.echo(line, err=True)


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    epilog=options.examples(
        "digitprep build my/digits --sizes 20,8 --out data/processed/mine.csv",
        "digitprep split data/processed/mine_20.csv --test-share 0.2 --by path",
        "digitprep show data/processed/mine_20_train.csv --out sheet.png",
    ),
)
@click.version_option(__version__, "--version", prog_name="digitprep")  # also under python -m
def main():
    """Turn folders of labelled digit images into clean one-hot CSV training data."""


@main.command(
    epilog=options.examples(
        "digitprep build my/digits --sizes 20,8 --out data/processed/mine.csv   # my/digits/<digit>/*.png",
        "digitprep build data/raw/fonts data/raw/sklearn --labels name --sizes 20,8 --out data/processed/embedded.csv",
        "digitprep build scans --labels name --pattern '^(?P<label>[0-9])-' --no-deskew --out scans.csv",
    )
)
@click.argument("sources", nargs=-1, required=True, type=EXISTING)
@options.sizes_option("20")
@click.option("--out", type=FILE, required=True, help=options.HELP["out"])
@options.label_options(
    LABEL_MODES,
    labels_help="Where labels come from: folder (ROOT/<label>/x.png), filename or name (<label>_<tag>_<n>.png), "
    "labelrow (the original extra first row), or auto (folder if it is a digit, else file name).",
    pattern_help="Regex searched in each file name (without extension) with named groups 'label' and optional 'tag'.",
)
@options.classes_option
@options.normalize_options(True)
@click.option("--origin", help="Origin recorded in the manifest [default: each source folder's name].")
@options.limit_options
@options.jobs_option
@options.strict_option
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress bar, no 'Found' line and no skip summary (shown still when nothing is written); warnings stay.",
)
def build(
    sources,
    sizes,
    out,
    label_mode,
    pattern,
    classes,
    deskew,
    center,
    box,
    stroke,
    origin,
    jobs,
    strict,
    quiet,
    **limits,
):
    """Decode, normalise and resize labelled images under SOURCES into one-hot CSVs."""
    normalize = options.NormalizeOptions(deskew, center, box, stroke)
    config = BuildConfig(sizes, classes, normalize, label_mode == "labelrow", **limits)
    found = (lambda census: None) if quiet else (lambda census: click.echo(census.line(), err=True))
    try:
        with Progress(quiet, "decoding") as progress:
            # Skipped files are told once per kind of reason at the end (skip_lines), not one by one.
            feedback = dataclasses.replace(progress.feedback(), on_skip=lambda path, reason: None)
            summary = build_dataset(
                list(sources), out, config, label_mode, pattern, origin, jobs, strict, feedback, found
            )
    except NothingWritten as exc:
        echo_lines(skip_lines(exc.summary))
        raise
    if not quiet:
        echo_lines(skip_lines(summary))
    report_summary(summary, strict, "file(s)", data_warnings(summary, config))


@main.command(
    epilog=options.examples(
        "digitprep show data/processed/train_20.csv --out sheet.png",
        "digitprep show data/processed/mine_20.csv --source --per-class 4 --magnify 3 --out why.pdf",
    )
)
@click.argument("csv_path", metavar="CSV", type=EXISTING_FILE)
@click.option("--out", type=FILE, required=True, help="Sheet to write: .png, .pdf or .svg, from the name.")
@click.option(
    "--dpi", type=click.IntRange(20, 1200), default=DEFAULT_DPI, help="Sheet pixels per inch (its printed size)."
)
@click.option("--per-class", type=click.IntRange(1, 100), default=12, help="Samples shown per class.")
@click.option(
    "--magnify", type=click.IntRange(0, 32), default=0, help="Sheet pixels per image pixel; 0 = automatic (48 // side)."
)
@click.option("--seed", type=int, help="Pick random samples with this seed [default: the first rows].")
@click.option(
    "--source",
    is_flag=True,
    help="Draw each row's raw input (found through the CSV's manifest) beside it, captioned with what was "
    "decided: inv (inverted), pN (paper level after inversion, when not 0) or local (uneven light), |t+l "
    "(form lines removed), oN (EXIF orientation applied), sN (stroke re-drawn).",
)
def show(csv_path, out, dpi, per_class, magnify, seed, source):
    """Write a contact sheet of CSV's samples: one row per class."""
    try:
        fmt = figure_format(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None
    if not source:
        pixels, labels, classes = read_onehot_csv(csv_path)
        write_atomic(out, encode_sheet(contact_sheet(pixels, labels, classes, per_class, magnify, seed), fmt, dpi))
        click.echo(f"wrote {out} ({len(labels)} rows, {per_class} per class shown)", err=True)
        return
    data = read_dataset(csv_path)
    rows = [int(r) for chosen in chosen_rows(data.labels, data.classes, per_class, seed) for r in chosen]
    paths = data.column("path")
    sources, missing = read_sources(paths, rows, csv_path.parent)
    captions = [caption(dict(zip(data.manifest_header, row))) for row in data.manifest_rows]
    sheet = contact_sheet(data.pixels, data.labels, data.classes, per_class, magnify, seed, sources, captions)
    write_atomic(out, encode_sheet(sheet, fmt, dpi))
    unread = f"; {missing} source(s) could not be read, shown dark" if missing else ""
    click.echo(f"wrote {out} ({len(rows)} rows shown beside their sources{unread})", err=True)


@main.command(
    epilog=options.examples(
        "digitprep augment data/processed/mine_20_train.csv --copies 4 --out data/processed/mine_20_aug.csv",
        "digitprep augment my/digits --out-dir my/augmented --copies 5 --rotation 15 --zoom 0.2",
    )
)
@click.argument("src", type=EXISTING)
@click.option("--out", type=FILE, help="CSV in: the one-hot CSV to write.")
@click.option("--out-dir", type=FOLDER, help="Folder in: the folder to write PNGs into.")
@click.option("--copies", type=click.IntRange(1), default=1, help="Augmented copies per image.")
@click.option("--seed", type=int, default=0, help="Same seed, same bytes.")
@click.option("--keep-originals/--no-keep-originals", default=True, help="Write each original before its copies.")
@options.strength_options
@options.label_options(
    tuple(m for m in LABEL_MODES if m != "labelrow"),
    labels_help="Folder in: where labels come from, as for build (unlabelled files are skipped).",
    pattern_help="Folder in: a label regex, as for build.",
)
@options.classes_option
@options.jobs_option
@options.quiet_option("per-file skip")
def augment(src, out, out_dir, copies, seed, keep_originals, label_mode, pattern, classes, jobs, quiet, **strengths):
    """Write COPIES randomly transformed copies of every image of SRC: a one-hot CSV (with --out)
    or a folder of labelled images (with --out-dir, same layout, copies named NAME_a<k>.png)."""
    if src.is_dir() != (out_dir is not None) or (out is None) == (out_dir is None):
        raise click.UsageError("give --out-dir for a folder SRC, or --out for a CSV SRC")
    try:
        job = AugmentJob(options.AugmentStrengths(**strengths), copies, seed, keep_originals, classes)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with Progress(quiet, "augmenting", "rows" if out is not None else "files") as progress:
        if out is not None:
            summary = augment_csv(src, out, job, jobs, progress.feedback())
        else:
            summary = augment_tree(src, out_dir, job, label_mode, pattern, jobs, progress.feedback())
    skipped = f"; skipped {len(summary.skipped)}" if summary.skipped else ""
    what = "rows" if out is not None else "PNGs"
    click.echo(f"wrote {summary.written} {what} to {out or out_dir} from {summary.sources} images{skipped}", err=True)


@main.command(
    epilog=options.examples(
        "digitprep split data/processed/mine_20.csv --test-share 0.2 --by path   # -> mine_20_{train,test}.csv",
        "digitprep split all.csv --test-share 0.1 --seed 3 --train-out train.csv --test-out test.csv",
    )
)
@click.argument("csv_path", metavar="CSV", type=EXISTING_FILE)
@click.option("--test-share", type=FRACTION, default=0.2, help="Share of each class that goes to the test side.")
@click.option("--seed", type=int, default=0, help="Same seed, same split.")
@click.option("--by", help="Manifest column (e.g. path, sha256): rows sharing a value go to the same side.")
@click.option("--train-out", type=FILE, help="Train CSV [default: CSV's NAME_train.csv].")
@click.option("--test-out", type=FILE, help="Test CSV [default: CSV's NAME_test.csv].")
def split(csv_path, test_share, seed, by, train_out, test_out):
    """Split a one-hot CSV (and its manifest) into stratified train and test parts. Augment after this."""
    (train_path, n_train), (test_path, n_test) = split_file(csv_path, test_share, seed, by, train_out, test_out)
    click.echo(f"wrote {n_train} rows to {train_path}, {n_test} rows to {test_path}", err=True)


@main.command(
    epilog=options.examples(
        "digitprep mix data/processed/mine_20.csv data/processed/embedded_20.csv --shuffle --out mixed_20.csv",
        "digitprep mix data/processed/embedded_8.csv --drawing-size 8 --drawing-size none --out drawn_at_8.csv",
    )
)
@click.argument("csv_paths", metavar="CSV...", nargs=-1, required=True, type=EXISTING_FILE)
@click.option("--out", type=FILE, required=True, help="Mixed one-hot CSV to write.")
@click.option("--shuffle", is_flag=True, help="Shuffle the rows (with --seed) instead of concatenating in order.")
@click.option("--seed", type=int, default=0, help="Seed for --shuffle.")
@click.option(
    "--drawing-size",
    "tags",
    multiple=True,
    help="Keep the rows drawn at this size (their manifest tag, e.g. 8; 'none' = untagged rows); repeatable.",
)
def mix(csv_paths, out, shuffle, seed, tags):
    """Concatenate one-hot CSVs of one image size and class set; the manifest keeps each row's origin."""
    rows = mix_files(list(csv_paths), out, shuffle, seed, tags)
    click.echo(f"wrote {plural(rows, 'row')} from {plural(len(csv_paths), 'file')} to {out}", err=True)


@main.command(epilog=options.examples("digitprep digits --out-dir data/raw/sklearn"))
@click.option("--out-dir", type=FOLDER, required=True, help="Folder to write <label>_8_<n>.png files into.")
def digits(out_dir):
    """Export scikit-learn's bundled handwritten 8x8 digits (1797) as labelled PNGs (tag 8)."""
    images, labels = load_sklearn_digits()
    count = write_png_tree(images, labels, out_dir, tag="8", layout="name")
    click.echo(f"wrote {count} PNGs to {out_dir}", err=True)


@main.command(
    epilog=options.examples(
        "digitprep render --out-dir data/raw/fonts",
        "digitprep render --out-dir fonts28 --fonts /usr/share/fonts --drawing-sizes 20 --variants 8 --size 28",
    )
)
@click.option("--out-dir", type=FOLDER, required=True, help=options.RENDER_HELP["out_dir"])
@options.render_options
@options.jobs_option
@options.quiet_option("per-font")
def render(out_dir, fonts, jobs, quiet, **settings):
    """Render labelled digit PNGs from every usable TrueType/OpenType font, with seeded variations."""
    config = options.RenderConfig(**settings)
    locations = list(fonts) or default_font_dirs()
    with Progress(quiet, "rendering", "images") as progress:
        summary = render_font_digits(locations, out_dir, config, jobs, progress.feedback())
    if not quiet:
        for face in summary.used:
            click.echo(f"used {face.label} ({face.family} {face.style})", err=True)
        for check in summary.skipped:
            click.echo(f"skipped {check.label}: {check.problem}", err=True)
    if not summary.used:
        where = ", ".join(map(str, locations))
        raise click.ClickException(f"no usable font (ten distinct digit glyphs) found in {where}")
    skipped = f"skipped {len(summary.skipped)} (see {out_dir / 'render.fonts.csv'})"
    click.echo(f"wrote {summary.written} PNGs to {out_dir} from {len(summary.used)} fonts; {skipped}", err=True)


@main.command(
    short_help="MNIST IDX files or image tables (CSV, TSV, text) -> PNG tree or one-hot CSVs.",
    epilog=options.examples(
        "digitprep mnist data/raw/mnist/train-images-idx3-ubyte.gz --out-dir data/raw/mnist/training",
        "digitprep mnist data/raw/mnist/t10k-images-idx3-ubyte.gz --sizes 28,20 --out data/processed/mnist_test.csv",
        "digitprep mnist kaggle/train.csv --sizes 20 --deskew --center --out data/processed/kaggle.csv",
    ),
)
@click.argument("sources", nargs=-1, required=True, type=EXISTING_FILE)
@click.option(
    "--out-dir", type=FOLDER, help="Write OUT_DIR/<digit>/<n>.png (n: position in SOURCES), replacing digit folders."
)
@click.option("--out", type=FILE, help=options.HELP["out"])
@options.sizes_option("28")
@options.classes_option
@options.normalize_options(False)
@click.option("--origin", default="mnist", help="Origin recorded in the manifest.")
@options.table_options
@options.run_options
@click.pass_context
def mnist(
    ctx, sources, out_dir, out, sizes, classes, deskew, center, box, stroke, origin, jobs, strict, quiet, **table
):
    """MNIST IDX files (labels found beside their images) or tables of one image per row -> a PNG tree or
    one-hot CSVs.

    \b
    Tables: comma, semicolon, tab or space separated, gzipped or not, with or
    without a header. For example:
      label,1x1,...,28x28          Kaggle: the label first
      pixel1,...,pixel784,class    OpenML: the label last, found by its name
      784 values a line            labels in --labels-file (digits, one-hot)
    Pixels: integers 0-255, floats 0-1 or 0-255 (--value-range for others);
    square images (784: 28x28, 256: 16x16; --shape HxW otherwise).
    --transpose for EMNIST, whose images are stored transposed."""
    table = options.table_arguments(**table)
    if (out_dir is None) == (out is None):
        raise click.UsageError("give either --out-dir (PNG tree) or --out (one-hot CSVs)")
    if out_dir is None:
        config = BuildConfig(sizes, classes, options.NormalizeOptions(deskew, center, box, stroke))
        with Progress(quiet, "normalising", "images") as progress:
            sets = read_mnist_sets(list(sources), **table)
            summary = build_from_images(sets, out, config, origin, jobs, strict, progress.feedback())
        return report_summary(summary, strict, "image(s)")
    csv_only = ("sizes", "classes", "deskew", "center", "box", "stroke", "origin", "strict")
    flags = {p.name: p.opts[0] for p in ctx.command.params if p.name in csv_only}
    given = [flag for name, flag in flags.items() if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"{', '.join(given)} only apply to --out (one-hot CSVs), not to --out-dir")
    images, labels = concatenate_sets(read_mnist_sets(list(sources), **table))
    with Progress(quiet, "writing PNGs") as progress:
        count = write_png_tree(images, labels, out_dir, None, "folder", jobs, progress.feedback())
    click.echo(f"wrote {count} PNGs to {out_dir}", err=True)


def _parsed(parse):
    """A click callback turning ``parse``'s ValueError into a one-line error naming the option."""

    def callback(ctx, param, value):
        if value is None:  # an option not given
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


@main.command(
    "slice",
    epilog=options.examples(
        "digitprep slice digits.png --out-dir my/digits --grid 50x100 --labels rows=0123456789 --repeat 5",
        "digitprep slice form1.png form2.png --out-dir my/forms --grid 10x12 --labels cols=0123456789 --sheet cut.png",
    ),
)
@click.argument("pages", metavar="PAGE...", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out-dir", type=FOLDER, required=True, help="Write OUT_DIR/<label>/<page>_<row>_<col>.png.")
@click.option(
    "--grid", metavar="ROWSxCOLS", callback=_parsed(parse_grid), help="A regular grid of equal cells, e.g. 50x100."
)
@click.option(
    "--layout",
    type=click.Choice(["rows"]),
    help="rows: free rows of digits found from the ink, each row read left to right.",
)
@click.option(
    "--form",
    "form_file",
    type=EXISTING_FILE,
    help="A photo or scan of a printed `digitprep form`: the layout JSON written beside the form.",
)
@click.option(
    "--labels",
    "labels",
    metavar="rows=DIGITS|cols=DIGITS",
    callback=_parsed(parse_labels),
    help="Label by position: row i (or column i) gets the digit (i // repeat) % len(DIGITS), cycling"
    " (a form's labels come from its JSON).",
)
@click.option("--repeat", type=click.IntRange(1), default=1, help="Consecutive rows (or columns) per label.")
@click.option("--sheet", type=FILE, help="Also write a contact sheet of the cut cells by label (.png, .pdf, .svg).")
def slice_command(pages, out_dir, grid, layout, form_file, labels, repeat, sheet):
    """Cut pages of digits into labelled PNGs that `build --labels folder` reads: a regular grid
    (OpenCV's digits.png: --grid 50x100), free rows of digits (--layout rows) or photos of a printed
    form (--form). Empty cells are skipped and listed in OUT_DIR/slice.skipped.csv."""
    given = [name for name, value in (("--grid", grid), ("--layout", layout), ("--form", form_file)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --grid ROWSxCOLS, --layout rows or --form FORM.json")
    if form_file is None and labels is None:
        raise click.UsageError(f"{given[0]} needs --labels rows=DIGITS or cols=DIGITS")
    if form_file is not None and labels is not None:
        raise click.UsageError("--form takes the labels from the form's JSON; leave out --labels")
    fmt = None
    if sheet is not None:
        try:
            fmt = figure_format(sheet)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--sheet'") from None
    if grid:
        cutter = grid_cutter(Grid(*grid, *labels, repeat))
    elif layout == "rows":
        from digitprep.textlines import rows_cutter

        cutter = rows_cutter(*labels, repeat)
    else:
        from digitprep.forms import form_cutter, read_layout

        cutter = form_cutter(read_layout(form_file))
    summary = slice_pages(list(pages), out_dir, cutter, keep_cells=sheet is not None)
    for line in summary.failed:
        click.echo(f"Error: {line}", err=True)
    cut = summary.pages - len(summary.failed)
    if cut:
        empty = (
            f"; skipped {plural(len(summary.empty), 'empty cell')} (see {out_dir / SKIPPED_NAME})"
            if summary.empty
            else ""
        )
        kept = f"; kept {plural(summary.kept, 'PNG')} of other pages already there" if summary.kept else ""
        if summary.replaced:  # a page cut again, or another of the same name (two phones' IMG_0001.jpg)
            kept += f"; replaced {plural(summary.replaced, 'PNG')} an earlier run cut from pages of these names"
        pages = f"{cut} of {summary.pages} pages"  # "1 of 1 pages", as "1 of 3 pages"
        click.echo(f"wrote {plural(summary.written, 'PNG')} to {out_dir} from {pages}{empty}{kept}", err=True)
    if sheet is not None and summary.cells:
        write_atomic(sheet, encode_sheet(cut_sheet(summary), fmt))
        shown = min(12, max(summary.labels.count(label) for label in set(summary.labels)))
        click.echo(f"wrote {sheet} ({len(summary.cells)} cells, up to {shown} of each label shown)", err=True)
    if summary.failed:
        raise SystemExit(1)


@main.command(
    "form",
    epilog=options.examples(
        "digitprep form --out form.pdf      # A4: ten rows (0-9) of 8 boxes, and form.json beside it",
        "digitprep form --out form.png --paper letter --cols 6 --rows 10 --labels rows=01234 --repeat 2",
        "digitprep form --out digits.pdf --rows 10 --cols 10 --labels cols=0123456789",
    ),
)
@click.option(
    "--out", type=FILE, required=True, help="The form to print: .pdf or .png; its layout goes beside it as .json."
)
@click.option("--paper", type=click.Choice(sorted(PAPERS)), default="a4", help="a4 (210x297 mm) or letter (8.5x11 in).")
@click.option(
    "--rows",
    type=click.IntRange(1),
    show_default="one per label (x --repeat) with rows=, else 10",
    help="Rows of boxes.",
)
@click.option(
    "--cols",
    type=click.IntRange(1),
    show_default="one per label (x --repeat) with cols=, else as many as fit",
    help="Boxes per row.",
)
@click.option(
    "--labels",
    "labels",
    default="rows=0123456789",
    metavar="rows=DIGITS|cols=DIGITS",
    callback=_parsed(parse_labels),
    help="What each box is for, as for slice: row i (or column i) gets the digit (i // repeat) % len(DIGITS).",
)
@click.option("--repeat", type=click.IntRange(1), default=1, help="Consecutive rows (or columns) per label.")
@click.option("--dpi", type=click.IntRange(100, 600), default=200, help="Pixels per inch of the printed page.")
def form(out, paper, rows, cols, labels, repeat, dpi):
    """Write a form to print and fill in by hand: boxes labelled by row (or column), corner markers
    that let `slice --form` straighten a phone photo of it, and its layout JSON beside it."""
    try:
        form_format(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None
    axis, digits = labels
    if rows is None:  # every label gets its rows (or columns) unless told otherwise
        rows = len(digits) * repeat if axis == "rows" else 10
    if cols is None and axis == "cols":
        cols = len(digits) * repeat
    layout = plan_form(paper, rows, cols, axis, digits, repeat)
    sidecar = write_form(out, layout, dpi)
    missing = sorted(set(map(int, digits)) - set(layout.grid().cell_labels().ravel().tolist()))
    if missing:  # e.g. --rows 12 --repeat 2 for ten digits: 6-9 would need 8 more rows
        what = "rows" if axis == "rows" else "columns"
        which = f"digits {' '.join(map(str, missing))} have" if len(missing) > 1 else f"digit {missing[0]} has"
        click.echo(
            f"note: {which} no box: {len(digits)} digits x --repeat {repeat} need {len(digits) * repeat} {what}",
            err=True,
        )
    click.echo(
        f"wrote {out} and {sidecar} ({layout.rows}x{layout.cols} boxes, {layout.paper_name}); after filling it in:"
        f" digitprep slice PHOTO... --form {sidecar} --out-dir DIR",
        err=True,
    )


@main.command(
    "fetch-mnist",
    short_help="Download the four MNIST IDX files, MD5-checked.",
    epilog=options.examples(
        "digitprep fetch-mnist data/raw/mnist",
        "digitprep fetch-mnist data/raw/mnist --mirror file:///media/usb/mnist/",
    ),
)
@click.argument("folder", type=FOLDER)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    show_default="torchvision's S3 mirror, then Google's CVDF mirror",
    help="Base URL holding the four .gz files (https://, http:// or file://), tried in order; repeat for fallbacks.",
)
def fetch_mnist(folder, mirrors):
    """Download MNIST's four IDX files into FOLDER and check their MD5 sums; verified copies are kept."""
    from digitprep.mnist import MNIST_MD5, MNIST_MIRRORS, fetch_mnist  # at call time: tests patch MNIST_MD5

    def report(name: str, status: str) -> None:
        click.echo(f"{name}: {status}", err=True)

    fetch_mnist(folder, tuple(mirrors) or MNIST_MIRRORS, MNIST_MD5, on_file=report)
