"""Pretrained weights from a Python pickle, read through a restricted unpickler, as a model file.

A pickle is a program: unpickling calls whatever functions it names. Following the Python
documentation's advice (``pickle`` module, section "Restricting Globals"), ``WeightsUnpickler``
overrides ``find_class`` so that the only globals a pickle can name are the few NumPy needs to
rebuild arrays; anything else stops the read before it is imported, let alone called. What comes
out is then checked to be plain data (dicts, lists, tuples, strings, numbers and non-object
arrays), and turned into an ``MLP``: a dict ``W1..Wn``/``b1..bn`` or a list of ``(W, b)`` pairs,
sigmoid (or ``--activation``) hidden layers, a softmax output, inputs scaled /255 and recorded as
raw ``side x side`` images (no deskew, no centring), like MNIST as published.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import re
from pathlib import Path

import numpy as np

from digittrain.data import Scaler
from digittrain.model import MLP
from digittrain.modelio import save_model

try:  # NumPy 2 (and 1.26) keep these in numpy._core; older releases in numpy.core
    from numpy._core import multiarray, numeric
except ImportError:  # pragma: no cover - NumPy < 1.26
    from numpy.core import multiarray, numeric

PLAIN = "only NumPy arrays and plain containers (dicts, lists, tuples) are read"


class WeightsFileError(ValueError):
    """A weights pickle that cannot be used; the message names the file and the reason."""


class RefusedPickle(WeightsFileError):
    """A pickle that asks for something other than NumPy arrays and plain data."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it (bytes written as a latin-1 str), and nothing
    else: other codecs (zlib, bz2...) would let a pickle run compression code on its data."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode is read only for latin-1 text, not {encoding!r}")
    return text.encode("latin1")


class _Sealed:
    """A Python function a pickle may call but not change. The BUILD opcode sets attributes on
    whatever is on the stack: on a bare function it could rewrite ``__defaults__`` for the whole
    process (NumPy's own ``_frombuffer`` included). NumPy's types and C functions refuse that."""

    __slots__ = ("function",)

    def __init__(self, function):
        object.__setattr__(self, "function", function)

    def __call__(self, *args):
        return self.function(*args)

    def __setattr__(self, name, value):
        raise pickle.UnpicklingError(f"{self.function.__name__} cannot be modified")

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"{self.function.__name__} cannot be modified")


# (module, name) -> the object a pickle may name. NumPy arrays pickle as
# _reconstruct(ndarray, (0,), b"b") + a __setstate__ with dtype and raw bytes (protocols 0-4) or
# _frombuffer(buffer, dtype, shape, order) (protocol 5); NumPy scalars as scalar(dtype, bytes).
# Pickles written under NumPy 1.x say numpy.core, under 2.x numpy._core: both are the same functions.
SAFE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _Sealed(_latin1_bytes),
    **{
        (f"{package}.multiarray", name): getattr(multiarray, name)
        for package in ("numpy.core", "numpy._core")
        for name in ("_reconstruct", "scalar")
    },
    **{
        (f"{package}.numeric", "_frombuffer"): _Sealed(numeric._frombuffer) for package in ("numpy.core", "numpy._core")
    },
}


class WeightsUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only ``SAFE_GLOBALS``; any other global raises RefusedPickle
    naming it, before its module is imported. See the ``pickle`` documentation, "Restricting Globals"."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickle(f"{self.path}: refused: the pickle asks for {module}.{name}; {PLAIN}") from None

    def persistent_load(self, pid):
        # Nothing here is persistent; and other files often reach this opcode, 'P' (a PNG at its 2nd byte).
        raise WeightsFileError(
            f"{self.path}: not a readable pickle (a persistent reference: another program's format, or not a pickle)"
        )


def _shown(key) -> str:
    """A key as it reads in a message: its repr, cut short (a pickle may hold a megabyte-long key)."""
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_plain_scalar(item) -> bool:
    """str, int, float (bool is an int), or a NumPy number (what the scalar reconstructor makes)."""
    return isinstance(item, (str, int, float)) or (isinstance(item, np.generic) and item.dtype.kind in "biuf")


