"""Random numbers keyed by (seed, row, copy): each image's values depend on nothing else.

Augmented copies must come out byte-identical whatever the number of worker processes and however
the rows are chunked. One ``np.random.Generator`` per image would give that, but costs a Python
call per image (about 28 us each, more than the augmentation itself at 28x28). Instead every value
is a hash of its key and its position: SplitMix64 (Steele, Lea, Flood 2014) evaluated on whole
arrays, so a chunk of images draws all its numbers in a few NumPy calls.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment: 2**64 / golden ratio, odd


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on uint64 that spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _combine(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix64(keys + _GOLDEN + values.astype(np.int64).view(np.uint64))


def stream_keys(seed: int, rows: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """uint64 key of each (seed, row, copy): the identity of one augmented image's random stream."""
    rows = np.atleast_1d(np.asarray(rows, np.int64))
    copies = np.broadcast_to(np.asarray(copies, np.int64), rows.shape)
    base = _mix64(np.full(rows.shape, seed & _MASK64, np.uint64))
    return _combine(_combine(base, rows), copies)


def uniform(keys: np.ndarray, purpose: int, count: int, dtype=np.float64) -> np.ndarray:
    """(n, count) values in [0, 1) on a grid of 2**-24 (exact in float32 and float64 alike), from the
    sub-stream ``purpose`` of each key; each 64-bit hash gives two values.

    Purposes keep the streams of different transforms apart, so changing how many values one
    transform takes never changes another's."""
    keys = np.asarray(keys, np.uint64)
    sub = _combine(keys, np.full(len(keys), purpose, np.int64))
    hashes = (count + 1) // 2
    with np.errstate(over="ignore"):
        states = sub[:, None] + np.arange(1, hashes + 1, dtype=np.uint64)[None, :] * _GOLDEN
    bits = _mix64(states)
    halves = np.empty((len(keys), 2 * hashes), np.uint64)
    np.right_shift(bits, np.uint64(40), out=halves[:, 0::2])
    np.bitwise_and(bits, np.uint64(0xFFFFFF), out=halves[:, 1::2])
    return halves[:, :count].astype(dtype) * dtype(2.0**-24)


def symmetric(keys: np.ndarray, purpose: int, count: int = 1, dtype=np.float64) -> np.ndarray:
    """(n, count) values uniform in [-1, 1)."""
    return uniform(keys, purpose, count, dtype) * dtype(2) - dtype(1)


def normal(keys: np.ndarray, purpose: int, count: int, dtype=np.float64) -> np.ndarray:
    """(n, count) standard normal values (Box-Muller on two uniform halves of the sub-stream)."""
    u = uniform(keys, purpose, 2 * count, dtype)
    radius = np.sqrt(dtype(-2) * np.log1p(-u[:, :count]))  # 1 - u is in (0, 1]: the log is finite
    return radius * np.cos(dtype(2 * np.pi) * u[:, count:])
