"""A loss that explodes, finite or not, stops the training as diverged: one line, exit 1, nothing saved.

The rule (``check_divergence``) compares each batch's loss and each epoch's mean with the untrained
network's loss on the same rows; the field runs in ../shared/field/loss-explodes (skipped when
absent) and runs of the same three kinds on data built here must trip it, and losses that merely
wobble must not.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digitprep.csvio import write_onehot_csv
from digittrain.cli import main
from digittrain.model import MLP
from digittrain.train import (
    BATCH_BLOWUP,
    EPOCH_BLOWUP,
    START_ROWS,
    TrainConfig,
    TrainingDiverged,
    check_divergence,
    train,
    untrained_loss,
)

FIELD = Path(__file__).resolve().parents[2] / "shared" / "field" / "loss-explodes"
ROSE = re.compile(
    r"Error: loss rose to (\S+) in epoch (\d+), (\S+) times the untrained network's (\S+): "
    r"training diverged; try a lower --lr \(now (\S+)\)"
)

# The three runs of the field case: (options, the epoch the rule stops it in, --lr as the hint prints it).
# Measured before the rule: the loss reached 9.99e33 in epoch 1; 8.69e16 in epoch 1; 2.49, 7.97,
# 1440, 1.78e5, 3.72e5 over five full-batch epochs; each exited 0 and saved its model.
KINDS = [
    ("--hidden 32,32 --activation elu --optimizer sgd --lr 3 --batch-size 1 --epochs 3", 1, "3"),
    ("--hidden 32 --optimizer momentum --lr 10000 --batch-size 16 --epochs 3", 1, "10000"),
    ("--hidden 32 --activation identity --optimizer sgd --lr 5 --batch-size 0 --epochs 5", 4, "5"),
]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_diverged(result, folder: Path, lr: str) -> tuple[float, int, float, float]:
    """Exit 1, one `loss rose to ...` line on stderr, no model, no temporaries; the line's numbers."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    match = ROSE.fullmatch(line)
    assert match, line
    loss, epoch, ratio, start = float(match[1]), int(match[2]), float(match[3]), float(match[4])
    assert match[5] == lr
    assert math.isfinite(loss) and loss > EPOCH_BLOWUP * start
    assert ratio == pytest.approx(loss / start, rel=0.06)  # both printed to 2 significant digits
    assert "Model saved" not in result.output and not (folder / "m.npz").exists()
    assert list(folder.rglob(".*.tmp")) == []
    return loss, epoch, ratio, start


def epoch_lines(result) -> list[str]:
    return [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("Epoch")]


# --- the field runs -------------------------------------------------------------------------------


@pytest.mark.parametrize("options, epoch, lr", KINDS)
def test_the_field_runs_stop_as_diverged_with_nothing_saved(tmp_path, options, epoch, lr):
    if not (FIELD / "d8_train.csv").exists():
        pytest.skip("../shared/field/loss-explodes is absent")
    data = ("--train", FIELD / "d8_train.csv", "--test", FIELD / "d8_test.csv")
    outputs = ("--save", tmp_path / "m.npz", "--results", tmp_path / "r.csv")
    result = invoke(*data, *options.split(), *outputs)
    _, stopped_in, _, start = assert_diverged(result, tmp_path, lr)
    assert stopped_in == epoch
    assert start == pytest.approx(2.5, abs=0.2)  # ten classes: about ln 10 = 2.30 before any update
    assert not (tmp_path / "r.csv").exists()
    assert epoch_lines(result) == [f"Epoch {e}" for e in range(1, epoch)]


# --- the same kinds on data built here ------------------------------------------------------------


