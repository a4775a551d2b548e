"""Seconds per training epoch of the project's NumPy MLP against PyTorch (CPU) and scikit-learn.

All three train the same network on the same data, in one process: a 784-256-256-10 MLP with ReLU
hidden layers, a linear output and softmax cross-entropy, Adam at lr 1e-3, mini-batches of 128 rows
reshuffled every epoch, float32 throughout, on the 60 000 MNIST training images (28x28 grey, scaled
by 1/255).

- project: ``digittrain.train.train`` itself, with a no-op ``evaluate``. Each epoch's time is the
  trainer's own timer: shuffling, batch gathering, forward, loss, backward and the Adam step.
- torch: ``nn.Sequential`` of Linear/ReLU layers, ``torch.optim.Adam`` (defaults),
  ``nn.CrossEntropyLoss`` and a ``torch.randperm`` shuffle per epoch, with the same loop body:
  gather, forward, loss, backward, step, read the loss. Skipped when ``import torch`` fails.
- sklearn: ``MLPClassifier(hidden_layer_sizes=(256, 256), solver="adam", batch_size=128,
  learning_rate_init=1e-3, max_iter=EPOCHS)``, otherwise defaults (so its L2 penalty alpha=1e-4 is
  on). It runs all its epochs inside one ``fit``, so its figure is the fit's wall time over
  ``n_iter_``: a mean that includes fit's set-up, not a median.

Project and torch epochs alternate (project 1, torch 1, project 2, torch 2, ...) with a 0.5 s pause
at each switch, outside both clocks, so that the worker threads one library leaves spinning are
asleep before the other starts. A slow phase of a shared machine, which can last tens of seconds and
shows in no process list, then slows both sides alike instead of whichever ran during it. sklearn
runs afterwards. Project and torch report the median of their --epochs epoch times (the first epoch
also pays for warm-up). The target is project / torch <= 0.8.

Each side's mean training loss in its last epoch is printed beside its time, to show that the three
really train (sklearn's includes its L2 term). "CPU busy" is the share of the machine's CPU time
that other processes took during each measurement (from /proc/stat; "-" for measurements under a
second, too short for its 10 ms ticks): on a shared machine anything above a few per cent inflates
that time, and the table says so.

Data: the PNGs under data/cache/training/<digit>/, extracted once from
../shared/data/mnist/mnist_png.tar.gz when that folder is missing (as bench/prep.py does); with
neither, the benchmark says so and exits 0. --rows N trains on a fixed random N of the 60 000 rows.

PyTorch is not a project dependency: run this with a separate venv that has it,

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0 numpy opencv-python-headless pillow pandas \\
        scikit-learn click scikit-image matplotlib
    .venv-bench/bin/pip install --no-deps -e .
    .venv-bench/bin/python bench/train.py [--epochs N] [--rows N]

The project's own .venv runs it too, without the torch line.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from prep import CACHE, TARBALL, ensure_extracted  # bench/prep.py: the script's folder is on sys.path
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from digittrain.data import Scaler, smoothed_targets
from digittrain.model import MLP
from digittrain.train import History, TrainConfig, train

TRAINING = CACHE / "training"
SIDE = 28
N_CLASSES = 10
HIDDEN = (256, 256)
BATCH = 128
LR = 1e-3
SEED = 0
TARGET_RATIO = 0.8  # project s/epoch over torch s/epoch, at most
BUSY_WARNING = 0.05  # share of the CPUs other processes may use during a measurement before a warning
SWITCH_PAUSE = 0.5  # seconds of sleep between a project epoch and a torch epoch, outside both clocks
MIN_BUSY_WALL = 1.0  # seconds: /proc/stat counts in ticks of 10 ms, too coarse for shorter measurements


@dataclass
class Result:
    """One trainer's timing: seconds of each epoch, the figure reported, its last epoch's loss."""

    name: str
    epoch_seconds: list[float]
    seconds_per_epoch: float
    final_loss: float
    note: str = ""
    elsewhere: float | None = None  # share of the machine's CPU time other processes used meanwhile


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per trainer; the median epoch is reported [default: 3]"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        metavar="N",
        help="train on a fixed random N of the 60 000 training rows, for a quick run [default: all]",
    )
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def load_training(folder: Path, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 pixels (n, 784), int64 digits (n,)) from folder/<digit>/*.png, in a fixed order.

    With ``rows``, a fixed random subset of that many files (seed 0) is read, and only those.
    """
    files = sorted(folder.glob("*/*.png"))
    if rows is not None and rows < len(files):
        keep = np.sort(np.random.default_rng(SEED).permutation(len(files))[:rows])
        files = [files[i] for i in keep]
    pixels = np.empty((len(files), SIDE * SIDE), np.uint8)
    labels = np.empty(len(files), np.int64)
    for i, path in enumerate(files):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.shape != (SIDE, SIDE):
            raise ValueError(f"{path}: not a {SIDE}x{SIDE} grey image")
        pixels[i] = image.ravel()
        labels[i] = int(path.parent.name)
    return pixels, labels


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have used since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as handle:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, handle.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class CpuElsewhere:
    """The share of the machine's CPU time that other processes take during the measured intervals:
    busy time of all processes less this process's own, over wall time x CPUs, summed from each
    ``start()`` to the following ``stop()``."""

    def __init__(self) -> None:
        self.others = self.wall = 0.0
        self.available = busy_cpu_seconds() is not None
        self._mark = (0.0, 0.0, 0.0)

    def start(self) -> None:
        """Open a measured interval."""
        self._mark = (busy_cpu_seconds() or 0.0, time.process_time(), time.perf_counter())

    def stop(self) -> None:
        """Close the interval opened by the last ``start()``."""
        busy, own, started = self._mark
        self.others += max((busy_cpu_seconds() or 0.0) - busy - (time.process_time() - own), 0.0)
        self.wall += time.perf_counter() - started

    def share(self) -> float | None:
        """Others' share of all CPUs; None without /proc/stat or below MIN_BUSY_WALL of measuring."""
        if not self.available or self.wall < MIN_BUSY_WALL:
            return None
        return self.others / (self.wall * (os.cpu_count() or 1))


