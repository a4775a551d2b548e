"""Losses: each returns (mean loss over the batch, gradient with respect to the network output)."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Stable log-softmax over the last axis: shifts by the row maximum before exponentiating."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Stable softmax: rows sum to 1, no overflow for any finite logits."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of softmax(logits) against target distributions (one-hot or smoothed);
    the fused gradient (softmax - targets) / n never forms the softmax's Jacobian."""
    log_probs = log_softmax(logits)
    n = len(logits)
    loss = float(-(targets * log_probs).sum() / n)
    return loss, (np.exp(log_probs) - targets) / n


def mean_squared_error(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over samples of the summed squared error per sample (MSE for one output)."""
    diff = outputs - targets
    n = len(outputs)
    return float((diff * diff).sum() / n), 2 * diff / n


LOSSES = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}