def check_plain(path: Path, loaded) -> None:
    """RefusedPickle unless ``loaded`` holds, at every level, only dicts, lists, tuples, strings,
    numbers and arrays whose dtype holds no Python objects. Walked with a stack, not recursion, so
    deep nesting or a container that holds itself cannot crash it."""
    stack, seen = [(loaded, "the pickle")], set()
    while stack:
        item, where = stack.pop()
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise RefusedPickle(f"{path}: refused: {where} is an array of Python objects; {PLAIN}")
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                stack += [(key, f"a key of {where}") for key in item]
                stack += [(value, f"{where}[{_shown(key)}]") for key, value in item.items()]
            else:
                stack += [(value, f"{where}[{i}]") for i, value in enumerate(item)]
        elif not _is_plain_scalar(item):
            raise RefusedPickle(f"{path}: refused: {where} is a {type(item).__name__}; {PLAIN}")


def read_pickled(path: Path, data: bytes):
    """The object pickled in ``data`` (the bytes of ``path``), read through WeightsUnpickler and
    checked by ``check_plain``. RefusedPickle for anything else; WeightsFileError for a truncated,
    corrupt or non-pickle file, or bytes after the pickle's end."""
    stream = io.BytesIO(data)
    try:
        loaded = WeightsUnpickler(stream, path).load()
    except WeightsFileError:  # a refused global, a persistent reference: already said
        raise
    # A damaged pickle can fail in almost any way (EOFError, UnpicklingError, KeyError on a bad
    # memo index, TypeError or ValueError from NumPy on wrong arguments, MemoryError...): all of
    # them mean the same thing to the user.
    except Exception as exc:
        reason = f": {str(exc).splitlines()[0]}" if str(exc).strip() else ""
        raise WeightsFileError(f"{path}: not a readable pickle ({exc.__class__.__name__}{reason})") from None
    if stream.tell() != len(data):
        raise WeightsFileError(f"{path}: {len(data) - stream.tell()} bytes after the end of the pickle")
    check_plain(path, loaded)
    return loaded


LAYER_KEY = re.compile(r"([WwBb])([1-9]\d*)")


def _pairs_from_dict(path: Path, loaded: dict) -> list[tuple[str, object, str, object]]:
    """(W name, W, b name, b) per layer from keys W1..Wn and b1..bn; the letter may be either case
    (w1, B1), the numbers run from 1 without gaps, and any other key is an error, so nothing in the
    file is silently left out."""
    found: dict[tuple[str, int], str] = {}
    strange = []
    for key in loaded:
        match = LAYER_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            strange.append(_shown(key))
            continue
        slot = (match[1].lower(), int(match[2]))
        if slot in found:
            raise WeightsFileError(f"{path}: both {found[slot]!r} and {key!r}: keys differ only in case")
        found[slot] = key
    if strange:
        raise WeightsFileError(f"{path}: keys other than W1..Wn and b1..bn: {', '.join(strange)}")
    n = max((number for _, number in found), default=0)
    missing = [f"{name}{i}" for i in range(1, n + 1) for name in ("W", "b") if (name.lower(), i) not in found]
    if n == 0 or missing:
        raise WeightsFileError(f"{path}: missing {', '.join(missing) or 'W1..Wn and b1..bn'}")
    return [(found["w", i], loaded[found["w", i]], found["b", i], loaded[found["b", i]]) for i in range(1, n + 1)]


def _pairs_from_sequence(path: Path, loaded: list | tuple) -> list[tuple[str, object, str, object]]:
    """(W name, W, b name, b) per layer from a list of (W, b) pairs."""
    if not loaded:
        raise WeightsFileError(f"{path}: an empty list: no layers")
    pairs = []
    for i, pair in enumerate(loaded):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise WeightsFileError(f"{path}: item {i} of the list is not a (W, b) pair")
        pairs.append((f"item {i} W", pair[0], f"item {i} b", pair[1]))
    return pairs