class TorchTrainer:
    """The same network, loss, optimiser and loop in PyTorch on the CPU, one epoch per ``epoch()``
    call so that its epochs can alternate with the project's."""

    def __init__(self, torch, x: np.ndarray, labels: np.ndarray):
        nn = torch.nn
        torch.manual_seed(SEED)
        sizes = [x.shape[1], *HIDDEN]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        self.model = nn.Sequential(*layers, nn.Linear(sizes[-1], N_CLASSES))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = nn.CrossEntropyLoss()
        self.inputs, self.classes = torch.from_numpy(x), torch.from_numpy(labels)
        self.generator = torch.Generator().manual_seed(SEED)
        self.torch = torch
        self.seconds: list[float] = []
        self.loss = float("nan")
        self.elsewhere = CpuElsewhere()

    @classmethod
    def create(cls, x: np.ndarray, labels: np.ndarray) -> TorchTrainer | None:
        """A trainer when ``import torch`` works, else None."""
        try:
            import torch
        except ImportError:
            return None
        return cls(torch, x, labels)

    def epoch(self) -> None:
        """One shuffled pass over the data: gather, forward, loss, backward, Adam step, read the loss."""
        n = len(self.inputs)
        self.elsewhere.start()
        started = time.perf_counter()
        total = 0.0
        order = self.torch.randperm(n, generator=self.generator)
        for start in range(0, n, BATCH):
            rows = order[start : start + BATCH]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(self.inputs[rows]), self.classes[rows])
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(rows)
        self.seconds.append(time.perf_counter() - started)
        self.elsewhere.stop()
        self.loss = total / n

    def result(self) -> Result:
        """The epochs run so far as a Result."""
        note = f"torch {self.torch.__version__}, {self.torch.get_num_threads()} threads"
        median = statistics.median(self.seconds)
        return Result("torch (CPU)", self.seconds, median, self.loss, note, self.elsewhere.share())


def time_project(x: np.ndarray, labels: np.ndarray, epochs: int, between: Callable[[], None] = lambda: None) -> Result:
    """The project's trainer, ``digittrain.train.train``, timed by its own per-epoch clock;
    ``between()`` runs after each epoch, outside that clock."""
    model = MLP([x.shape[1], *HIDDEN, N_CLASSES], ["relu"] * len(HIDDEN), seed=SEED, dtype=np.float32)
    config = TrainConfig(optimizer="adam", lr=LR, epochs=epochs, batch_size=BATCH, seed=SEED)
    targets = smoothed_targets(labels, N_CLASSES)
    ends: list[float] = []  # cumulative training seconds after each epoch
    elsewhere = CpuElsewhere()

    def on_epoch(epoch: int, history: History) -> None:
        elsewhere.stop()
        ends.append(history.seconds)
        between()
        elsewhere.start()

    elsewhere.start()
    history = train(model, x, targets, config, lambda model: (float("nan"), float("nan")), on_epoch)
    elsewhere.stop()
    seconds = [end - start for start, end in itertools.pairwise([0.0, *ends])]
    median = statistics.median(seconds)
    return Result("project (NumPy)", seconds, median, history.loss[-1], elsewhere=elsewhere.share())


def time_sklearn(x: np.ndarray, labels: np.ndarray, epochs: int) -> Result:
    """scikit-learn's MLPClassifier: one fit of ``epochs`` epochs, its wall time over ``n_iter_``."""
    classifier = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        solver="adam",
        batch_size=BATCH,
        learning_rate_init=LR,
        max_iter=epochs,
        random_state=SEED,
    )
    elsewhere = CpuElsewhere()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        elsewhere.start()
        started = time.perf_counter()
        classifier.fit(x, labels)
        fit_seconds = time.perf_counter() - started
        elsewhere.stop()
    per_epoch = fit_seconds / classifier.n_iter_
    note = f"fit {fit_seconds:.2f} s / n_iter_ {classifier.n_iter_}, weights {classifier.coefs_[0].dtype}"
    epoch_seconds = [per_epoch] * classifier.n_iter_
    return Result("sklearn MLPClassifier", epoch_seconds, per_epoch, classifier.loss_, note, elsewhere.share())


