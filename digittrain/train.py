"""The training loop: mini-batches, L2, the report lines, loss target, divergence, the held-out
loss, and stopping early on request (Ctrl-C) with what was learnt so far."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from digittrain.losses import LOSSES
from digittrain.model import MLP
from digittrain.optimizers import OPTIMIZERS

# Learning-rate schedules: the factor on --lr at a point of training, from 0 (first step) to 1 (end).
# Adding one is one function and one entry.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda progress: 1.0,
    # Cosine annealing to zero (Loshchilov and Hutter 2017): large steps early, fine ones at the end.
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress)),
}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or rose far above the untrained network's (``check_divergence``)."""


# Divergence is judged against the untrained network's mean loss on the training rows: the loss of
# knowing nothing, in the loss's own scale (about ln 10 = 2.3 for ten classes; about the mean of y
# squared for a regression, however large y is). A ratio to it does not trip on a wobble near a small
# loss (a trained net at 5e-4 spiking to 0.6 is still 4 times below the start: a ratio to the running
# minimum would see 1200) nor on the floor label smoothing leaves (0.5, below the start).
# Measured on the field runs (../shared/field/loss-explodes): batch losses of 2.6, 5.3, 4.5e4, 4.3e7
# (then 1e36) over a start of 2.49; 2.2, 9.9e6 over 2.32; full-batch epochs of 2.49, 8.0, 1440,
# 1.8e5, 3.7e5. Over 736 runs on that data and a synthetic set (sgd, momentum, adam; lr 0.01-3;
# batch 1, 16, full; five activations; 15 epochs), the 527 that ended below their start never passed
# 64 times it in an epoch nor 772 times in a batch; every run above 1000 in an epoch ended above its
# start (one at 1750 in epoch 15 was still climbing, to 2e19 by epoch 60).
# An epoch's mean averages every row: 1000 times the loss of knowing nothing is no wobble.
EPOCH_BLOWUP = 1e3
# Every batch is checked too, so that a run blowing up stops at the batch that blew up (the field's
# fourth row, 4.3e7), not at the end of a long epoch or later as an overflow to NaN. One batch can be
# one row, and one row can sit far off the mean (an outlier y in a regression 1000 standard
# deviations out is 1e6 times the mean square), hence the looser bound.
BATCH_BLOWUP = 1e6
# The untrained loss is measured on an evenly strided sample of about this many rows: a mean to within
# a few per cent, in 0.2 s for MNIST on 800-800 (an epoch takes 5 s or more).
START_ROWS = 4096


def untrained_loss(model: MLP, x: np.ndarray, targets: np.ndarray, loss: str) -> float:
    """The model's mean ``loss`` on about ``START_ROWS`` evenly spaced rows of (x, targets), before
    any update; infinity when that is not finite, which switches the ratio checks off (the NaN/inf
    check still stops such a run at its first batch)."""
    rows = slice(None, None, max(1, len(x) // START_ROWS))
    with np.errstate(over="ignore", invalid="ignore"):
        value, _ = LOSSES[loss](model.forward(x[rows]), targets[rows])
    return value if np.isfinite(value) else math.inf


def check_divergence(loss: float, untrained: float, limit: float, epoch: int, lr: float) -> None:
    """Raise TrainingDiverged, with a one-line reason and a hint naming ``lr``, when ``loss`` (a
    batch's or an epoch's mean) is NaN or infinite, or more than ``limit`` times ``untrained``, the
    network's loss before any update (``untrained_loss``)."""
    hint = f"training diverged; try a lower --lr (now {lr:g})"
    if not np.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss} in epoch {epoch}: {hint}")
    if loss > limit * untrained:
        raise TrainingDiverged(
            f"loss rose to {loss:.2g} in epoch {epoch}, {loss / untrained:.2g} times the untrained network's "
            f"{untrained:.3g}: {hint}"
        )


@dataclass
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 0.001
    epochs: int = 20
    batch_size: int = 128  # 1: per sample, 0: the full batch
    l2: float = 0.0
    loss: str = "softmax_cross_entropy"
    loss_target: float = 0.005
    seed: int = 0
    lr_schedule: str = "constant"


@dataclass
class History:
    """Per-epoch curves and the moment the loss first fell below the target. Every list has one
    entry per epoch; a run stopped inside an epoch (``stop``) ends with one more, for the part of
    that epoch it trained, so the last entry always describes the network as it was left."""

    epoch: list[float] = field(default_factory=list)  # epochs trained at this entry: 1, 2, ... (52.31: stopped)
    loss: list[float] = field(default_factory=list)  # mean training loss over the epoch's batches
    held_out_loss: list[float] = field(default_factory=list)  # the same loss on the held-out rows, after it
    train_metric: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the learning rate of the epoch's last update
    epoch_seconds: list[float] = field(default_factory=list)  # training time of the epoch, evaluation excluded
    seconds: float = 0.0
    target_epoch: int | None = None
    target_seconds: float | None = None
    loss_floor: float = 0.0  # the least loss the targets allow (their entropy, under label smoothing)
    interrupted: bool = False  # stopped on request before the last epoch's end

    @property
    def epochs_trained(self) -> float:
        """Epochs trained, the part of a stopped epoch included (0 before any)."""
        return self.epoch[-1] if self.epoch else 0.0


def accuracy(model: MLP, x: np.ndarray, class_index: np.ndarray) -> float:
    return float((model.predict(x) == class_index).mean()) if len(x) else float("nan")


def loss_floor(targets: np.ndarray) -> float:
    """The least mean cross-entropy reachable on these targets: their entropy. 0 for one-hot
    targets; about 0.5 with 10 classes and label smoothing 0.1, which a fixed --loss-target such as
    0.005 could never get under, so the target is measured above this floor."""
    t = targets.astype(np.float64)
    logs = np.log(t, out=np.zeros_like(t), where=t > 0)
    return float(-(t * logs).sum(axis=1).mean()) if len(t) else 0.0


def mean_loss(model: MLP, x: np.ndarray, targets: np.ndarray, loss: str, batch: int = 4096) -> float:
    """The model's mean ``loss`` over all rows of (x, targets), a ``batch`` of rows at a time (the
    memory of one forward pass stays small); NaN for no rows."""
    if not len(x):
        return float("nan")
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(x), batch):
            rows = slice(start, start + batch)
            value, _ = LOSSES[loss](model.forward(x[rows]), targets[rows])
            total += value * len(x[rows])
    return total / len(x)


