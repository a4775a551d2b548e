"""Model files: ``.npz`` with ``W1..Wn``, ``b1..bn``, optional scaler arrays and a JSON
``metadata`` entry. Loaded with ``allow_pickle=False``; anything else is a one-line ModelFileError."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from digitprep.atomic import write_atomic
from digittrain.activations import ACTIVATIONS
from digittrain.data import Scaler
from digittrain.model import MLP


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


def load_model(path: Path, default_activation: str = "sigmoid") -> tuple[MLP, Scaler, dict]:
    """(model, scaler, metadata). A bare weights file (``W1..Wn``, ``b1..bn``, no metadata, as in
    the original inference experiment) loads with ``default_activation`` hidden layers and /255."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz model file ({exc.__class__.__name__})") from None
    n_layers = len([k for k in contents if re.fullmatch(r"W\d+", k)])
    names = [f"W{i}" for i in range(1, n_layers + 1)] + [f"b{i}" for i in range(1, n_layers + 1)]
    missing = [name for name in names if name not in contents]
    if n_layers == 0 or missing:
        raise ModelFileError(f"{path}: not a model: missing {', '.join(missing) or 'W1..Wn and b1..bn'}")
    weights = [contents[f"W{i}"].astype(np.float32) for i in range(1, n_layers + 1)]
    biases = [contents[f"b{i}"].astype(np.float32).reshape(-1) for i in range(1, n_layers + 1)]
    for i, (w, b) in enumerate(zip(weights, biases), 1):
        fan_in = weights[i - 2].shape[1] if i > 1 else w.shape[0]
        if w.ndim != 2 or w.shape[0] != fan_in or b.shape != (w.shape[1],):
            raise ModelFileError(f"{path}: layer {i} shapes do not chain (W{i} {w.shape}, b{i} {b.shape})")
    if "metadata" in contents:
        try:
            metadata = json.loads(str(contents["metadata"]))
        except json.JSONDecodeError:
            raise ModelFileError(f"{path}: metadata is not valid JSON") from None
    else:
        metadata = {"activations": [default_activation] * (n_layers - 1), "scale": "unit"}
    activations = metadata.get("activations", [])
    if len(activations) != n_layers - 1 or any(a not in ACTIVATIONS for a in activations):
        raise ModelFileError(f"{path}: metadata activations {activations} do not fit {n_layers} layers")
    scaler = Scaler(metadata.get("scale", "unit"), contents.get("scale_mean"), contents.get("scale_std"))
    if scaler.mode == "standard" and (scaler.mean is None or scaler.std is None):
        raise ModelFileError(f"{path}: standard scaling without its scale_mean/scale_std arrays")
    return MLP.from_arrays(weights, biases, activations), scaler, metadata


def check_input_size(path: Path, model: MLP, n_inputs: int, data_name: str) -> None:
    """One-line error when data and model disagree on the number of pixels."""
    if model.sizes[0] != n_inputs:
        raise ModelFileError(
            f"{path}: model takes {model.sizes[0]} inputs but {data_name} has {n_inputs} pixels per row"
        )