def numpy_blas() -> str:
    """NumPy's BLAS library and its thread count, as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS threads unknown (no threadpoolctl)"
    for pool in threadpool_info():
        if pool["user_api"] == "blas" and "numpy" in pool["filepath"]:
            return f"{pool['internal_api']} {pool.get('version')}, {pool['num_threads']} threads"
    return "BLAS threads unknown"


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def result_line(result: Result) -> str:
    """One aligned line of the result table."""
    epochs = ", ".join(f"{s:.3f}" for s in result.epoch_seconds)
    elsewhere = "-" if result.elsewhere is None else f"{result.elsewhere:.0%}"
    return (
        f"{result.name:<24}{result.seconds_per_epoch:>9.3f}  {result.final_loss:>9.4f}  {elsewhere:>9}"
        f"  [{epochs}]  {result.note}"
    ).rstrip()


def ratio_line(measure: str, ratio: float, target: float | None = None) -> str:
    """One line comparing the project's seconds per epoch with another trainer's."""
    if target is None:
        return f"{measure:<24}{ratio:>9.2f}"
    verdict = "PASS" if ratio <= target else "FAIL"
    return f"{measure:<24}{ratio:>9.2f}  target <= {target}  {verdict}"


def print_report(n_rows: int, epochs: int, project: Result, torch_result: Result | None, sklearn: Result) -> None:
    """The table of seconds per epoch and the ratios of the project to torch and to sklearn."""
    network = "-".join(map(str, [SIDE * SIDE, *HIDDEN, N_CLASSES]))
    print(
        f"\nMNIST training set, {n_rows} rows; {network} ReLU MLP, Adam lr {LR:g}, batch {BATCH}, float32; "
        f"{plural(epochs, 'epoch')} (median epoch; sklearn: fit time / n_iter_)"
    )
    torch_threads = torch_result.note if torch_result else "torch not installed"
    print(f"{os.cpu_count()} CPUs; NumPy {np.__version__}: {numpy_blas()}; {torch_threads}")
    print(f"{'trainer':<24}{'s/epoch':>9}  {'last loss':>9}  {'CPU busy':>9}  [each epoch, s]")
    results = [r for r in (project, torch_result, sklearn) if r is not None]
    for result in results:
        print(result_line(result))
    if torch_result is not None:
        ratio = project.seconds_per_epoch / torch_result.seconds_per_epoch
        print(ratio_line("ratio project / torch", ratio, TARGET_RATIO))
    else:
        print(f"{'ratio project / torch':<24}{'-':>9}  torch not installed")
    print(ratio_line("ratio project / sklearn", project.seconds_per_epoch / sklearn.seconds_per_epoch))
    if any(r.elsewhere is not None and r.elsewhere > BUSY_WARNING for r in results):
        print(
            f"warning: other processes kept more than {BUSY_WARNING:.0%} of the CPUs busy during a measurement"
            " ('CPU busy' above): its times are inflated; rerun on a quiet machine"
        )


def main() -> int:
    """Load the data, time the three trainers, print the table; 0 whatever the verdict."""
    args = parse_args()
    if not TRAINING.is_dir():
        if not TARBALL.exists():
            print(f"no MNIST PNGs in {TRAINING} and no tarball at {TARBALL}; nothing to measure.")
            return 0
        ensure_extracted(TARBALL, CACHE)
    started = time.perf_counter()
    pixels, labels = load_training(TRAINING, args.rows)
    if len(pixels) == 0:
        print(f"no PNGs under {TRAINING}/<digit>/; nothing to measure.")
        return 0
    x = Scaler.fit("unit", pixels).transform(pixels)
    print(f"loaded {len(x)} images from {TRAINING} in {time.perf_counter() - started:.1f} s", flush=True)
    torch_trainer = TorchTrainer.create(x, labels)
    if torch_trainer is None:
        print("torch not installed", flush=True)
        print(f"project: digittrain.train.train, {plural(args.epochs, 'epoch')} ...", flush=True)
        project = time_project(x, labels, args.epochs)
    else:
        print(f"project and torch: {plural(args.epochs, 'epoch')} each, alternating ...", flush=True)

        def torch_epoch() -> None:
            time.sleep(SWITCH_PAUSE)
            torch_trainer.epoch()
            time.sleep(SWITCH_PAUSE)

        project = time_project(x, labels, args.epochs, between=torch_epoch)
    torch_result = None if torch_trainer is None else torch_trainer.result()
    print(f"sklearn: MLPClassifier, max_iter={args.epochs} ...", flush=True)
    sklearn = time_sklearn(x, labels, args.epochs)
    print_report(len(x), args.epochs, project, torch_result, sklearn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
