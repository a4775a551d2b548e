"""The `digittrain` command: thin click wrappers; the work is in the library modules.

Every file a command writes goes through ``digitprep.atomic``, opened before the work that fills
it (an output that cannot be written fails in a second, not after the training) and renamed into
place only when all of it is written. Errors from the library (a bad data or model file, an output
that cannot be written, a diverged run) become one line on stderr and exit 1 in one place
(``Commands.invoke``). Ctrl-C during a training stops it after the current batch and writes what
was asked for (model, curves, history, results row marked interrupted), exit 130; SIGTERM, and
Ctrl-C anywhere else, stop with nothing written, temporaries removed (SIGTERM exits 143).
"""

from __future__ import annotations

import datetime
import shlex
import signal
import sys
from pathlib import Path

import click
import numpy as np

from digitprep.atomic import OutputSet, write_atomic
from digitprep.csvio import read_build_record
from digitprep.options import FiniteFloat, OptionError, examples, parse_sizes, table_arguments, table_options
from digitprep.progressbar import progress_bar
from digitprep.split import stratified_split
from digittrain import __version__
from digittrain.activations import ACTIVATIONS
from digittrain.data import SCALINGS, Scaler, load_dataset
from digittrain.fit import TrainingOptions, fit_network
from digittrain.initializers import initializer
from digittrain.model import MLP
from digittrain.modelio import check_input_size, load_model, model_bytes
from digittrain.optimizers import OPTIMIZERS
from digittrain.plots import DEFAULT_DPI, FigureFormatError, figure_format
from digittrain.reports import (
    append_result,
    check_results_writable,
    history_csv,
    learning_curves,
)
from digittrain.train import SCHEDULES, TrainConfig, TrainingDiverged, accuracy, stop_on_interrupt, train

PROCESSED = Path("data/processed")


def parse_hidden(spec: str) -> list[int]:
    try:
        sizes = [int(s) for s in spec.replace(" ", "").split(",") if s]
    except ValueError:
        raise click.BadParameter(f"{spec!r}: give layer sizes such as 256,256", param_hint="--hidden") from None
    if any(s <= 0 for s in sizes):
        raise click.BadParameter("layer sizes must be positive", param_hint="--hidden")
    return sizes


def _load(path: Path, what: str):
    if not Path(path).exists():
        raise click.ClickException(f"{path}: no such {what} file (run `make dataset` or pass --{what})")
    return load_dataset(path)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def _figure_path(ctx, param, path: Path | None) -> Path | None:
    """A figure option's file name, its ending checked before any work: .png, .pdf or .svg."""
    if path is not None:
        try:
            figure_format(path)
        except FigureFormatError as exc:
            raise click.BadParameter(str(exc)) from None
    return path


dpi_option = click.option(
    "--dpi",
    type=click.IntRange(20, 1200),
    default=DEFAULT_DPI,
    show_default=True,
    help="Resolution of figures: pixels per inch of a PNG (and of the images in a PDF or SVG).",
)


