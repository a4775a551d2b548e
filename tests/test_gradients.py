"""Numerical gradient checks (float64) for every activation, both losses and a 3-layer network;
stability at extreme inputs; XOR."""

import numpy as np
import pytest

from digittrain.activations import ACTIVATIONS, DERIVATIVES, sigmoid
from digittrain.losses import mean_squared_error, softmax, softmax_cross_entropy
from digittrain.model import MLP
from digittrain.optimizers import OPTIMIZERS

EPS = 1e-6


def numeric_gradient(f, x):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + EPS
        up = f()
        x[index] = old - EPS
        down = f()
        x[index] = old
        grad[index] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_matches_numeric(name):
    z = np.random.default_rng(0).normal(0, 2, 50)
    z = z[np.abs(z) > 1e-3]  # relu-type kinks at 0 have no derivative
    f = ACTIVATIONS[name]
    numeric = (f(z + EPS) - f(z - EPS)) / (2 * EPS)
    np.testing.assert_allclose(DERIVATIVES[name](f(z)), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", [softmax_cross_entropy, mean_squared_error])
def test_loss_gradients_match_numeric(loss):
    rng = np.random.default_rng(1)
    outputs = rng.normal(0, 3, (6, 4))
    targets = np.eye(4)[rng.integers(0, 4, 6)] * 0.9 + 0.025  # smoothed targets too
    _, grad = loss(outputs, targets)
    numeric = numeric_gradient(lambda: loss(outputs, targets)[0], outputs)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("loss", [softmax_cross_entropy, mean_squared_error])
def test_three_layer_network_gradients(activation, loss):
    rng = np.random.default_rng(2)
    model = MLP([5, 7, 6, 3], [activation, activation], init="xavier", seed=3, dtype=np.float64)
    for b in model.biases:
        b[:] = rng.normal(0, 0.5, b.shape)  # no exact zeros at relu kinks
    x = rng.normal(0, 1, (8, 5))
    targets = np.eye(3)[rng.integers(0, 3, 8)]

    def total():
        return loss(model.forward(x), targets)[0]

    _, grad_out = loss(model.forward(x), targets)
    grads = model.backward(grad_out)
    for param, grad in zip(model.parameters(), grads):
        np.testing.assert_allclose(grad, numeric_gradient(total, param), rtol=1e-4, atol=1e-7)


def test_sigmoid_and_softmax_are_stable_at_extremes():
    z = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = sigmoid(z)
        p = softmax(np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], np.float32))
        loss, grad = softmax_cross_entropy(
            np.array([[1000.0, -1000.0]], np.float32), np.array([[0.0, 1.0]], np.float32)
        )
    assert s.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)
    assert loss == pytest.approx(2000.0) and np.isfinite(grad).all()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_xor_is_learned_by_a_2_2_1_network(optimizer):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    y = np.array([[0], [1], [1], [0]], np.float64)
    lr = {"sgd": 0.5, "momentum": 0.1, "adam": 0.05}[optimizer]
    for seed in range(5):  # a 2-2-1 net can land in XOR's local minimum from a bad start
        model = MLP([2, 2, 1], ["tanh"], init="xavier", seed=seed, dtype=np.float64)
        opt = OPTIMIZERS[optimizer](model.parameters(), lr)
        for _ in range(3000):
            _, grad = mean_squared_error(model.forward(x), y)
            opt.step(model.backward(grad))
        if np.array_equal(model.forward(x) > 0.5, y > 0.5):
            break
    assert np.array_equal(model.forward(x) > 0.5, y > 0.5), optimizer


def test_same_seed_same_weights():
    a = MLP([64, 32, 10], ["relu"], seed=7)
    b = MLP([64, 32, 10], ["relu"], seed=7)
    assert all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.weights[0].dtype == np.float32
