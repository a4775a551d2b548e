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


def uniform(keys: np.ndarray, purpose: int, count: int) -> np.ndarray:
    """float64 (n, count) in [0, 1): ``count`` values per key from the sub-stream ``purpose``.

    Purposes keep the streams of different transforms apart, so changing how many values one
    transform takes never changes another's."""
    sub = _combine(np.asarray(keys, np.uint64), np.full(len(keys), purpose, np.int64))
    with np.errstate(over="ignore"):
        states = sub[:, None] + np.arange(1, count + 1, dtype=np.uint64)[None, :] * _GOLDEN
    return (_mix64(states) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def symmetric(keys: np.ndarray, purpose: int, count: int = 1) -> np.ndarray:
    """float64 (n, count) uniform in [-1, 1)."""
    return uniform(keys, purpose, count) * 2 - 1


def normal(keys: np.ndarray, purpose: int, count: int) -> np.ndarray:
    """float64 (n, count) standard normal values (Box-Muller on two uniform sub-streams)."""
    u = uniform(keys, purpose, 2 * count)
    radius = np.sqrt(-2 * np.log1p(-u[:, :count]))  # 1 - u is in (0, 1]: the log is finite
    return radius * np.cos(2 * np.pi * u[:, count:])
