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
        self._allocate(sizes, activations, dtype)
        for w, (fan_in, fan_out) in zip(self.weights, itertools.pairwise(sizes)):
            w[...] = make(rng, fan_in, fan_out, dtype)

    def _allocate(self, sizes: list[int], activations: list[str], dtype) -> None:
        """Zeroed parameters, all in one flat buffer (weights first, then biases) that ``weights``
        and ``biases`` are views of: an optimiser then updates every parameter in a few whole-buffer
        operations instead of a handful per layer, and L2 decay touches only the weight prefix."""
        self.sizes, self.activations, self.dtype = list(sizes), list(activations), np.dtype(dtype)
        shapes = [(fan_in, fan_out) for fan_in, fan_out in itertools.pairwise(sizes)]
        self.n_weight_values = sum(fan_in * fan_out for fan_in, fan_out in shapes)
        self.flat = np.zeros(self.n_weight_values + sum(sizes[1:]), self.dtype)
        self.flat_grad = np.zeros_like(self.flat)
        self.weights, self.biases = self._views(self.flat, shapes)
        self._grad_weights, self._grad_biases = self._views(self.flat_grad, shapes)
        self._outputs: list[np.ndarray] = []

    def _views(self, flat: np.ndarray, shapes: list[tuple[int, int]]) -> tuple[list, list]:
        """Per-layer weight matrices and bias vectors as views of ``flat``."""
        weights, biases, start = [], [], 0
        for shape in shapes:
            weights.append(flat[start : start + shape[0] * shape[1]].reshape(shape))
            start += shape[0] * shape[1]
        for _, fan_out in shapes:
            biases.append(flat[start : start + fan_out])
            start += fan_out
        return weights, biases

    @classmethod
    def from_arrays(cls, weights: list[np.ndarray], biases: list[np.ndarray], activations: list[str]) -> MLP:
        """A network from given weights (e.g. a loaded model file); the arrays are copied."""
        model = cls.__new__(cls)
        sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
        model._allocate(sizes, activations, weights[0].dtype)
        for mine, given in zip(model.parameters(), [*weights, *biases]):
            mine[...] = given
        return model

    def parameters(self) -> list[np.ndarray]:
        """Weights then biases (views of ``flat``), the order ``backward`` returns gradients in."""
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
        """Gradients of the loss for every parameter, given d loss / d output of the last forward.

        They are written into ``flat_grad`` (laid out like ``flat``) and returned as views of it,
        valid until the next call."""
        outputs = self._outputs
        delta = grad_output
        for i in range(len(self.weights) - 1, -1, -1):
            np.matmul(outputs[i].T, delta, out=self._grad_weights[i])
            np.sum(delta, axis=0, out=self._grad_biases[i])
            if i > 0:
                delta = delta @ self.weights[i].T
                delta *= DERIVATIVES[self.activations[i - 1]](outputs[i])
        return self._grad_weights + self._grad_biases

    def predict_proba(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Class probabilities, computed in batches so memory stays bounded."""
        return np.concatenate([softmax(self.forward(x[i : i + batch])) for i in range(0, len(x), batch)])

    def predict(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Index of the most probable class per row."""
        return np.concatenate([self.forward(x[i : i + batch]).argmax(axis=1) for i in range(0, len(x), batch)])