def _float32(path: Path, name: str, value) -> np.ndarray:
    """``value`` as a float32 array: it must be a floating-point array, finite in float32."""
    if not isinstance(value, np.ndarray):
        raise WeightsFileError(f"{path}: {name} is a {type(value).__name__}, not a NumPy array")
    if value.dtype.kind != "f":
        raise WeightsFileError(f"{path}: {name} has dtype {value.dtype}, not floating point")
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, reported just below
        array = value.astype(np.float32)
    if not np.isfinite(array).all():
        raise WeightsFileError(f"{path}: {name} has values that are NaN or infinite in float32")
    return array


def layers_of(path: Path, loaded) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(weights, biases) from a checked pickle: float32 ``W_i`` of shape (fan_in, fan_out) that
    chain, ``b_i`` (fan_out,) (also accepted stored as (1, fan_out)). WeightsFileError otherwise."""
    if isinstance(loaded, dict):
        pairs = _pairs_from_dict(path, loaded)
    elif isinstance(loaded, (list, tuple)):
        pairs = _pairs_from_sequence(path, loaded)
    else:
        raise WeightsFileError(
            f"{path}: holds a {type(loaded).__name__}, not a dict of W1..Wn/b1..bn or a list of (W, b) pairs"
        )
    weights, biases = [], []
    for w_name, w_value, b_name, b_value in pairs:
        w, b = _float32(path, w_name, w_value), _float32(path, b_name, b_value)
        fan_in = weights[-1].shape[1] if weights else None
        if w.ndim != 2 or 0 in w.shape:
            raise WeightsFileError(f"{path}: {w_name} has shape {w.shape}, not (inputs, outputs)")
        if fan_in is not None and w.shape[0] != fan_in:
            raise WeightsFileError(
                f"{path}: {w_name} has shape {w.shape} but the layer before gives {fan_in} values: shapes do not chain"
            )
        if b.shape not in ((w.shape[1],), (1, w.shape[1])):
            raise WeightsFileError(f"{path}: {b_name} has shape {b.shape}; {w_name} {w.shape} needs ({w.shape[1]},)")
        weights.append(w)
        biases.append(b.reshape(-1))
    if weights[-1].shape[1] < 2:
        raise WeightsFileError(f"{path}: {weights[-1].shape[1]} output: a classifier needs at least 2")
    return weights, biases


def model_from_pickle(path: Path, activation: str = "sigmoid") -> tuple[MLP, Scaler, dict]:
    """(model, scaler, metadata) from the weights pickled in ``path``: ``activation`` on every
    hidden layer, a softmax output over classes 0..k-1, inputs /255, metadata recording raw
    ``side x side`` images (when the input size is a square) and the file's name and SHA-256.
    RefusedPickle / WeightsFileError (one line, naming the file) when it cannot be used; OSError
    when it cannot be read."""
    path = Path(path)
    data = path.read_bytes()
    weights, biases = layers_of(path, read_pickled(path, data))
    model = MLP.from_arrays(weights, biases, [activation] * (len(weights) - 1))
    n_inputs = model.sizes[0]
    side = round(n_inputs**0.5)
    preprocessing = {"deskew": False, "center": False}
    if side * side == n_inputs:
        preprocessing["size"] = side
    metadata = {
        "classes": list(range(model.sizes[-1])),
        "input_size": n_inputs,
        "preprocessing": preprocessing,
        "source": {
            "file": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "imported_by": "digittrain import-weights",
        },
    }
    return model, Scaler("unit"), metadata


def import_weights(path: Path, out: Path, activation: str = "sigmoid") -> MLP:
    """Write the model ``model_from_pickle`` makes of ``path`` to ``out`` (``.npz``, atomically)."""
    model, scaler, metadata = model_from_pickle(path, activation)
    save_model(out, model, scaler, metadata)
    return model
