"""`digittrain compare`: the original experiments' question, how accuracy changes with resolution and
on mixed sets, answered in one run.

One training configuration is trained per resolution (``train_SIZE``) and on the mixed set
(``train_mixed``), for each data variant given (deskew+centre on, and off with ``--ablate``). Every
model is tested on its own test set and on every subset of all test rows at its input size
(``test_all_SIZE``, or ``test_mixed``): all rows, the rows of each drawing size (the manifest's
``tag``) and of each origin. scikit-learn's MLPClassifier with the same layers, optimiser and epochs
runs beside it as a baseline. The Makefile's `dataset` target writes the files this reads.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitprep.csvio import StoredDataset, csv_text, read_build_record, read_dataset
from digittrain.data import Dataset, Scaler
from digittrain.fit import TrainingOptions, fit_network
from digittrain.plots import DEFAULT_DPI, figure_bytes, fitted_title, pyplot

OWN_TEST = "own test"
PROJECT_MODEL = "NumPy MLP"
BASELINE_MODEL = "sklearn MLPClassifier"


@dataclass(frozen=True)
class TrainingSet:
    """A training file, the test file that goes with it, and the file its subsets come from."""

    name: str  # "8", "20", "mixed"
    variant: str  # how the pixels were normalised, e.g. "deskew+centre"
    train: Path
    test: Path
    evaluation: Path


@dataclass(frozen=True)
class Score:
    """One model's accuracy on one test subset: a row of compare.csv."""

    variant: str
    trained_on: str
    model: str
    train_rows: int
    seconds: float
    subset: str
    test_rows: int
    accuracy: float


def variant_name(record: dict) -> str:
    """How a data set's pixels were normalised, from its build record."""
    steps = [name for name, key in (("deskew", "deskew"), ("centre", "center")) if record.get(key)]
    return "+".join(steps) if steps else "none"


def training_sets(data_dir: Path, sizes: list[int], mixed: bool) -> list[TrainingSet]:
    """The sets the Makefile writes into ``data_dir``; FileNotFoundError names a missing file."""
    data_dir = Path(data_dir)
    wanted = [(str(size), f"train_{size}", f"test_{size}", f"test_all_{size}") for size in sizes]
    if mixed:
        wanted.append(("mixed", "train_mixed", "test_mixed", "test_mixed"))
    sets = []
    for name, train, test, evaluation in wanted:
        paths = [data_dir / f"{stem}.csv" for stem in (train, test, evaluation)]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"{path}: not found (`make dataset` writes it)")
        sets.append(TrainingSet(name, variant_name(read_build_record(paths[0])), *paths))
    return sets


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def subsets(evaluation: StoredDataset) -> dict[str, np.ndarray]:
    """Named row sets of an evaluation file: all rows, each drawing size ("drawn at 8") and each
    origin; a subset that holds every row (one origin only, say) adds nothing and is left out."""
    n = len(evaluation.labels)
    found = {"all": np.arange(n)}
    for column, title in (("tag", "drawn at {}"), ("origin", "{}")):
        if column not in evaluation.manifest_header:
            continue
        values = np.array(evaluation.column(column))
        for value in sorted(set(values.tolist()) - {""}, key=_natural):
            rows = np.flatnonzero(values == value)
            if len(rows) < n:
                found[title.format(value)] = rows
    return found


def baseline_classifier(options: TrainingOptions):
    """scikit-learn's MLPClassifier set up like the project's network, as far as it can be: the same
    layers and optimiser settings (its activations lack leaky relu and elu: relu stands in)."""
    from sklearn.neural_network import MLPClassifier

    activation = {"sigmoid": "logistic", "tanh": "tanh", "identity": "identity"}.get(options.activation, "relu")
    return MLPClassifier(
        hidden_layer_sizes=options.hidden,
        activation=activation,
        solver={"momentum": "sgd"}.get(options.optimizer, options.optimizer),
        momentum=0.9 if options.optimizer == "momentum" else 0.0,
        alpha=options.l2,
        batch_size=options.batch_size if options.batch_size > 0 else "auto",
        learning_rate_init=options.lr,
        max_iter=options.epochs,
        shuffle=True,
        random_state=options.seed,
        n_iter_no_change=options.epochs + 1,  # run every epoch, as the project does
    )