class Commands(click.Group):
    """The command group: library errors become one-line messages here, once for every command
    (and for the training the group itself runs)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the group's own options (digittrain's training options) are parsed here
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise OptionError.of(exc) from None

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C: the shell's 128 + SIGINT, not click's "Aborted!" and 1
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except click.UsageError as exc:  # one line, as every other error
            raise OptionError.of(exc) from None
        # DatasetFormatError, ModelFileError, RegressionDataError, OutputError, a missing file...
        except (ValueError, OSError, TrainingDiverged) as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None


class EpochProgress:
    """A progress bar over each epoch's rows (``12000/60000 rows, 81234.50 rows/s``) on stderr when it is
    a terminal; closed and wiped before each epoch's report line, so the lines stay readable."""

    def __init__(self, rows: int):
        self.rows, self.enabled, self.bar, self.epoch = rows, sys.stderr.isatty(), None, 0

    def advance(self, epoch: int, rows: int) -> None:
        if not self.enabled:
            return
        if epoch != self.epoch:
            self.close()
            self.epoch = epoch
            self.bar = progress_bar(self.rows, f"epoch {epoch}", "rows", leave=False)
        self.bar.update(rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def training_options(function):
    """The training configuration options shared by `digittrain` and `digittrain compare`."""
    options = [
        click.option("--hidden", default="256,256", show_default=True, help="Hidden layer sizes, comma-separated."),
        click.option(
            "--activation",
            type=click.Choice(list(ACTIVATIONS)),
            default="relu",
            show_default=True,
            help="Activation of every hidden layer.",
        ),
        click.option("--init", "init_spec", default="he", show_default=True, help="Weights: he, xavier or normal:STD."),
        click.option(
            "--optimizer", type=click.Choice(list(OPTIMIZERS)), default="adam", show_default=True, help="Update rule."
        ),
        click.option(
            "--lr", type=FiniteFloat(0, min_open=True), default=0.001, show_default=True, help="Learning rate."
        ),
        click.option(
            "--lr-schedule",
            type=click.Choice(list(SCHEDULES)),
            default="constant",
            show_default=True,
            help="Learning rate over training: constant, or cosine annealing from --lr to 0.",
        ),
        click.option(
            "--epochs", type=click.IntRange(1), default=20, show_default=True, help="Passes over the training set."
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(0),
            default=128,
            show_default=True,
            help="Rows per update: 1 = per sample, 0 = the full batch.",
        ),
        click.option("--l2", type=FiniteFloat(0), default=0.0, show_default=True, help="L2 weight decay."),
        click.option(
            "--label-smoothing",
            type=FiniteFloat(0, 1, max_open=True),
            default=0.0,
            show_default=True,
            help="Share of each target spread over all classes.",
        ),
        click.option(
            "--input-scaling",
            "scale",
            type=click.Choice(SCALINGS),
            default="unit",
            show_default=True,
            help="Inputs: unit = /255, standard = standardised on the training set, mnist = 0.01-1.0.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights, shuffling and splits."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def training_options_from(values: dict, loss_target: float = 0.005) -> TrainingOptions:
    """The TrainingOptions the shared options describe; bad --hidden or --init is a usage error."""
    try:
        initializer(values["init_spec"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--init") from None
    return TrainingOptions(
        hidden=tuple(parse_hidden(values["hidden"])),
        activation=values["activation"],
        init=values["init_spec"],
        optimizer=values["optimizer"],
        lr=values["lr"],
        lr_schedule=values["lr_schedule"],
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        l2=values["l2"],
        label_smoothing=values["label_smoothing"],
        scale=values["scale"],
        loss_target=loss_target,
        seed=values["seed"],
    )


@click.group(
    cls=Commands,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "digittrain --size 20 --epochs 40 --save reports/model_20.npz --plot reports/curves_20.png",
        "digittrain --train data/processed/mine_20_train.csv --hidden 128 --input-scaling standard",
        "digittrain evaluate reports/model_20.npz --test data/processed/test_20.csv",
    ),
)
@click.version_option(__version__, "--version", prog_name="digittrain")  # also under python -m
@click.option(
    "--size",
    type=int,
    default=20,
    show_default=True,
    help="Resolution: trains on data/processed/train_SIZE.csv, tests on test_SIZE.csv.",
)
@click.option(
    "--train",
    "train_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Training CSV [default: data/processed/train_SIZE.csv].",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Test CSV [default: with --size, data/processed/test_SIZE.csv; with --train, a --val-split of it].",
)
@click.option(
    "--val-split",
    type=FiniteFloat(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Without a test CSV: hold out this stratified, seeded share of the training rows (the 'validation' "
    "set of the curves and the history).",
)
@training_options
@click.option(
    "--report", type=click.IntRange(1), default=1, show_default=True, help="Print a report line every N epochs."
)
@click.option(
    "--loss-target",
    type=FiniteFloat(0),
    default=0.005,
    show_default=True,
    help="Report the epoch and time at which the training loss first falls below this.",
)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the model (.npz).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=_figure_path,
    help="Save learning curves: loss and accuracy per epoch, train and held-out; .png, .pdf or .svg, from the name.",
)
@dpi_option
@click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one CSV row per epoch: epoch, train_loss, validation_loss or test_loss, train_accuracy, "
    "validation_accuracy or test_accuracy, lr, seconds.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("reports/results.csv"),
    show_default=True,
    help="Append a row describing this run to this CSV.",
)
@click.pass_context
def main(
    ctx, size, train_path, test_path, val_split, report, loss_target, save, plot, dpi, history_path, results, **training
):
    """Train a NumPy MLP on a one-hot CSV (default: digittrain --size 20); subcommands evaluate models."""
    if ctx.invoked_subcommand is not None:
        return
    options = training_options_from(training, loss_target)
    if train_path is None:  # the --size convention names both files; an explicit --train does not
        train_path = PROCESSED / f"train_{size}.csv"
        default_test = PROCESSED / f"test_{size}.csv"
        test_path = test_path or (default_test if default_test.exists() else None)
    train_set = _load(train_path, "train")
    if test_path is not None:
        test_set = _load(test_path, "test")
        if test_set.pixels.shape[1] != train_set.pixels.shape[1]:
            raise click.ClickException(
                f"{test_path}: {test_set.pixels.shape[1]} pixels per row, "
                f"but {train_path} has {train_set.pixels.shape[1]}"
            )
    else:
        train_rows, test_rows = stratified_split(train_set.labels, val_split, options.seed)
        train_set, test_set = train_set.subset(train_rows), train_set.subset(test_rows)
    preprocessing = read_build_record(train_path)  # the digitprep options the data was built with
    classes = train_set.classes
    scaler = Scaler.fit(options.scale, train_set.pixels)
    x, x_test = scaler.transform(train_set.pixels), scaler.transform(test_set.pixels)
    y_index, y_test_index = train_set.class_index, test_set.class_index

    def evaluate(m):
        return accuracy(m, x, y_index), accuracy(m, x_test, y_test_index)

    progress = EpochProgress(len(x))

    def on_epoch(epoch, history):
        progress.close()
        if epoch % report == 0 or epoch == options.epochs:
            click.echo(
                f"Epoch {epoch}: loss={history.loss[-1]:.3f}, "
                f"accuracy={history.train_metric[-1]:.3f}/{history.test_metric[-1]:.3f}"
            )

    held_out = "test" if test_path else "validation"  # what the curves and the history call the held-out rows
    with OutputSet() as outputs:  # opened now: an output that cannot be written fails before the training
        check_results_writable(results)  # appended to after the commit, under a lock: not in the set
        model_file = outputs.open(save) if save else None
        plot_file = outputs.open(plot) if plot else None
        history_file = outputs.open(history_path) if history_path else None
        held_out_name = f"test {test_path}" if test_path else f"validation {val_split:.0%} of it"
        click.echo(
            f"train {train_path} ({len(x)} rows), {held_out_name} ({len(x_test)} rows); "
            f"{x.shape[1]}-{'-'.join(map(str, options.hidden))}-{len(classes)} {options.activation}"
        )

        def stopping():
            progress.close()
            click.echo("Ctrl-C: training stopped, saving what it learnt (Ctrl-C again: quit, nothing saved)", err=True)

        try:
            with stop_on_interrupt(stopping) as stop:
                model, history = fit_network(
                    x,
                    y_index,
                    len(classes),
                    options,
                    evaluate,
                    on_epoch,
                    progress.advance,
                    held_out=(x_test, y_test_index),
                    stop=stop,
                )
        finally:
            progress.close()
        if not history.epoch:
            click.echo("Interrupted before the first update: nothing saved", err=True)
            ctx.exit(130)
        if history.interrupted:
            click.echo(
                f"Interrupted after {history.epochs_trained:g} of {options.epochs} epochs: "
                f"loss={history.loss[-1]:.3f}, accuracy={history.train_metric[-1]:.3f}/{history.test_metric[-1]:.3f}"
            )
        report_run(history, loss_target)
        record = options.as_record()
        record.pop("loss_target")
        run = {
            "size": round(x.shape[1] ** 0.5),  # what was loaded, whatever --size said
            "train": str(train_path),
            "test": str(test_path or ""),
            "val_split": "" if test_path else val_split,  # only when the split was used
            **record,
        }
        metrics = {
            "final_loss": history.loss[-1],
            "train_accuracy": history.train_metric[-1],
            "test_accuracy": history.test_metric[-1],
            "test_loss": history.held_out_loss[-1],  # like test_accuracy: on the validation rows under val_split
            "loss_target_epoch": history.target_epoch,
            "loss_target_seconds": history.target_seconds,
            "training_seconds": round(history.seconds, 3),
            "interrupted": history.epochs_trained if history.interrupted else None,  # epochs trained when stopped
        }
        finished = datetime.datetime.now().isoformat(timespec="seconds")
        if model_file is not None:
            metadata = {
                "classes": list(classes),
                "input_size": x.shape[1],
                "preprocessing": preprocessing,
                "training": run,
                "metrics": metrics,
            }
            model_file.write(model_bytes(model, scaler, metadata))
        if plot_file is not None:
            title = f"{train_path.name}: {options.describe()}"
            plot_file.write(learning_curves(history, title, held_out, figure_format(plot), dpi))
        if history_file is not None:
            history_file.write(history_csv(history, held_out))
        outputs.commit()
    # Only once the model and the plot are in place: a results row always describes a model that exists.
    append_result(results, {"finished": finished, **run, **metrics})
    if save:
        click.echo(f"Model saved to {save}")
    if plot:
        click.echo(f"Learning curves saved to {plot}")
    if history_path:
        click.echo(f"History saved to {history_path}")
    if history.interrupted:
        click.echo(f"Results row added to {results}, marked interrupted = {history.epochs_trained:g}")
        ctx.exit(130)


def report_run(history, loss_target: float) -> None:
    """The original report's closing lines: final accuracy, when the loss target was met, the time."""
    final_test = history.test_metric[-1]
    click.echo(f"Final Test: final accuracy = {final_test:.4f}")
    # With label smoothing the loss cannot reach 0: the target counts from the floor the targets allow.
    floor = f" above its floor {history.loss_floor:.3f}" if history.loss_floor > 1e-9 else ""
    if history.target_epoch is not None:
        click.echo(f"Loss below {loss_target}{floor} at epoch {history.target_epoch} ({history.target_seconds:.1f} s)")
    else:
        click.echo(f"Loss never fell below {loss_target}{floor} ({history.loss[-1]:.4f} at the end)")
    click.echo(f"Training time: {history.seconds:.1f} s")


@main.command(
    epilog=examples(
        "digittrain evaluate reports/model_20.npz --test data/processed/test_20.csv",
        "digittrain evaluate reports/model_20.npz --test data/processed/test_all_20.csv --confusion all.pdf",
    )
)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--test",
    "test_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="One-hot CSV to evaluate on.",
)
@click.option(
    "--confusion",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=_figure_path,
    help="Write the confusion matrix here: .png, .pdf or .svg, from the name [default: MODEL.confusion.png].",
)
@dpi_option
@click.option(
    "--activation",
    "default_activation",
    type=click.Choice(list(ACTIVATIONS)),
    default="sigmoid",
    show_default=True,
    help="Hidden activation for a bare W1..Wn/b1..bn file without metadata.",
)
def evaluate(model_path, test_path, confusion, dpi, default_activation):
    """Print a model's accuracy on a test CSV and write its confusion matrix."""
    model, scaler, metadata = load_model(model_path, default_activation)
    data = load_dataset(test_path)
    check_input_size(model_path, model, data.pixels.shape[1], str(test_path))
    classes = tuple(metadata.get("classes", data.classes))
    if len(classes) != model.sizes[-1]:
        raise click.ClickException(f"{model_path}: {model.sizes[-1]} outputs but {len(classes)} classes")
    lookup = {c: i for i, c in enumerate(classes)}
    if any(int(label) not in lookup for label in np.unique(data.labels)):
        raise click.ClickException(f"{test_path}: labels outside the model's classes {list(classes)}")
    truth = np.array([lookup[int(label)] for label in data.labels])
    predicted = model.predict(scaler.transform(data.pixels))
    click.echo(f"accuracy = {(predicted == truth).mean():.4f}")
    from digittrain.plots import confusion_figure, figure_bytes

    confusion = confusion or model_path.with_suffix(".confusion.png")
    write_atomic(confusion, figure_bytes(confusion_figure(truth, predicted, classes), figure_format(confusion), dpi))
    click.echo(f"confusion matrix: {confusion}", err=True)


@main.command(
    epilog=examples(
        "digittrain predict reports/model_20.npz photo.jpg scans/ --top 3",
        "digittrain predict reports/model_20.npz kaggle/test.csv --out submission.csv",
    )
)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("sources", metavar="DATA...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the predictions here as CSV: ImageId,Label for tables (Kaggle's submission layout, ids from 1 "
    "continuing across tables), File,Label for images [default: print them].",
)
@click.option(
    "--probabilities",
    is_flag=True,
    help="Add one column per class, named by its digit, with the model's probability (6 decimals); "
    "without --out the CSV is printed.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=None,
    help="Give the K most probable digits of each input with their probabilities: in the printed lines, "
    "and in the CSV as Probability (the Label's), then Label_2,Probability_2 ... Label_K,Probability_K.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Print the CSV (as --out writes it) instead of one line per image; tables always print the CSV.",
)
@table_options
def predict(model_path, sources, out, probabilities, top, as_csv, **table):
    """Predict the digit of each image in DATA, preprocessed as the model's training data was.

    DATA: image files, folders of images (walked as `digitprep build` walks them) or tables of pixel
    rows (.csv, .tsv, .txt, each optionally .gz; their labels, if any, ignored), not tables and images
    together. Tables are read as `digitprep mnist` reads them, with the same options."""
    from digittrain.predict import Predictor, predict_data

    reading = table_arguments(**table)  # how to read the tables; a bad --shape or --value-range fails first

    with OutputSet() as outputs:  # opened before the work: an --out that cannot be written fails now
        out_file = outputs.open(out) if out else None
        predictor = Predictor.load(model_path)
        if top is not None and top > len(predictor.classes):
            raise click.BadParameter(f"{top}: {model_path} has {len(predictor.classes)} classes", param_hint="--top")
        result = predict_data(predictor, list(sources), reading, lambda line: click.echo(line, err=True))
        if out_file is not None:
            out_file.write(result.csv(probabilities, top or 0))
            outputs.commit()
            click.echo(f"{len(result.keys)} predictions written to {out}", err=True)
        elif as_csv or probabilities or result.key_name == "ImageId":
            click.echo(result.csv(probabilities, top or 0), nl=False)
        else:
            for line in result.lines(top or 1):
                click.echo(line)
    if result.failed:
        raise SystemExit(1)


@main.command(
    epilog=examples(
        "digittrain serve reports/model_20.npz",
        "digittrain serve reports/model_20.npz --collect data/raw/mine --port 8080",
    )
)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--collect",
    "collect_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Collect drawings: the page's 'save as' 0-9 buttons (or digit keys) write DIR/<label>_<tag>_<n>.png "
    "(tag: the drawing's side in pixels), the names `digitprep build DIR` reads labels from; created if missing.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on: 127.0.0.1 serves this computer only; 0.0.0.0 every network it is on.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on (0: a free one)."
)
def serve(model_path, collect_dir, host, port):
    """Serve a page to draw digits on: each stroke is predicted by MODEL, preprocessed as its training
    data was, and the page shows the digit, every class's probability and the image the model saw."""
    from digittrain.predict import Predictor
    from digittrain.serve import collect_folder, create_app, listening_server, serve_until_interrupted, url_of

    predictor = Predictor.load(model_path)
    folder = collect_folder(collect_dir) if collect_dir is not None else None
    server = listening_server(create_app(predictor, folder, report=click.echo, name=str(model_path)), host, port)
    collecting = f"; saving drawings into {collect_dir}" if folder is not None else ""
    click.echo(f"serving {model_path} on {url_of(host, server.port)} (Ctrl-C stops){collecting}")
    serve_until_interrupted(server)


@main.command(
    "import-weights",
    epilog=examples(
        "digittrain import-weights weights.pkl --out reports/imported.npz --activation sigmoid",
    ),
)
@click.argument("pickle_path", metavar="FILE.pkl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Model file (.npz) to write, for `digittrain evaluate` and `predict`.",
)
@click.option(
    "--activation",
    type=click.Choice(list(ACTIVATIONS)),
    default="sigmoid",
    show_default=True,
    help="Activation of every hidden layer (the output is softmax).",
)
def import_weights(pickle_path, out, activation):
    """Pretrained weights pickled as a dict W1..Wn/b1..bn or a list of (W, b) pairs -> a model file.

    The pickle is read through a restricted unpickler: NumPy arrays and plain containers only."""
    from digittrain.pickled_weights import import_weights as import_pickled

    model = import_pickled(pickle_path, out, activation)
    hidden = f", {activation} hidden layers" if len(model.sizes) > 2 else ""
    click.echo(f"{out}: {'-'.join(map(str, model.sizes))}{hidden}, softmax output, inputs /255 (from {pickle_path})")


@main.command(
    epilog=examples(
        "digittrain regress xy.csv --hidden 16,16 --epochs 1000 --plot reports/regression.png",
    )
)
@click.argument("data_path", metavar="DATA", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hidden", default="4,4", show_default=True, help="Hidden layer sizes, comma-separated.")
@click.option(
    "--activation",
    type=click.Choice(list(ACTIVATIONS)),
    default="leaky_relu",
    show_default=True,
    help="Activation of every hidden layer (the output is linear).",
)
@click.option("--init", "init_spec", default="he", show_default=True, help="Weights: he, xavier or normal:STD.")
@click.option(
    "--optimizer", type=click.Choice(list(OPTIMIZERS)), default="adam", show_default=True, help="Update rule."
)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.01, show_default=True, help="Learning rate.")
@click.option("--epochs", type=click.IntRange(1), default=500, show_default=True, help="Passes over the data.")
@click.option(
    "--batch-size",
    type=click.IntRange(0),
    default=16,
    show_default=True,
    help="Rows per update: 1 = per sample, 0 = the full batch.",
)
@click.option(
    "--val-split",
    type=click.FloatRange(0.05, 0.9),
    default=0.2,
    show_default=True,
    help="Seeded share of the rows held out for validation.",
)
@click.option("--report", type=click.IntRange(1), default=50, show_default=True, help="Print every N epochs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights, shuffling and the split.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("reports/regression.png"),
    show_default=True,
    help="PNG of the fitted curve and the error curves.",
)
def regress(data_path, hidden, activation, init_spec, optimizer, lr, epochs, batch_size, val_split, report, seed, plot):
    """Fit y = f(x) from a two-column CSV with an identity output and MSE."""
    from digittrain.regression import load_xy, mse, regression_png

    x_all, y_all = load_xy(data_path)
    order = np.random.default_rng(seed).permutation(len(x_all))
    cut = max(1, round(len(order) * val_split))
    val_rows, train_rows = order[:cut], order[cut:]
    x, y, x_val, y_val = x_all[train_rows], y_all[train_rows], x_all[val_rows], y_all[val_rows]
    # Inputs standardised on the training rows, so the initialisers' assumptions hold for any x range.
    centre, spread = float(x.mean()), float(x.std()) or 1.0
    hidden_sizes = parse_hidden(hidden)
    model = MLP([1, *hidden_sizes, 1], [activation] * len(hidden_sizes), init_spec, seed)

    def predict(values):
        return model.forward((values - centre) / spread)

    def evaluate(m):
        return mse(predict(x), y), mse(predict(x_val), y_val)

    def on_epoch(epoch, history):
        if epoch % report == 0 or epoch == epochs:
            click.echo(
                f"Epoch {epoch}: loss={history.loss[-1]:.5f}, "
                f"mse={history.train_metric[-1]:.5f}/{history.test_metric[-1]:.5f}"
            )

    config = TrainConfig(optimizer, lr, epochs, batch_size, loss="mse", seed=seed)
    with OutputSet() as outputs:  # opened before the training, as for the classifier
        plot_file = outputs.open(plot)
        history = train(model, (x - centre) / spread, y, config, evaluate, on_epoch)
        click.echo(f"Final validation MSE = {history.test_metric[-1]:.6f}")
        click.echo(f"Training time: {history.seconds:.1f} s")
        title = f"{data_path.name}: [1, {hidden}, 1] {activation}"
        plot_file.write(regression_png(x, y, x_val, y_val, predict, history, title))
        outputs.commit()
    click.echo(f"Plot saved to {plot}")


@main.command(
    epilog=examples(
        "digittrain compare --sizes 8,20 --epochs 10",
        "digittrain compare --data data/processed/mnist --sizes 20 --no-mixed --input-scaling mnist",
    )
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=PROCESSED,
    show_default=True,
    help="Folder with train_SIZE/test_SIZE/test_all_SIZE and train_mixed/test_mixed CSVs (`make dataset`).",
)
@click.option(
    "--sizes",
    default="8,20",
    show_default=True,
    metavar="N[,N...]",
    callback=parse_sizes,
    help="Resolutions to train on, comma-separated: --data's train_SIZE.csv each.",
)
@click.option("--mixed/--no-mixed", default=True, show_default=True, help="Also train on the mixed set.")
@click.option(
    "--ablate",
    "ablate_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A second data folder built without deskew/centre (`make compare` uses PROCESSED/plain): train there too.",
)
@click.option(
    "--baseline/--no-baseline", default=True, show_default=True, help="Add scikit-learn's MLPClassifier per set."
)
@training_options
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where compare.md, compare.csv and compare.png go.",
)
@dpi_option
def compare(data_dir, sizes, mixed, ablate_dir, baseline, out_dir, dpi, **training):
    """Train one configuration per resolution and on the mixed set; test each model on every subset."""
    from digittrain.experiments import chart_png, report_markdown, scores_csv, training_sets
    from digittrain.experiments import compare as run_comparison

    options = training_options_from(training)
    folders = [Path(data_dir)] + ([Path(ablate_dir)] if ablate_dir else [])
    sets = [s for folder in folders for s in training_sets(folder, list(sizes), mixed)]
    out_dir = Path(out_dir)
    with OutputSet() as outputs:  # opened before the runs: an unwritable --out-dir fails now
        table, csv_file, chart = (outputs.open(out_dir / name) for name in ("compare.md", "compare.csv", "compare.png"))
        scores = run_comparison(sets, options, baseline, log=lambda line: click.echo(line, err=True))
        # The command line as typed, for the report; None when called from Python (tests).
        program = Path(sys.argv[0])
        typed = program.name == "digittrain" or program.parts[-2:] == ("digittrain", "__main__.py")
        command = shlex.join(["digittrain", *sys.argv[1:]]) if typed else None
        table.write(report_markdown(scores, options, folders, command).encode())
        csv_file.write(scores_csv(scores))
        chart.write(chart_png(scores, dpi))
        outputs.commit()
    click.echo(f"Report: {out_dir / 'compare.md'} (table), {out_dir / 'compare.csv'}, {out_dir / 'compare.png'}")
