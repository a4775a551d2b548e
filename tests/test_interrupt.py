"""Ctrl-C: a training stops after the batch running and keeps what it learnt (model, curves,
history, a results row marked interrupted; exit 130); SIGTERM still stops with nothing written; an
interrupted folder augment leaves the old folder as it was."""

import contextlib
import csv
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, drawn_digit, halves_csv, write_image

import digittrain.cli
from digittrain.data import smoothed_targets
from digittrain.model import MLP
from digittrain.modelio import load_model
from digittrain.train import TrainConfig, stop_on_interrupt, train

DIGITTRAIN = [sys.executable, "-c", "from digittrain.cli import main; main()"]


def toy_csv(path, n=200, seed=0):
    return halves_csv(path, n, seed)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def toy_arrays(n=100):
    rng = np.random.default_rng(1)
    x = rng.random((n, 6), dtype=np.float32)
    index = (x[:, 0] > 0.5).astype(np.int64)
    return x, index, smoothed_targets(index, 2)


def stop_after(batches: int):
    """A stop() that turns true once ``batches`` batches have been asked for."""
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] > batches

    return stop


def test_training_stops_before_the_next_batch_and_records_the_part_epoch_trained():
    x, index, targets = toy_arrays()
    config = TrainConfig("sgd", 0.1, epochs=5, batch_size=10)

    def evaluate(model):
        return float((model.predict(x) == index).mean()), 0.5

    whole = MLP([6, 4, 2], ["relu"], seed=0)
    history = train(whole, x, targets, config, evaluate, stop=stop_after(10))  # exactly one epoch of 10 batches
    assert history.interrupted and history.epoch == [1] and history.epochs_trained == 1
    one_epoch = MLP([6, 4, 2], ["relu"], seed=0)
    reference = train(one_epoch, x, targets, TrainConfig("sgd", 0.1, epochs=1, batch_size=10), evaluate)
    assert not reference.interrupted
    assert np.array_equal(whole.flat, one_epoch.flat)  # not one update more or less
    assert history.loss == reference.loss

    part = MLP([6, 4, 2], ["relu"], seed=0)
    seen_epochs = []
    history = train(part, x, targets, config, evaluate, lambda e, h: seen_epochs.append(e), stop=stop_after(13))
    assert history.interrupted and history.epoch == [1, 1.3] and history.epochs_trained == 1.3
    assert seen_epochs == [1]  # on_epoch is for whole epochs
    assert len(history.loss) == len(history.train_metric) == len(history.lr) == len(history.epoch_seconds) == 2
    assert history.train_metric[-1] == evaluate(part)[0]  # the last entry describes the network as left


def test_a_part_epoch_never_reads_as_a_whole_one():
    x, _, targets = toy_arrays(1000)
    for batches, expected in ((1001, 1.01), (1999, 1.99), (1500, 1.5)):  # 0.001, 0.999 and half of the 2nd
        model = MLP([6, 4, 2], ["relu"], seed=0)
        config = TrainConfig("sgd", 0.01, epochs=3, batch_size=1)
        history = train(model, x, targets, config, lambda m: (0.0, 0.0), stop=stop_after(batches))
        assert history.epoch == [1, expected] and history.interrupted


def test_a_stop_before_the_first_batch_trains_nothing():
    x, _, targets = toy_arrays()
    model = MLP([6, 4, 2], ["relu"], seed=0)
    before = model.flat.copy()
    history = train(model, x, targets, TrainConfig(epochs=3), lambda m: (0.0, 0.0), stop=lambda: True)
    assert history.interrupted and history.epoch == [] and history.epochs_trained == 0
    assert np.array_equal(model.flat, before)


def test_a_stop_asked_during_the_runs_last_batch_is_no_interruption():
    x, _, targets = toy_arrays()
    model = MLP([6, 4, 2], ["relu"], seed=0)
    config = TrainConfig(epochs=2, batch_size=50)  # 4 batches: a stop asked after the 4th has started comes too late
    history = train(model, x, targets, config, lambda m: (0.0, 0.0), stop=stop_after(4))
    assert not history.interrupted and history.epoch == [1, 2]


def test_ctrl_c_sets_the_request_and_a_second_one_interrupts_at_once():
    said = []
    before = signal.getsignal(signal.SIGINT)
    with stop_on_interrupt(lambda: said.append("stopping")) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop() and said == ["stopping"]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def cli(tmp_path, *args):
    base = ["--train", toy_csv(tmp_path / "train.csv"), "--hidden", "8", "--lr", "0.01", "--batch-size", "16"]
    outputs = ["--save", tmp_path / "m.npz", "--plot", tmp_path / "c.svg", "--history", tmp_path / "h.csv"]
    return CliRunner().invoke(digittrain.cli.main, [str(a) for a in [*base, *outputs, "--results", tmp_path / "r.csv"]])


def stopping_after(batches: int):
    @contextlib.contextmanager
    def stop_on_interrupt(on_request):
        yield stop_after(batches)

    return stop_on_interrupt