class StopRequest:
    """A request to end the training early, checked before every batch: ``request()`` sets it,
    calling the object tells whether it is set. ``train`` then stops after the batch running. The
    first call that finds it set calls ``on_stop``, from the training's own thread."""

    def __init__(self, on_stop: Callable[[], None] = lambda: None):
        self.requested, self.on_stop, self.told = False, on_stop, False

    def request(self) -> None:
        self.requested = True

    def __call__(self) -> bool:
        if self.requested and not self.told:
            self.told = True
            self.on_stop()
        return self.requested


@contextlib.contextmanager
def stop_on_interrupt(on_stop: Callable[[], None] = lambda: None) -> Iterator[StopRequest]:
    """A StopRequest that Ctrl-C (SIGINT) sets while the block runs: a long training stopped by hand
    keeps what it learnt. ``on_stop`` is called once the training sees it, not in the signal
    handler, which could interrupt a write to the very stream it would print on. A second Ctrl-C
    raises KeyboardInterrupt, for a person who will not wait for the batch. Outside the main thread
    (which alone receives signals) the request is only set by calling ``request``."""
    stop = StopRequest(on_stop)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupted(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.request()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def batches(n: int, batch_size: int, rng: np.random.Generator):
    """Shuffled row indices in slices of ``batch_size`` (0: everything at once)."""
    order = rng.permutation(n)
    size = n if batch_size <= 0 else batch_size
    for start in range(0, n, size):
        yield order[start : start + size]


def train(
    model: MLP,
    x: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    evaluate: Callable[[MLP], tuple[float, float]],
    on_epoch: Callable[[int, History], None] = lambda epoch, history: None,
    on_batch: Callable[[int, int], None] = lambda epoch, rows: None,
    *,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> History:
    """Fit ``model`` to (x, targets). ``evaluate(model)`` gives the (train, test) metric recorded
    after every epoch, and ``held_out`` (x, targets) the held-out loss (NaN without). ``stop()`` is
    asked before every batch: once true, the training ends there, the part of the epoch trained
    recorded as a last, partial entry (``History.interrupted``). Time spent evaluating is not
    counted as training time."""
    loss_fn = LOSSES[config.loss]
    # The optimiser sees the model's one flat parameter buffer and the matching gradient buffer.
    optimizer = OPTIMIZERS[config.optimizer]([model.flat], config.lr)
    rng = np.random.default_rng(config.seed)
    history = History(loss_floor=loss_floor(targets) if config.loss == "softmax_cross_entropy" else 0.0)
    weight_values = slice(0, model.n_weight_values)  # biases are not decayed
    l2_term = np.empty(model.n_weight_values, model.dtype)
    schedule = SCHEDULES[config.lr_schedule]
    steps_per_epoch = 1 if config.batch_size <= 0 else -(-len(x) // config.batch_size)
    total_steps, step = config.epochs * steps_per_epoch, 0
    untrained = untrained_loss(model, x, targets, config.loss)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        total, seen = 0.0, 0
        for rows in batches(len(x), config.batch_size, rng):
            if stop():
                history.interrupted = True
                break
            optimizer.lr = config.lr * schedule(step / total_steps)
            step += 1
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is caught just below
                loss, grad = loss_fn(model.forward(x[rows]), targets[rows])
            check_divergence(loss, untrained, BATCH_BLOWUP, epoch, config.lr)
            model.backward(grad)
            if config.l2:
                np.multiply(model.flat[weight_values], config.l2, out=l2_term)
                model.flat_grad[weight_values] += l2_term
            optimizer.step([model.flat_grad])
            total += loss * len(rows)
            seen += len(rows)
            on_batch(epoch, len(rows))
        elapsed = time.perf_counter() - started
        history.seconds += elapsed
        if not seen:  # stopped before this epoch's first batch: nothing new to record
            break
        epoch_loss = total / seen
        whole = seen == len(x)
        if whole:  # a part of an epoch is not judged against the epoch's bound (its batches were)
            check_divergence(epoch_loss, untrained, EPOCH_BLOWUP, epoch, config.lr)
        # A part of an epoch to two decimals, kept within 0.01-0.99: it never reads as a whole epoch.
        part = min(max(round(100 * seen / len(x)), 1), 99) / 100
        history.epoch.append(epoch if whole else round(epoch - 1 + part, 2))
        history.loss.append(epoch_loss)
        history.lr.append(optimizer.lr)
        history.epoch_seconds.append(elapsed)
        if whole and history.target_epoch is None and epoch_loss - history.loss_floor < config.loss_target:
            history.target_epoch, history.target_seconds = epoch, history.seconds
        train_metric, test_metric = evaluate(model)
        history.train_metric.append(train_metric)
        history.test_metric.append(test_metric)
        history.held_out_loss.append(mean_loss(model, *held_out, config.loss) if held_out else float("nan"))
        if whole:
            on_epoch(epoch, history)
        if history.interrupted:
            break
    return history