def noisy_prototypes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 rows of ten classes: one fixed random image per class plus Gaussian noise (sd 40 of 255)."""
    prototypes = np.random.default_rng(99).integers(0, 256, (10, 64))
    labels = np.arange(n) % 10
    noise = np.random.default_rng(seed).normal(0, 40, (n, 64))
    return np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8), labels


@pytest.fixture
def prototype_csvs(tmp_path):
    paths = tmp_path / "train.csv", tmp_path / "test.csv"
    for path, n, seed in zip(paths, (120, 60), (0, 1)):
        write_onehot_csv(path, *noisy_prototypes(n, seed), tuple(range(10)))
    return paths


@pytest.mark.parametrize("options, epoch, lr", KINDS)
def test_each_kind_on_built_data_stops_without_touching_the_outputs(tmp_path, prototype_csvs, options, epoch, lr):
    train_csv, test_csv = prototype_csvs
    results = tmp_path / "r.csv"
    # A sane run on the same data trains, saves and writes its row: the data is not what fails.
    sane = "--hidden 32 --lr 0.01 --batch-size 16 --epochs 10".split()
    sane = invoke("--train", train_csv, "--test", test_csv, *sane, "--results", results)
    assert sane.exit_code == 0, sane.output
    assert float(re.search(r"final accuracy = (\S+)", sane.output)[1]) >= 0.9
    before = results.read_bytes()
    result = invoke(
        "--train", train_csv, "--test", test_csv, *options.split(), "--save", tmp_path / "m.npz", "--results", results
    )
    _, stopped_in, _, _ = assert_diverged(result, tmp_path, lr)
    assert results.read_bytes() == before  # no row for a diverged run
    if epoch == 1:  # an explosion inside the first epoch: stopped there, by the per-batch check
        assert stopped_in == 1 and epoch_lines(result) == []
    else:  # growth over full-batch epochs: epochs 1 and 2 are reported, then it stops (epoch 5 here)
        assert stopped_in >= 3 and epoch_lines(result)[:2] == ["Epoch 1", "Epoch 2"]


# The accuracy evaluated after epoch 1, with weights near 1e30, overflows in the matmul: expected here.
@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
def test_a_nan_loss_keeps_its_message(tmp_path, prototype_csvs):
    # lr 1e30 on the one full batch of 120 rows: epoch 1's loss is the untrained one, the update makes
    # weights near 1e30, and epoch 2's logits overflow to a NaN loss before any finite loss is large.
    train_csv, test_csv = prototype_csvs
    options = "--hidden 8 --optimizer sgd --lr 1e30 --epochs 3".split()
    outputs = ("--save", tmp_path / "m.npz", "--results", tmp_path / "r.csv")
    result = invoke("--train", train_csv, "--test", test_csv, *options, *outputs)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == "Error: loss became nan in epoch 2: training diverged; try a lower --lr (now 1e+30)"
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "r.csv").exists()


# --- the rule on loss sequences -------------------------------------------------------------------


def first_trip(losses, start: float, limit: float = EPOCH_BLOWUP) -> tuple[int | None, str]:
    """The epoch at which ``check_divergence`` stops these per-epoch losses, and its message."""
    for epoch, loss in enumerate(losses, 1):
        try:
            check_divergence(loss, start, limit, epoch, 0.1)
        except TrainingDiverged as exc:
            return epoch, str(exc)
    return None, ""


@pytest.mark.parametrize(
    "start, losses, epoch",
    [
        (2.49, [2.49, 7.97, 1440, 1.78e5, 3.72e5], 4),  # the field's full-batch run
        (2.30, [2.1, 30, 300, 2000, 3000], 5),  # ten times worse every epoch
        (2.30, [0.4, 0.05, 0.01, 5e3], 4),  # well trained, then blown up in one epoch
        (2.30, [0.4, 0.1, math.nan], 3),
        (2.30, [0.4, math.inf], 2),
        (3.1e11, [2.5e11, 8e10, 4e14], 3),  # a regression with y near 1e6, blown up
        (1.8e-6, [1e-6, 2e-7, 0.01], 3),  # a regression with y near 1e-3 predicting values near 0.1
    ],
)
def test_an_exploding_sequence_trips_at_the_right_epoch(start, losses, epoch):
    tripped, message = first_trip(losses, start)
    assert tripped == epoch
    assert f"in epoch {epoch}" in message and message.endswith("training diverged; try a lower --lr (now 0.1)")
    assert "\n" not in message


@pytest.mark.parametrize(
    "start, losses",
    [
        (2.30, [0.41, 0.05, 4e-3, 5e-4, 0.6, 0.02, 5e-4]),  # a trained net at 5e-4 spikes to 0.6: 1200x its minimum
        (2.30, [0.9, 0.6, 0.52, 0.55, 0.51, 0.58, 0.52]),  # label smoothing 0.1: a floor near 0.5 never crossed
        (2.30, [1.9, 0.9, 0.5, 0.3, 0.2, 0.15, 0.12, 0.1]),  # a normal decreasing run
        (2.30, [2.1, 8.0, 40.0, 1.5, 0.6]),  # an early catapult that recovers: 17 times the start
        (3.1e11, [2.5e11, 8e10, 9e10, 2e10, 3e10, 5e9]),  # regression-scale MSE, y near 1e6
        (0.25, [0.08, 2e-3, 4e-4, 5e-4, 3e-2, 4e-4]),  # the parabola fit, with a spike 75x its minimum
    ],
)
def test_a_wobbling_sequence_does_not_trip(start, losses):
    assert first_trip(losses, start) == (None, "")


def test_one_batch_trips_on_an_explosion_but_not_on_an_outlier():
    # The field's batch-size-1 run, batch by batch in epoch 1: stopped at the fourth, 1.7e7 times the start.
    batches = [2.56, 5.34, 4.47e4, 4.27e7, 6.1e14]
    for loss in batches[:3]:
        check_divergence(loss, 2.49, BATCH_BLOWUP, 1, 3.0)
    with pytest.raises(TrainingDiverged) as stopped:
        check_divergence(batches[3], 2.49, BATCH_BLOWUP, 1, 3.0)
    assert str(stopped.value) == (
        "loss rose to 4.3e+07 in epoch 1, 1.7e+07 times the untrained network's 2.49: "
        "training diverged; try a lower --lr (now 3)"
    )
    # One row 300 standard deviations off the mean: 9e4 times the mean square, a batch alone can carry it.
    for loss in [1.2, 0.4, 9e4, 0.3]:
        check_divergence(loss, 1.0, BATCH_BLOWUP, 1, 0.1)


# --- the start the rule measures against ----------------------------------------------------------


def test_untrained_loss_is_the_loss_of_the_network_as_initialised():
    model = MLP([4, 3, 5], ["relu"], "he", 0)
    model.flat[:] = 0  # zero logits: every class at 1/5
    onehot = np.eye(5, dtype=np.float32)[np.arange(20) % 5]
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert untrained_loss(model, x, onehot, "softmax_cross_entropy") == pytest.approx(math.log(5), rel=1e-6)
    y = np.full((20, 5), 1e3, np.float32)  # MSE sums over outputs: 5 * 1e6, at whatever scale y has
    assert untrained_loss(model, x, y, "mse") == pytest.approx(5e6, rel=1e-6)
    model.flat[: model.n_weight_values] = 1e30  # overflowing logits: no ratio to judge by
    assert untrained_loss(model, x, onehot, "softmax_cross_entropy") == math.inf


def test_untrained_loss_reads_an_even_sample_of_a_large_set():
    model = MLP([1, 1], [], "he", 0)
    model.flat[:] = 0
    n = 10 * START_ROWS
    x = np.zeros((n, 1), np.float32)
    y = np.repeat(np.arange(10, dtype=np.float32), START_ROWS)[:, None]  # sorted: the first rows are all 0
    # every tenth row: 0..9 in equal shares, mean square 28.5 as over all the rows
    assert untrained_loss(model, x, y, "mse") == pytest.approx(np.mean(y**2), rel=1e-3)  # float32 sums


def test_a_regression_with_large_y_trains_and_a_blown_up_one_stops():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.7, 1.7, (300, 1)).astype(np.float32)  # as `regress` standardises it
    y = (1e6 * (x**2 + rng.normal(0, 0.02, x.shape))).astype(np.float32)

    def network():
        return MLP([1, 4, 4, 1], ["leaky_relu"] * 2, "he", 0)  # `regress`'s default network

    history = train(network(), x, y, TrainConfig("adam", 0.01, 30, 16, loss="mse"), lambda m: (0.0, 0.0))
    # Losses near 2e11 all along, slowly falling: large, but the untrained network's is as large.
    assert len(history.loss) == 30 and min(history.loss) > 1e11 and history.loss[-1] < history.loss[0]
    with pytest.raises(
        TrainingDiverged, match=r"^loss (rose to|became) .*: training diverged; try a lower --lr \(now 0.01\)$"
    ):
        train(network(), x, y, TrainConfig("sgd", 0.01, 30, 1, loss="mse"), lambda m: (0.0, 0.0))


def test_regress_stops_as_diverged_with_no_plot(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200)
    data = tmp_path / "xy.csv"
    data.write_text("".join(f"{a},{1e6 * a * a}\n" for a in x))
    plot = tmp_path / "fit.png"
    result = invoke(
        "regress", data, "--optimizer", "sgd", "--lr", 0.01, "--batch-size", 1, "--epochs", 5, "--plot", plot
    )
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: loss ") and line.endswith("training diverged; try a lower --lr (now 0.01)")
    assert not plot.exists() and list(tmp_path.rglob(".*.tmp")) == []
    sane = invoke("regress", data, "--epochs", 20, "--plot", plot)  # the default Adam at lr 0.01
    assert sane.exit_code == 0, sane.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