def test_an_interrupted_run_saves_what_it_learnt_and_exits_130(tmp_path, monkeypatch):
    # 160 training rows in batches of 16: 10 batches an epoch; stopped after 23, 2.3 epochs.
    monkeypatch.setattr(digittrain.cli, "stop_on_interrupt", stopping_after(23))
    result = cli(tmp_path)
    assert result.exit_code == 130, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("Epoch")] == ["Epoch 1", "Epoch 2"]
    assert any(line.startswith("Interrupted after 2.3 of 20 epochs: loss=") for line in lines)
    assert f"Model saved to {tmp_path / 'm.npz'}" in lines and f"History saved to {tmp_path / 'h.csv'}" in lines
    assert lines[-1] == f"Results row added to {tmp_path / 'r.csv'}, marked interrupted = 2.3"
    history = read_rows(tmp_path / "h.csv")
    assert [row["epoch"] for row in history] == ["1", "2", "2.3"]
    (row,) = read_rows(tmp_path / "r.csv")
    assert row["interrupted"] == "2.3" and row["epochs"] == "20"
    assert float(row["test_accuracy"]) == float(history[-1]["validation_accuracy"])
    _, _, metadata = load_model(tmp_path / "m.npz")
    assert metadata["metrics"]["interrupted"] == 2.3
    assert b"interrupted after 2.3 epochs" in (tmp_path / "c.svg").read_bytes()


def test_an_interruption_before_the_first_update_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(digittrain.cli, "stop_on_interrupt", stopping_after(0))
    result = cli(tmp_path)
    assert result.exit_code == 130
    assert "Interrupted before the first update: nothing saved" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]


def long_training(tmp_path, signum):
    """Run `digittrain` on 2000 rows one at a time for 10000 epochs; send ``signum`` once the first
    report line is out. Its exit code, output and errors, and the seconds it took to stop."""
    train_csv = toy_csv(tmp_path / "train.csv", n=2000)
    args = ["--train", train_csv, "--hidden", "32", "--batch-size", "1", "--epochs", "10000", "--lr", "0.0003"]
    outputs = ["--save", tmp_path / "m.npz", "--plot", tmp_path / "c.png", "--history", tmp_path / "h.csv"]
    command = [*DIGITTRAIN, *args, *outputs, "--results", tmp_path / "r.csv"]
    process = subprocess.Popen(
        list(map(str, command)), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        while not any(line.startswith("Epoch") for line in lines) and process.poll() is None:
            lines.append(process.stdout.readline())
        assert process.poll() is None, process.communicate()
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        return process.returncode, "".join(lines) + out, err, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_during_a_training_keeps_a_model_evaluate_reads_and_a_row_marked_interrupted(tmp_path):
    code, out, err, seconds = long_training(tmp_path, signal.SIGINT)
    assert code == 130, (out, err)
    assert "Traceback" not in err and "Ctrl-C: training stopped, saving what it learnt" in err
    assert seconds < 30  # one batch, then the writing; not the 10000 epochs
    (row,) = read_rows(tmp_path / "r.csv")
    trained = float(row["interrupted"])
    assert 1 <= trained < 10000 and row["epochs"] == "10000"
    assert f"marked interrupted = {row['interrupted']}" in out
    history = read_rows(tmp_path / "h.csv")
    assert float(history[-1]["epoch"]) == trained and len(history) == int(np.ceil(trained))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluated = CliRunner().invoke(
        digittrain.cli.main, ["evaluate", str(tmp_path / "m.npz"), "--test", str(tmp_path / "train.csv")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert float(evaluated.output.split("accuracy = ")[1].split()[0]) > 0.9


def test_sigterm_during_a_training_still_stops_with_nothing_written(tmp_path):
    code, _, err, _ = long_training(tmp_path, signal.SIGTERM)
    assert code == 143 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]  # no model, curves, history, row


def test_ctrl_c_stops_a_tree_augment_leaving_the_old_folder_and_no_partial_tree(tmp_path):
    for i in range(60):
        write_image(
            tmp_path / "src" / str(i % 10) / f"img{i}.png",
            drawn_digit(str(i % 10), canvas=28, at=(4, 22), scale=0.8, thickness=2),
        )
    out = tmp_path / "D"
    write_image(out / "7" / "old.png", drawn_digit("7"))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    command = [sys.executable, "-m", "digitprep", "augment", tmp_path / "src", "--out-dir", out, "--copies", "500"]
    process = subprocess.Popen(
        list(map(str, [*command, "--jobs", "2", "-q"])), cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:  # until a worker has staged a PNG
            if any(next(staging.rglob("*.png"), None) for staging in tmp_path.glob(".D.*.tmp")):
                break
            time.sleep(0.01)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Ctrl-C is exit 130 (128 + SIGINT) in every command, not click's "Aborted!" and 1.
    assert process.returncode == 130 and "Traceback" not in err and "Aborted" not in err, err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D", "src"]  # no staging folder left beside it