def evaluate_set(training: TrainingSet, options: TrainingOptions, baseline: bool, log=lambda line: None) -> list[Score]:
    """Train on one set (the project's MLP, and the baseline when asked); score every subset."""
    train_data = read_dataset(training.train)
    test_data = read_dataset(training.test)
    evaluation = test_data if training.evaluation == training.test else read_dataset(training.evaluation)
    for path, other in ((training.test, test_data), (training.evaluation, evaluation)):
        if other.pixels.shape[1] != train_data.pixels.shape[1]:
            raise ValueError(
                f"{path}: {other.pixels.shape[1]} pixels per row, but {training.train} has {train_data.pixels.shape[1]}"
            )
    train_set = Dataset(train_data.pixels, train_data.labels, train_data.classes)
    scaler = Scaler.fit(options.scale, train_set.pixels)
    x = scaler.transform(train_set.pixels)
    tests = {OWN_TEST: Dataset(test_data.pixels, test_data.labels, train_set.classes)}
    same_rows = np.array_equal(test_data.pixels, evaluation.pixels) and np.array_equal(
        test_data.labels, evaluation.labels
    )
    for name, rows in subsets(evaluation).items():
        if name == "all" and same_rows:  # MNIST: the own test set is every test row; one column says it
            continue
        tests[name] = Dataset(evaluation.pixels[rows], evaluation.labels[rows], train_set.classes)
    inputs = {name: scaler.transform(data.pixels) for name, data in tests.items()}
    scores = []

    def record(model_name: str, seconds: float, predict) -> None:
        for name, data in tests.items():
            correct = predict(inputs[name]) == data.class_index
            row = Score(
                training.variant, training.name, model_name, len(x), seconds, name, len(data.labels), correct.mean()
            )
            scores.append(row)
        own = next(s for s in scores[::-1] if s.model == model_name and s.subset == OWN_TEST)
        log(
            f"{model_name} on {training.name} ({training.variant}): {own.accuracy:.4f} on its own test set, "
            f"{len(x)} training rows, {seconds:.1f} s"
        )

    model, history = fit_network(x, train_set.class_index, len(train_set.classes), options)
    record(PROJECT_MODEL, history.seconds, model.predict)
    if baseline:
        from sklearn.exceptions import ConvergenceWarning

        classifier = baseline_classifier(options)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(x, train_set.class_index)
        record(BASELINE_MODEL, time.perf_counter() - started, classifier.predict)
    return scores


def compare(sets: list[TrainingSet], options: TrainingOptions, baseline: bool, log=lambda line: None) -> list[Score]:
    """Every training set trained and scored, in order."""
    return [score for training in sets for score in evaluate_set(training, options, baseline, log)]


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def subset_order(scores: list[Score]) -> list[str]:
    """Subsets in reading order: own test, all, drawing sizes, then origins."""
    names = list(dict.fromkeys(s.subset for s in scores))
    drawn = sorted((n for n in names if n.startswith("drawn at ")), key=_natural)
    rest = [n for n in names if n not in (OWN_TEST, "all") and n not in drawn]
    return [n for n in (OWN_TEST, "all") if n in names] + drawn + rest


def model_rows(scores: list[Score]) -> list[tuple[tuple, dict[str, Score]]]:
    """One entry per trained model, (model, trained on, variant, train rows, seconds) -> its scores."""
    rows: dict[tuple, dict[str, Score]] = {}
    for score in scores:
        key = (score.model, score.trained_on, score.variant, score.train_rows, score.seconds)
        rows.setdefault(key, {})[score.subset] = score
    return list(rows.items())


# compare.png's colour scale, the same in every run so that a colour always means the same accuracy:
# the cells that matter sit between 96 and 99.5 %, which a 0-100 scale paints one colour. A cell
# under the scale's low end is grey, its number printed on it as on every cell.
CHART_RANGE = (90.0, 100.0)


@dataclass(frozen=True)
class AccuracyGrid:
    """Test accuracy per trained model (rows) and test subset (columns), as compare.md and
    compare.png show it."""

    rows: list[str]  # "model | trained on | normalised"
    columns: list[str]  # test subsets, in ``subset_order``
    percent: np.ndarray  # (rows, columns) float64 test accuracy in %, NaN where a model lacks the subset
    best: np.ndarray  # (rows, columns) bool: the column's highest value as printed (ties all marked; none
    # in a column whose cells all read the same: no cell stands out)


def accuracy_grid(scores: list[Score]) -> AccuracyGrid:
    """The scores as an AccuracyGrid: one row per trained model, one column per test subset."""
    columns = subset_order(scores)
    models = model_rows(scores)
    percent = np.full((len(models), len(columns)), np.nan)
    for i, (_, by_subset) in enumerate(models):
        for j, column in enumerate(columns):
            if column in by_subset:
                percent[i, j] = 100 * by_subset[column].accuracy
    # Judged on the values as printed (one decimal): two cells that read 99.1 are both the best.
    shown = np.array([[float(_percent(v / 100)) if np.isfinite(v) else -np.inf for v in row] for row in percent])
    top = shown.max(axis=0, initial=-np.inf)
    lower = ((shown < top) & np.isfinite(shown)).any(axis=0)  # some cell in the column reads less
    best = np.isfinite(shown) & (shown == top) & lower
    labels = [f"{model} | {trained_on} | {variant}" for (model, trained_on, variant, _, _), _ in models]
    return AccuracyGrid(labels, columns, percent, best)


