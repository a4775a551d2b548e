"""One training configuration, as `digittrain` and `digittrain compare` take it, and its use:
network built, targets smoothed, the loop run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from digittrain.data import smoothed_targets
from digittrain.initializers import initializer
from digittrain.model import MLP
from digittrain.train import History, TrainConfig, train


@dataclass(frozen=True)
class TrainingOptions:
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    init: str = "he"
    optimizer: str = "adam"
    lr: float = 0.001
    lr_schedule: str = "constant"
    epochs: int = 20
    batch_size: int = 128
    l2: float = 0.0
    label_smoothing: float = 0.0
    scale: str = "unit"
    loss_target: float = 0.005
    seed: int = 0

    def __post_init__(self):
        # What the command line refuses, refused here too for callers of the library: a NaN L2 or
        # label smoothing once trained to a NaN loss and the advice to lower --lr.
        bounds = {
            "lr": (self.lr, self.lr > 0, "a number above 0"),
            "l2": (self.l2, self.l2 >= 0, "a number from 0 up"),
            "label_smoothing": (self.label_smoothing, 0 <= self.label_smoothing < 1, "a share from 0 to below 1"),
            "loss_target": (self.loss_target, self.loss_target >= 0, "a number from 0 up"),
        }
        for name, (value, inside, wanted) in bounds.items():
            if not (math.isfinite(value) and inside):
                raise ValueError(f"{name} must be {wanted}, not {value}")
        initializer(self.init)  # ValueError for an unknown name or a normal:STD that is not finite

    def network(self, n_inputs: int, n_classes: int) -> MLP:
        """A freshly initialised network for this configuration."""
        sizes = [n_inputs, *self.hidden, n_classes]
        return MLP(sizes, [self.activation] * len(self.hidden), self.init, self.seed)

    def config(self) -> TrainConfig:
        return TrainConfig(
            self.optimizer,
            self.lr,
            self.epochs,
            self.batch_size,
            self.l2,
            loss_target=self.loss_target,
            seed=self.seed,
            lr_schedule=self.lr_schedule,
        )

    def describe(self) -> str:
        """One line a person reads in a report: architecture and optimiser settings."""
        schedule = "" if self.lr_schedule == "constant" else f" {self.lr_schedule}"
        return (
            f"{'-'.join(map(str, self.hidden))} {self.activation} ({self.init} init), {self.optimizer} lr {self.lr:g}"
            f"{schedule}, {self.epochs} epochs, batch {self.batch_size}, L2 {self.l2:g}, label smoothing "
            f"{self.label_smoothing:g}, inputs {self.scale}, seed {self.seed}"
        )

    def as_record(self) -> dict:
        record = asdict(self)
        record["hidden"] = ",".join(map(str, self.hidden))
        return record


def fit_network(
    x: np.ndarray,
    class_index: np.ndarray,
    n_classes: int,
    options: TrainingOptions,
    evaluate: Callable[[MLP], tuple[float, float]] = lambda model: (float("nan"), float("nan")),
    on_epoch: Callable[[int, History], None] = lambda epoch, history: None,
    on_batch: Callable[[int, int], None] = lambda epoch, rows: None,
    *,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[MLP, History]:
    """Train a fresh classifier on scaled inputs ``x`` (see ``Scaler``) whose output index is
    ``class_index``; ``evaluate(model)`` gives the (train, test) metric recorded after each epoch,
    ``held_out`` (scaled inputs, class index) the held-out loss, its targets smoothed as the
    training's are so the two losses compare. ``stop``: see ``train``."""
    model = options.network(x.shape[1], n_classes)
    targets = smoothed_targets(class_index, n_classes, options.label_smoothing)
    if held_out is not None:
        held_out = (held_out[0], smoothed_targets(held_out[1], n_classes, options.label_smoothing))
    history = train(model, x, targets, options.config(), evaluate, on_epoch, on_batch, held_out=held_out, stop=stop)
    return model, history
