"""The multilayer perceptron: dense layers, a hidden activation per layer, a linear output.

Small enough to read in one sitting: ``forward`` keeps each layer's output, ``backward`` walks
them in reverse. The output layer is linear; the loss (softmax cross-entropy or MSE) gives it
its meaning.
"""

from __future__ import annotations

import itertools

import numpy as np

from digittrain.activations import ACTIVATIONS, DERIVATIVES
from digittrain.initializers import initializer
from digittrain.losses import softmax


class MLP:
    """Dense network ``sizes[0] -> ... -> sizes[-1]`` with ``activations[i]`` after hidden layer i."""

    def __init__(self, sizes: list[int], activations: list[str], init: str = "he", seed: int = 0, dtype=np.float32):
        if len(activations) != len(sizes) - 2:
            raise ValueError(f"{len(sizes) - 2} hidden layers need as many activations, got {len(activations)}")
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown activation {unknown[0]!r}: use one of {', '.join(ACTIVATIONS)}")
        rng = np.random.default_rng(seed)
        make = initializer(init)
        self.sizes, self.activations, self.dtype = list(sizes), list(activations), dtype
        self.weights = [make(rng, fan_in, fan_out, dtype) for fan_in, fan_out in itertools.pairwise(sizes)]
        self.biases = [np.zeros(fan_out, dtype) for fan_out in sizes[1:]]
        self._outputs: list[np.ndarray] = []

    @classmethod
    def from_arrays(cls, weights: list[np.ndarray], biases: list[np.ndarray], activations: list[str]) -> MLP:
        """A network from given weights (e.g. a loaded model file)."""
        model = cls.__new__(cls)
        model.sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
        model.activations, model.dtype = list(activations), weights[0].dtype
        model.weights, model.biases, model._outputs = list(weights), list(biases), []
        return model

    def parameters(self) -> list[np.ndarray]:
        """Weights then biases, the order ``backward`` returns gradients in."""
        return self.weights + self.biases

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs of the linear last layer (logits for classification); keeps what backward needs."""
        outputs = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = outputs[-1] @ w
            z += b
            if i < len(self.activations):
                z = ACTIVATIONS[self.activations[i]](z)
            outputs.append(z)
        self._outputs = outputs
        return outputs[-1]

    def backward(self, grad_output: np.ndarray) -> list[np.ndarray]:
        """Gradients of the loss for every parameter, given d loss / d output of the last forward."""
        outputs = self._outputs
        grad_w: list[np.ndarray] = [None] * len(self.weights)
        grad_b: list[np.ndarray] = [None] * len(self.biases)
        delta = grad_output
        for i in range(len(self.weights) - 1, -1, -1):
            grad_w[i] = outputs[i].T @ delta
            grad_b[i] = delta.sum(axis=0)
            if i > 0:
                delta = delta @ self.weights[i].T
                delta *= DERIVATIVES[self.activations[i - 1]](outputs[i])
        return grad_w + grad_b

    def predict_proba(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Class probabilities, computed in batches so memory stays bounded."""
        return np.concatenate([softmax(self.forward(x[i : i + batch])) for i in range(0, len(x), batch)])

    def predict(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Index of the most probable class per row."""
        return np.concatenate([self.forward(x[i : i + batch]).argmax(axis=1) for i in range(0, len(x), batch)])
