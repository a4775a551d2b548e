"""Report-ready figures: the format from the file's ending, --dpi, titles that fit, learning curves
with the held-out loss named for what it is, the per-epoch history CSV, the compare heatmap on a
fixed colour scale with each column's best marked, and training options that are not finite."""

import csv
import io
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import halves_csv
from PIL import Image

import digitprep.cli
from digitprep.csvio import write_onehot_csv
from digitprep.sheet import encode_sheet
from digittrain.cli import main
from digittrain.data import smoothed_targets
from digittrain.experiments import CHART_RANGE, Score, accuracy_grid, chart_figure, chart_png, markdown_table
from digittrain.fit import TrainingOptions
from digittrain.modelio import load_model
from digittrain.plots import figure_bytes, figure_format, pyplot
from digittrain.reports import history_columns, learning_curves_figure
from digittrain.train import History, mean_loss

PNG = b"\x89PNG\r\n\x1a\n"
MAGIC = {".png": PNG, ".pdf": b"%PDF-", ".svg": b"<?xml"}


def toy_csv(path, n=200, seed=0):
    return halves_csv(path, n, seed)


def train(tmp_path, *args):
    base = ["--train", toy_csv(tmp_path / "train.csv"), "--hidden", "8", "--lr", "0.01", "--batch-size", "16"]
    return CliRunner().invoke(main, [str(a) for a in [*base, "--results", tmp_path / "r.csv", *args]])


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("ending", [".png", ".pdf", ".svg", ".PDF"])
def test_plot_is_written_in_the_format_its_name_ends_with(tmp_path, ending):
    result = train(tmp_path, "--epochs", 2, "--plot", tmp_path / f"curves{ending}")
    assert result.exit_code == 0, result.output
    data = (tmp_path / f"curves{ending}").read_bytes()
    assert data.startswith(MAGIC[ending.lower()])
    if ending == ".svg":
        assert b"<svg" in data[:500] and b"</svg>" in data[-20:]
    if ending == ".png":  # 10 x 4.2 inches at the default 150 dpi
        image = Image.open(io.BytesIO(data))
        assert image.size == (1500, 630) and round(image.info["dpi"][0]) == 150


def test_dpi_sets_the_png_resolution(tmp_path):
    result = train(tmp_path, "--epochs", 2, "--plot", tmp_path / "c.png", "--dpi", 100)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "c.png").size == (1000, 420)


def test_the_same_run_gives_the_same_pdf_and_svg_bytes(tmp_path):
    for name in ("a", "b"):
        for ending in (".pdf", ".svg"):
            assert train(tmp_path, "--epochs", 2, "--plot", tmp_path / f"{name}{ending}").exit_code == 0
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


@pytest.mark.parametrize("name", ["curves.jpg", "curves"])
def test_an_unknown_ending_is_refused_before_the_training(tmp_path, name):
    result = train(tmp_path, "--epochs", 2, "--plot", tmp_path / name)
    assert result.exit_code == 2 and "Traceback" not in result.output
    what = "unknown figure format '.jpg'" if name.endswith(".jpg") else "no figure format"
    expected = f"Error: Invalid value for '--plot': {tmp_path / name}: {what} (the name's ending picks it: .png, "
    assert result.output.splitlines()[-1] == expected + ".pdf or .svg)"
    assert "Epoch" not in result.output and not (tmp_path / "r.csv").exists() and not (tmp_path / name).exists()
    with pytest.raises(ValueError, match=r"unknown figure format '\.gif'"):
        figure_format(tmp_path / "x.gif")


def test_evaluate_writes_its_confusion_matrix_in_the_format_asked(tmp_path):
    assert train(tmp_path, "--epochs", 2, "--save", tmp_path / "m.npz").exit_code == 0
    args = ["evaluate", tmp_path / "m.npz", "--test", tmp_path / "train.csv", "--confusion", tmp_path / "m.svg"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert b"<svg" in (tmp_path / "m.svg").read_bytes()[:500]
    bad = CliRunner().invoke(main, [str(a) for a in [*args[:-1], tmp_path / "m.tiff"]])
    assert bad.exit_code == 2 and "unknown figure format '.tiff'" in bad.output.splitlines()[-1]


def write_sheet_csv(path):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 2)
    write_onehot_csv(path, rng.integers(0, 256, (20, 64)).astype(np.uint8), labels, tuple(range(10)))


