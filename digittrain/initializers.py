"""Weight initialisers: name -> function (rng, fan_in, fan_out, dtype) -> weight matrix."""

from __future__ import annotations

import math

import numpy as np


def he(rng: np.random.Generator, fan_in: int, fan_out: int, dtype=np.float32) -> np.ndarray:
    """Normal with std sqrt(2 / fan_in): keeps ReLU activations' variance from layer to layer."""
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)


def xavier(rng: np.random.Generator, fan_in: int, fan_out: int, dtype=np.float32) -> np.ndarray:
    """Glorot uniform, limit sqrt(6 / (fan_in + fan_out)): for tanh and sigmoid layers."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


def normal(std: float):
    """The original project's fixed-std normal initialiser (std 0.003 stalled it at chance)."""

    def init(rng: np.random.Generator, fan_in: int, fan_out: int, dtype=np.float32) -> np.ndarray:
        return (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype)

    return init


INITIALIZERS = {"he": he, "xavier": xavier}


def initializer(spec: str):
    """``he``, ``xavier`` or ``normal:STD`` -> an initialiser; ValueError otherwise."""
    if spec.startswith("normal:"):
        try:
            std = float(spec.split(":", 1)[1])
        except ValueError:
            std = math.nan
        # A NaN or infinite std gives NaN weights, which train to a NaN loss and the wrong advice.
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"bad initialiser {spec!r}: normal:STD needs a finite number from 0 up, e.g. normal:0.003")
        return normal(std)
    if spec not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {spec!r}: use he, xavier or normal:STD")
    return INITIALIZERS[spec]