def markdown_table(scores: list[Score]) -> str:
    """The table a person reads at a glance: test accuracy (%) per model and subset, the best of
    each column in bold."""
    grid = accuracy_grid(scores)
    header = ["model", "trained on", "normalised", "train rows", "time (s)", *grid.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]
    for i, ((model, trained_on, variant, rows, seconds), _) in enumerate(model_rows(scores)):
        cells = [model, trained_on, variant, str(rows), f"{seconds:.1f}"]
        for value, best in zip(grid.percent[i], grid.best[i]):
            text = _percent(value / 100) if np.isfinite(value) else "-"
            cells.append(f"**{text}**" if best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def subset_sizes(scores: list[Score]) -> str:
    """How many test rows each subset column stands for, per training set."""
    parts = []
    for trained_on in dict.fromkeys(s.trained_on for s in scores):
        sizes = {s.subset: s.test_rows for s in scores if s.trained_on == trained_on}
        parts.append(
            f"{trained_on}: " + ", ".join(f"{name} {sizes[name]}" for name in subset_order(scores) if name in sizes)
        )
    return "; ".join(parts)


def report_markdown(scores: list[Score], options: TrainingOptions, data_dirs: list[Path], command: str | None) -> str:
    """reports/compare.md."""
    return (
        "# Accuracy per resolution and on the mixed set\n\n"
        + (f"Produced by `{command}`.\n\n" if command else "")
        + f"- Data: {', '.join(f'`{d}`' for d in data_dirs)}. Each model is trained on `train_SIZE` (the rows "
        "drawn at that size, when the data carries drawing-size tags) or `train_mixed` (every row at the "
        "mixed size), and tested on its own test set and on every subset of all test rows at its input size.\n"
        f"- Configuration: {options.describe()}.\n"
        f"- Baseline: scikit-learn's MLPClassifier with the same layers, optimiser, L2 and epochs.\n"
        f"- Test rows per subset: {subset_sizes(scores)}.\n\n"
        f"Test accuracy, %; the best of each column in bold. compare.png shows the same table, coloured on "
        f"a fixed {CHART_RANGE[0]:g}-{CHART_RANGE[1]:g} % scale (grey below):\n\n" + markdown_table(scores)
    )


def scores_csv(scores: list[Score]) -> bytes:
    """compare.csv: one row per model and test subset."""
    header = list(Score.__dataclass_fields__)
    rows = [
        (s.variant, s.trained_on, s.model, s.train_rows, f"{s.seconds:.3f}", s.subset, s.test_rows, f"{s.accuracy:.4f}")
        for s in scores
    ]
    return csv_text(header, rows)


def chart_figure(scores: list[Score]):
    """compare.png's picture, a matplotlib Figure: the AccuracyGrid as an annotated heatmap, each
    cell's accuracy printed on it, coloured on the fixed CHART_RANGE scale, each column's best
    cells outlined."""
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    plt = pyplot()
    grid = accuracy_grid(scores)
    n_rows, n_columns = grid.percent.shape
    colours = plt.get_cmap("viridis").with_extremes(under="lightgrey", bad="white")
    figure, axes = plt.subplots(figsize=(4 + 1.0 * n_columns, 1.8 + 0.4 * n_rows), layout="constrained")
    image = axes.imshow(grid.percent, cmap=colours, norm=Normalize(*CHART_RANGE), aspect="auto")
    axes.set_xticks(range(n_columns), grid.columns, rotation=30, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(n_rows), grid.rows)
    axes.set(xlabel="test subset", ylabel="model | trained on | normalised")
    axes.tick_params(length=0)
    for (i, j), value in np.ndenumerate(grid.percent):
        if not np.isfinite(value):
            axes.text(j, i, "-", ha="center", va="center", fontsize=9, color="grey")
            continue
        red, green, blue, _ = image.to_rgba(value)
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on a dark cell
        weight = "bold" if grid.best[i, j] else "normal"
        axes.text(
            j,
            i,
            _percent(value / 100),
            ha="center",
            va="center",
            fontsize=9,
            fontweight=weight,
            color="white" if dark else "black",
        )
        if grid.best[i, j]:
            axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="crimson", linewidth=2.5))
    low, high = CHART_RANGE
    figure.colorbar(
        image, ax=axes, extend="min", label=f"test accuracy (%), fixed {low:g}-{high:g}; grey: below {low:g}"
    )
    fitted_title(figure, "Test accuracy (%) per trained model and test subset; the best of each column outlined")
    return figure


def chart_png(scores: list[Score], dpi: int = DEFAULT_DPI) -> bytes:
    """compare.png: ``chart_figure`` as PNG bytes at ``dpi``."""
    return figure_bytes(chart_figure(scores), "png", dpi)
