"""Activation functions and their derivatives, in tables (as scikit-learn does).

Each derivative is written in terms of the layer's *output* ``a``, so the forward pass keeps only
what backward needs. Adding an activation is one pair of functions and one entry per table.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function via tanh: never overflows, for any input, in float32 or float64."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


LEAKY_SLOPE = 0.01


def leaky_relu(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def elu(z: np.ndarray) -> np.ndarray:
    # expm1 on min(z, 0) so large positive inputs never reach exp.
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def identity(z: np.ndarray) -> np.ndarray:
    return z


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "identity": identity,
}

# d activation / dz, from the output a.
DERIVATIVES = {
    "sigmoid": lambda a: a * (1 - a),
    "tanh": lambda a: 1 - a * a,
    "relu": lambda a: (a > 0).astype(a.dtype),
    "leaky_relu": lambda a: np.where(a > 0, 1, LEAKY_SLOPE).astype(a.dtype),
    "elu": lambda a: np.where(a > 0, 1, a + 1).astype(a.dtype),
    "identity": lambda a: np.ones_like(a),
}
