"""Optimisers updating parameter arrays in place. Each is a small class with ``step``; the table
at the end maps names to classes. L2 weight decay is applied by the trainer, not here."""

from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, params: list[np.ndarray], lr: float):
        self.params, self.lr = params, lr

    def step(self, grads: list[np.ndarray]) -> None:
        for p, g in zip(self.params, grads):
            p -= self.lr * g


class Momentum:
    """Heavy-ball momentum: v = mu * v - lr * g; p += v."""

    def __init__(self, params: list[np.ndarray], lr: float, momentum: float = 0.9):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Adam:
    """Adam (Kingma and Ba 2015) with bias correction folded into the step size."""

    def __init__(self, params: list[np.ndarray], lr: float, beta1: float = 0.9, beta2: float = 0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.scratch = [np.empty_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        # A Python float: a NumPy float64 scalar here would make the whole update float64.
        step_size = float(self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t))
        for p, m, v, g, s in zip(self.params, self.m, self.v, grads, self.scratch):
            # m += (1 - beta1)(g - m) is beta1 m + (1 - beta1) g; written in place into one scratch
            # buffer, the update allocates nothing, which matters when it runs every mini-batch.
            np.subtract(g, m, out=s)
            s *= 1 - self.beta1
            m += s
            np.square(g, out=s)
            s -= v
            s *= 1 - self.beta2
            v += s
            np.sqrt(v, out=s)
            s += self.eps
            np.divide(m, s, out=s)
            s *= step_size
            p -= s


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
