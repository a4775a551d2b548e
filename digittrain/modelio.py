"""Model files: ``.npz`` with ``W1..Wn``, ``b1..bn``, optional scaler arrays and a JSON
``metadata`` entry. Read as a zip whose every ``.npy`` header is checked against the zip
directory before any array is allocated; anything else is a one-line ModelFileError."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from digitprep.atomic import write_atomic
from digittrain.activations import ACTIVATIONS
from digittrain.data import SCALINGS, Scaler
from digittrain.model import MLP

# Far above any network this project trains (784-1024-1024-10 float64 is 15 MB), far below what
# would exhaust a machine: a member that declares more is refused before it is read.
MAX_MODEL_BYTES = 1 << 30
# What a broken zip raises while its directory or a member is read (CRC, truncation, deflate
# data, an unsupported compression method, an encrypted member).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the reason."""


def model_bytes(model: MLP, scaler: Scaler, metadata: dict) -> bytes:
    """The ``.npz`` file of a model, its scaler and its metadata."""
    arrays = {f"W{i}": w for i, w in enumerate(model.weights, 1)}
    arrays.update({f"b{i}": b for i, b in enumerate(model.biases, 1)})
    if scaler.mode == "standard":
        arrays["scale_mean"], arrays["scale_std"] = scaler.mean, scaler.std
    full = {**metadata, "activations": model.activations, "sizes": model.sizes, "scale": scaler.mode}
    arrays["metadata"] = np.array(json.dumps(full, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_model(path: Path, model: MLP, scaler: Scaler, metadata: dict) -> None:
    """Write the model atomically (no half-written file on interruption)."""
    write_atomic(Path(path), model_bytes(model, scaler, metadata))


@dataclass
class _Member:
    """One ``.npy`` member as its header declares it; ``offset``: where its data starts."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: no overflow


def _header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """A member's ``.npy`` header, checked: plain numbers or text, a size that the zip directory
    confirms and that a model can have. Reads a few hundred bytes, allocates nothing else."""
    name = info.filename[: -len(".npy")]
    with archive.open(info) as member:
        try:
            version = npy.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(member)
            else:  # 3.0 only adds UTF-8 field names, which no model array has
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except ValueError as exc:  # bad magic, a header that is not the dict .npy requires
            raise ModelFileError(f"{path}: {name} is not a .npy array ({str(exc).splitlines()[0][:200]})") from None
        offset = member.tell()
    # Object arrays would be unpickled, which can run code: refused, as np.load(allow_pickle=False) does.
    if dtype.hasobject:
        raise ModelFileError(f"{path}: {name} holds Python objects (refused: unpickling them could run code)")
    if dtype.kind not in "biufUS" or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{path}: {name} has dtype {dtype}, not plain numbers or text")
    if any(side < 0 for side in shape):
        raise ModelFileError(f"{path}: {name} declares the impossible shape {shape}")
    found = _Member(info, shape, fortran, dtype, offset)
    if found.nbytes > MAX_MODEL_BYTES:
        raise ModelFileError(
            f"{path}: {name} declares a {shape} {dtype} array of {found.nbytes} bytes, "
            f"more than a model may hold ({MAX_MODEL_BYTES} bytes)"
        )
    if offset + found.nbytes != info.file_size:
        raise ModelFileError(
            f"{path}: {name} declares a {shape} {dtype} array ({found.nbytes} bytes) "
            f"but its zip entry holds {info.file_size - offset} bytes of data"
        )
    return found


def _array(path: Path, archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The data of a member whose header ``_header`` accepted (at most MAX_MODEL_BYTES)."""
    with archive.open(member.info) as handle:
        handle.read(member.offset)
        data = handle.read(member.nbytes)  # reaching the end of the entry checks its CRC too
    if len(data) != member.nbytes:
        raise ModelFileError(f"{path}: {member.info.filename} holds {len(data)} bytes, not {member.nbytes}")
    if member.nbytes == 0:
        return np.zeros(member.shape, member.dtype)
    order = "F" if member.fortran else "C"
    return np.frombuffer(data, member.dtype).reshape(member.shape, order=order)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the zip at ``path`` by name; all headers are checked first, so a
    member that lies about its size is refused before anything is allocated for it."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        if handle.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX:
            raise ModelFileError(f"{path}: not a readable .npz model file (a single .npy array, not a zip of them)")
        try:
            with zipfile.ZipFile(handle) as archive:
                infos = [info for info in archive.infolist() if info.filename.endswith(".npy")]
                declared = sum(info.file_size for info in infos)
                if declared > MAX_MODEL_BYTES:
                    raise ModelFileError(f"{path}: its arrays declare {declared} bytes, more than a model may hold")
                members = [_header(path, archive, info) for info in infos]
                return {m.info.filename[: -len(".npy")]: _array(path, archive, m) for m in members}
        except zipfile.BadZipFile as exc:
            raise ModelFileError(f"{path}: not a readable .npz model file ({exc})") from None
        except (OSError, *ZIP_ERRORS) as exc:  # OSError here: a seek the zip directory sent astray
            raise ModelFileError(f"{path}: not a readable .npz model file ({exc.__class__.__name__}: {exc})") from None


def _float_array(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as float32, if it is a float array of finite values."""
    if array.dtype.kind != "f":
        raise ModelFileError(f"{path}: {name} has dtype {array.dtype}, not float")
    if not np.isfinite(array).all():
        raise ModelFileError(f"{path}: {name} holds non-finite values")
    return array.astype(np.float32)


def _layers(path: Path, contents: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """float32 weights (fan_in, fan_out) and biases (fan_out,) whose shapes chain."""
    n_layers = len([k for k in contents if re.fullmatch(r"W\d+", k)])
    names = [f"W{i}" for i in range(1, n_layers + 1)] + [f"b{i}" for i in range(1, n_layers + 1)]
    missing = [name for name in names if name not in contents]
    if n_layers == 0 or missing:
        raise ModelFileError(f"{path}: not a model: missing {', '.join(missing) or 'W1..Wn and b1..bn'}")
    weights, biases = [], []
    for i in range(1, n_layers + 1):
        w, b = contents[f"W{i}"], contents[f"b{i}"]
        if w.ndim != 2 or 0 in w.shape:
            raise ModelFileError(f"{path}: W{i} has shape {w.shape}, not a 2-D (inputs, units) matrix")
        if i > 1 and w.shape[0] != weights[-1].shape[1]:
            raise ModelFileError(
                f"{path}: layer {i} shapes do not chain (W{i - 1} {weights[-1].shape}, W{i} {w.shape})"
            )
        if b.shape not in ((w.shape[1],), (1, w.shape[1])):
            raise ModelFileError(f"{path}: b{i} has shape {b.shape}, W{i} {w.shape} needs ({w.shape[1]},)")
        weights.append(_float_array(path, f"W{i}", w))
        biases.append(_float_array(path, f"b{i}", b).reshape(-1))
    return weights, biases


def _metadata(path: Path, contents: dict[str, np.ndarray], sizes: list[int], default_activation: str) -> dict:
    """The metadata entry (a JSON object), or what a bare weights file implies; the entries the
    tools read are checked against the arrays."""
    if "metadata" not in contents:
        return {"activations": [default_activation] * (len(sizes) - 2), "scale": "unit"}
    entry = contents["metadata"]
    if entry.shape != () or entry.dtype.kind not in "US":
        raise ModelFileError(f"{path}: metadata is a {entry.shape} {entry.dtype} array, not one JSON text")
    try:
        metadata = json.loads(entry.item())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata is a JSON {type(metadata).__name__}, not an object")
    activations = metadata.get("activations", [])
    if (
        not isinstance(activations, list)
        or len(activations) != len(sizes) - 2
        or any(not isinstance(a, str) or a not in ACTIVATIONS for a in activations)
    ):
        raise ModelFileError(f"{path}: metadata activations {activations} do not fit {len(sizes) - 1} layers")
    if metadata.get("scale", "unit") not in SCALINGS:
        raise ModelFileError(f"{path}: metadata scale {metadata['scale']!r} is not one of {', '.join(SCALINGS)}")
    if "sizes" in metadata and metadata["sizes"] != sizes:
        raise ModelFileError(f"{path}: metadata sizes {metadata['sizes']} but the arrays make {sizes}")
    if "input_size" in metadata and metadata["input_size"] != sizes[0]:
        raise ModelFileError(f"{path}: metadata input_size {metadata['input_size']!r} but W1 takes {sizes[0]}")
    classes = metadata.get("classes")
    if classes is not None and (
        not isinstance(classes, list)
        or any(not isinstance(c, int) or isinstance(c, bool) for c in classes)
        or len(set(classes)) != len(classes)
        or len(classes) != sizes[-1]
    ):
        raise ModelFileError(f"{path}: metadata classes {classes} are not {sizes[-1]} distinct integers")
    if not isinstance(metadata.get("preprocessing") or {}, dict):
        raise ModelFileError(f"{path}: metadata preprocessing is not a JSON object")
    return metadata


def _scaler(path: Path, contents: dict[str, np.ndarray], mode: str, n_inputs: int) -> Scaler:
    if mode != "standard":
        return Scaler(mode)
    arrays = []
    for name in ("scale_mean", "scale_std"):
        if name not in contents:
            raise ModelFileError(f"{path}: standard scaling without its scale_mean/scale_std arrays")
        if contents[name].shape != (n_inputs,):
            raise ModelFileError(f"{path}: {name} has shape {contents[name].shape}, not ({n_inputs},) like W1")
        arrays.append(_float_array(path, name, contents[name]))
    if (arrays[1] <= 0).any():
        raise ModelFileError(f"{path}: scale_std holds values that are not positive")
    return Scaler(mode, *arrays)


def load_model(path: Path, default_activation: str = "sigmoid") -> tuple[MLP, Scaler, dict]:
    """(model, scaler, metadata). A bare weights file (``W1..Wn``, ``b1..bn``, no metadata, as in
    the original inference experiment) loads with ``default_activation`` hidden layers and /255.
    Weights are float32 (fan_in, fan_out), biases (fan_out,). Any file that is not such a model
    (not a zip, truncated, an array too big or lying about its size, object arrays, shapes that do
    not chain, metadata that is not a JSON object fitting the arrays) is a ModelFileError naming it."""
    path = Path(path)
    contents = _arrays(path)
    weights, biases = _layers(path, contents)
    sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
    metadata = _metadata(path, contents, sizes, default_activation)
    scaler = _scaler(path, contents, metadata.get("scale", "unit"), sizes[0])
    return MLP.from_arrays(weights, biases, metadata.get("activations", [])), scaler, metadata


def check_input_size(path: Path, model: MLP, n_inputs: int, data_name: str) -> None:
    """One-line error when data and model disagree on the number of pixels."""
    if model.sizes[0] != n_inputs:
        raise ModelFileError(
            f"{path}: model takes {model.sizes[0]} inputs but {data_name} has {n_inputs} pixels per row"
        )