@pytest.mark.parametrize("ending", [".pdf", ".svg", ".png"])
def test_show_writes_the_format_its_name_ends_with(tmp_path, ending):
    write_sheet_csv(tmp_path / "d.csv")
    out = tmp_path / f"sheet{ending}"
    result = CliRunner().invoke(digitprep.cli.main, ["show", str(tmp_path / "d.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC[ending])
    if ending == ".png":  # the sheet's own pixels, grey, its resolution recorded
        image = Image.open(out)
        assert image.mode == "L" and round(image.info["dpi"][0]) == 150


def test_show_refuses_an_unknown_ending_before_reading(tmp_path):
    out = tmp_path / "sheet.bmp"
    (tmp_path / "d.csv").write_text("not a data set\n")  # never read: the name is refused first
    result = CliRunner().invoke(digitprep.cli.main, ["show", str(tmp_path / "d.csv"), "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for '--out': {out}: unknown figure format '.bmp' (the name's ending picks it: "
        ".png, .pdf or .svg)"
    )


def test_a_sheet_keeps_its_pixels_in_every_format():
    sheet = (np.arange(37 * 53) % 256).astype(np.uint8).reshape(37, 53)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_sheet(sheet, "png", 96)))), sheet)
    pdf = encode_sheet(sheet, "pdf", 100)
    assert b"/Width 53" in pdf and b"/Height 37" in pdf  # the image is embedded at its own size...
    assert b"/MediaBox [ 0 0 38.16 26.64 ]" in pdf  # ...on a page of 53 x 37 pixels at 100 per inch, in points
    svg = encode_sheet(sheet, "svg", 100)
    assert b'width="38.16pt" height="26.64pt"' in svg


def test_history_csv_has_one_row_per_epoch_with_the_documented_columns(tmp_path):
    result = train(tmp_path, "--epochs", 4, "--history", tmp_path / "h.csv", "--save", tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    assert f"History saved to {tmp_path / 'h.csv'}" in result.output
    header = (tmp_path / "h.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,validation_loss,train_accuracy,validation_accuracy,lr,seconds"
    assert history_columns("validation") == header.split(",")
    rows = read_rows(tmp_path / "h.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    printed = [line for line in result.output.splitlines() if line.startswith("Epoch")]
    for row, line in zip(rows, printed):  # the same numbers as the report lines
        loss = line.split("loss=")[1].split(",")[0]
        train_acc, val_acc = line.split("accuracy=")[1].split("/")
        assert f"{float(row['train_loss']):.3f}" == loss
        assert (f"{float(row['train_accuracy']):.3f}", f"{float(row['validation_accuracy']):.3f}") == (
            train_acc,
            val_acc,
        )
        assert float(row["lr"]) == 0.01 and 0 <= float(row["seconds"]) < 5
    losses = [float(row["validation_loss"]) for row in rows]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    # The held-out loss is the saved model's loss on the held-out rows: the 20% split, re-made here.
    model, scaler, metadata = load_model(tmp_path / "m.npz")
    from digitprep.split import stratified_split
    from digittrain.data import load_dataset

    data = load_dataset(tmp_path / "train.csv")
    _, held_rows = stratified_split(data.labels, 0.2, 0)
    held = data.subset(held_rows)
    targets = smoothed_targets(held.class_index, 2)
    expected = mean_loss(model, scaler.transform(held.pixels), targets, "softmax_cross_entropy")
    assert float(rows[-1]["validation_loss"]) == pytest.approx(expected, rel=1e-5)
    results = read_rows(tmp_path / "r.csv")[-1]
    assert float(results["test_loss"]) == pytest.approx(expected, rel=1e-5) and results["interrupted"] == ""
    assert metadata["metrics"]["test_loss"] == pytest.approx(expected, rel=1e-5)


def test_with_a_test_file_the_held_out_columns_say_test(tmp_path):
    test_csv = toy_csv(tmp_path / "test.csv", seed=1)
    result = train(tmp_path, "--epochs", 2, "--test", test_csv, "--history", tmp_path / "h.csv")
    assert result.exit_code == 0, result.output
    header = (tmp_path / "h.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,test_loss,train_accuracy,test_accuracy,lr,seconds"


def history_of(epochs=3, interrupted=False):
    history = History(interrupted=interrupted)
    history.epoch = [1, 2, 2.5][:epochs] if interrupted else list(range(1, epochs + 1))
    history.loss = [0.9, 0.5, 0.3][:epochs]
    history.held_out_loss = [1.0, 0.6, 0.45][:epochs]
    history.train_metric = [0.7, 0.85, 0.9][:epochs]
    history.test_metric = [0.65, 0.8, 0.84][:epochs]
    return history


@pytest.mark.parametrize("held_out", ["validation", "test"])
def test_learning_curves_show_both_losses_and_name_the_held_out_rows(held_out):
    figure = learning_curves_figure(history_of(), "t", held_out)
    loss_axes, metric_axes = figure.axes
    for axes in (loss_axes, metric_axes):
        assert [text.get_text() for text in axes.get_legend().get_texts()] == ["train", held_out]
    train_line, held_line = loss_axes.get_lines()[:2]
    assert list(held_line.get_ydata()) == [1.0, 0.6, 0.45] and list(train_line.get_ydata()) == [0.9, 0.5, 0.3]
    assert loss_axes.get_yscale() == "log"
    pyplot().close(figure)


def test_a_long_title_is_wrapped_inside_the_figure():
    title = "train_20.csv: " + ", ".join(f"option {i} with a long value {i * 7}" for i in range(12))
    figure = learning_curves_figure(history_of(), title)
    figure.canvas.draw()  # lays the figure out, as saving it does
    renderer = figure.canvas.get_renderer()
    box = next(t for t in figure.texts if t.get_text() == figure.get_suptitle()).get_window_extent(renderer)
    assert figure.get_suptitle().count("\n") >= 2
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width and box.y1 <= figure.bbox.height
    for axes in figure.axes:  # constrained layout keeps the axes clear of the wrapped title
        assert axes.get_window_extent(renderer).y1 < box.y0
    pyplot().close(figure)


def test_an_interrupted_history_is_marked_in_the_title():
    figure = learning_curves_figure(history_of(interrupted=True), "run")
    assert figure.get_suptitle() == "run (interrupted after 2.5 epochs)"
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [1, 2, 2.5]
    pyplot().close(figure)


def scores_for(values: dict[tuple[str, str], dict[str, float]]) -> list[Score]:
    """Scores of (model, trained on) -> {subset: accuracy}."""
    return [
        Score("deskew+centre", trained_on, model, 100, 1.0, subset, 50, accuracy)
        for (model, trained_on), by_subset in values.items()
        for subset, accuracy in by_subset.items()
    ]


SCORES = scores_for(
    {
        ("NumPy MLP", "8"): {"own test": 0.961, "all": 0.9712, "drawn at 8": 0.99},
        ("NumPy MLP", "20"): {"own test": 0.9912, "all": 0.9714, "drawn at 8": 0.85},
        ("sklearn MLPClassifier", "20"): {"own test": 0.9908, "all": 0.955},
    }
)


def test_the_accuracy_grid_holds_every_cell_and_marks_each_columns_best():
    grid = accuracy_grid(SCORES)
    assert grid.columns == ["own test", "all", "drawn at 8"]
    assert grid.rows == [
        "NumPy MLP | 8 | deskew+centre",
        "NumPy MLP | 20 | deskew+centre",
        "sklearn MLPClassifier | 20 | deskew+centre",
    ]
    expected = [[96.1, 97.12, 99.0], [99.12, 97.14, 85.0], [99.08, 95.5, np.nan]]
    np.testing.assert_allclose(grid.percent, expected)
    # 99.12 and 99.08 both read 99.1: both best; 97.12 and 97.14 both read 97.1
    assert grid.best.tolist() == [[False, True, True], [True, True, False], [True, False, False]]
    same = scores_for({("NumPy MLP", "8"): {"all": 1.0, "a": 0.9}, ("NumPy MLP", "20"): {"all": 1.0, "a": 0.95}})
    assert accuracy_grid(same).best.tolist() == [[False, False], [False, True]]  # both 100.0: none stands out


def test_compare_md_puts_each_columns_best_in_bold():
    table = markdown_table(SCORES)
    assert "| NumPy MLP | 8 | deskew+centre | 100 | 1.0 | 96.1 | **97.1** | **99.0** |" in table
    assert "| NumPy MLP | 20 | deskew+centre | 100 | 1.0 | **99.1** | **97.1** | 85.0 |" in table
    assert "| sklearn MLPClassifier | 20 | deskew+centre | 100 | 1.0 | **99.1** | 95.5 | - |" in table


def test_the_heatmap_prints_every_cell_on_a_fixed_colour_scale():
    assert chart_png(SCORES)[:8] == PNG
    figure = chart_figure(SCORES)
    axes = figure.axes[0]
    image = axes.get_images()[0]
    assert (image.norm.vmin, image.norm.vmax) == CHART_RANGE == (90.0, 100.0)
    np.testing.assert_allclose(image.get_array().filled(np.nan), accuracy_grid(SCORES).percent)
    texts = sorted(text.get_text() for text in axes.texts)
    assert texts == sorted(["96.1", "97.1", "99.0", "99.1", "97.1", "85.0", "99.1", "95.5", "-"])
    assert sum(text.get_fontweight() == "bold" for text in axes.texts) == 5
    assert len(axes.patches) == 5  # the best cells outlined
    # The same accuracy is the same colour whatever else a run holds; 96 and 99 are told apart.
    other = chart_figure(scores_for({("NumPy MLP", "8"): {"own test": 0.97, "all": 0.5}}))
    other_image = other.axes[0].get_images()[0]
    assert np.allclose(image.to_rgba(97.0), other_image.to_rgba(97.0))
    assert np.abs(np.subtract(image.to_rgba(96.0), image.to_rgba(99.0))).max() > 0.3
    assert np.allclose(image.to_rgba(85.0), other_image.to_rgba(50.0))  # below the scale: one grey
    assert image.to_rgba(85.0)[:3] == pytest.approx((0.827, 0.827, 0.827), abs=0.01)
    pyplot().close(figure)
    pyplot().close(other)


def test_figure_bytes_follow_the_format():
    plt = pyplot()
    for fmt, magic in (("png", PNG), ("pdf", b"%PDF-"), ("svg", b"<?xml")):
        figure, _ = plt.subplots()
        assert figure_bytes(figure, fmt).startswith(magic)


NON_FINITE = [
    ("--lr", "nan"),
    ("--lr", "inf"),
    ("--l2", "nan"),
    ("--l2", "inf"),
    ("--label-smoothing", "nan"),
    ("--val-split", "nan"),
    ("--loss-target", "nan"),
    ("--loss-target", "inf"),
]


@pytest.mark.parametrize(("option", "value"), NON_FINITE)
def test_a_training_option_that_is_not_finite_is_one_line_naming_it(tmp_path, option, value):
    result = train(tmp_path, "--epochs", 2, option, value, "--save", tmp_path / "m.npz")
    assert result.exit_code == 2 and "Traceback" not in result.output and "--lr (now" not in result.output
    assert result.output.splitlines()[-1] == f"Error: Invalid value for '{option}': {value!r} is not a finite number."
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("std", ["nan", "inf", "-0.1", "x"])
def test_an_init_std_that_is_not_a_finite_number_is_one_line(tmp_path, std):
    result = train(tmp_path, "--epochs", 2, "--init", f"normal:{std}")
    assert result.exit_code == 2 and "Traceback" not in result.output and "--lr (now" not in result.output
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for --init: bad initialiser 'normal:{std}': normal:STD needs a finite number "
        "from 0 up, e.g. normal:0.003"
    )


def test_compare_refuses_them_too(tmp_path):
    result = CliRunner().invoke(main, ["compare", "--data", str(tmp_path), "--l2", "nan"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "Error: Invalid value for '--l2': 'nan' is not a finite number."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", math.nan, "lr must be a number above 0, not nan"),
        ("lr", 0.0, "lr must be a number above 0, not 0.0"),
        ("l2", math.inf, "l2 must be a number from 0 up, not inf"),
        ("label_smoothing", math.nan, "label_smoothing must be a share from 0 to below 1, not nan"),
        ("loss_target", math.nan, "loss_target must be a number from 0 up, not nan"),
        ("init", "normal:nan", "normal:STD needs a finite number from 0 up"),
    ],
)
def test_training_options_refuse_what_the_command_line_refuses(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions(**{field: value})
