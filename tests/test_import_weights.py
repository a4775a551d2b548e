"""digittrain import-weights: pickled weights read through a restricted unpickler, into a model file."""

import collections
import hashlib
import itertools
import os
import pathlib
import pickle
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, SHARED_MNIST, write_image

from digitprep.cli import main as digitprep_main
from digittrain.cli import main
from digittrain.modelio import load_model
from digittrain.pickled_weights import (
    SAFE_GLOBALS,
    RefusedPickle,
    WeightsFileError,
    model_from_pickle,
    read_pickled,
)

SAMPLE_WEIGHTS = REPO.parent / "shared" / "data" / "pretrained" / "sample_weight.pkl"
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    """The command failed with exit 1 and a single line on its output."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def write_pickle(path: pathlib.Path, value, protocol: int = pickle.DEFAULT_PROTOCOL) -> pathlib.Path:
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    return path


class WritesFile:
    """Unpickled by a plain ``pickle.load``, this would write ``target``."""

    def __init__(self, target):
        self.target = pathlib.Path(target)

    def __reduce__(self):
        return pathlib.Path.write_text, (self.target, "written by a pickle")


class RunsShell:
    """Unpickled by a plain ``pickle.load``, this would run a shell command creating ``target``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def small_weights(sizes=(16, 8, 6, 5), seed=0, dtype=np.float64) -> dict:
    """W1..Wn, b1..bn of random values. Each column of W sums to 0: sigmoid outputs are all
    positive, and without that one output would win for every input (a weak test)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), 1):
        w = rng.normal(0, 4 / fan_in**0.5, (fan_in, fan_out))
        weights[f"W{i}"] = (w - w.mean(axis=0)).astype(dtype)
        weights[f"b{i}"] = rng.normal(0, 0.1, fan_out).astype(dtype)
    return weights


def forward(weights: list, biases: list, pixels: np.ndarray, hidden=lambda z: 1 / (1 + np.exp(-z))) -> np.ndarray:
    """Softmax probabilities of the network, in float64: the reference the model file must match."""
    a = pixels.astype(np.float64) / 255
    for i, (w, b) in enumerate(zip(weights, biases)):
        a = a @ w.astype(np.float64) + b.astype(np.float64).reshape(-1)
        if i < len(weights) - 1:
            a = hidden(a)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- what the unpickler refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol, asked_for",
    [
        (0, "__builtin__.getattr"),
        (2, "__builtin__.getattr"),
        (3, "builtins.getattr"),
        (4, "pathlib.Path.write_text"),
        (5, "pathlib.Path.write_text"),
    ],
)
def test_a_pickle_that_would_write_a_file_is_refused_and_writes_nothing(tmp_path, protocol, asked_for):
    target = tmp_path / "pwned.txt"
    evil = write_pickle(tmp_path / "evil.pkl", {"W1": np.ones((4, 2)), "b1": WritesFile(target)}, protocol)
    # The payload is live: called as a plain unpickler would call it, it writes its file.
    function, arguments = WritesFile(tmp_path / "control.txt").__reduce__()
    function(*arguments)
    assert (tmp_path / "control.txt").read_text() == "written by a pickle"

    line = one_error_line(invoke(["import-weights", evil, "--out", tmp_path / "m.npz"]))
    assert line == (
        f"Error: {evil}: refused: the pickle asks for {asked_for}; "
        "only NumPy arrays and plain containers (dicts, lists, tuples) are read"
    )
    assert not target.exists()
    assert not (tmp_path / "m.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["control.txt", "evil.pkl"]  # no temporaries either


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_a_pickle_that_would_run_a_shell_command_is_refused(tmp_path, protocol):
    target = tmp_path / "ran"
    evil = write_pickle(tmp_path / "evil.pkl", RunsShell(target), protocol)
    line = one_error_line(invoke(["import-weights", evil, "--out", tmp_path / "m.npz"]))
    assert f"refused: the pickle asks for {os.system.__module__}.system;" in line  # posix.system on Linux
    assert not target.exists()


def test_a_handwritten_os_system_pickle_is_refused_by_its_name(tmp_path):
    target = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(f"cos\nsystem\n(S'touch {target}'\ntR.".encode())
    with pytest.raises(RefusedPickle, match=r": refused: the pickle asks for os\.system; only NumPy arrays"):
        model_from_pickle(evil)
    assert not target.exists()


@pytest.mark.parametrize(
    "value, asked_for",
    [
        (collections.OrderedDict(W1=np.ones((2, 2))), "collections.OrderedDict"),
        ({"W1": np.ma.masked_array([1.0, 2.0])}, "numpy.ma.core._mareconstruct"),
    ],
)
def test_harmless_globals_outside_the_list_are_refused_too(tmp_path, value, asked_for):
    path = write_pickle(tmp_path / "w.pkl", value)
    with pytest.raises(RefusedPickle, match=re.escape(f"the pickle asks for {asked_for};")):
        model_from_pickle(path)


@pytest.mark.parametrize(
    "value, where",
    [
        ({"W1": np.array([1.5, "text"], dtype=object)}, "the pickle['W1'] is an array of Python objects"),
        ([(np.ones((3, 2)), np.array([None, None], dtype=object))], "the pickle[0][1] is an array of Python objects"),
        ({"W1": np.ones((3, 2)), "b1": None}, "the pickle['b1'] is a NoneType"),
        ({"W1": {1.0, 2.0}}, "the pickle['W1'] is a set"),  # protocol 4 has opcodes for sets: no global
        ({"W1": np.ones((3, 2)), "b1": b"\x00" * 8}, "the pickle['b1'] is a bytes"),
        ({b"W1": np.ones((3, 2))}, "a key of the pickle is a bytes"),
    ],
)
def test_objects_and_other_types_are_refused_after_loading(tmp_path, value, where):
    path = write_pickle(tmp_path / "w.pkl", value)
    line = one_error_line(invoke(["import-weights", path, "--out", tmp_path / "m.npz"]))
    assert (
        line
        == f"Error: {path}: refused: {where}; only NumPy arrays and plain containers (dicts, lists, tuples) are read"
    )
    assert not (tmp_path / "m.npz").exists()


def test_codecs_encode_is_accepted_for_latin1_only(tmp_path):
    # Protocols 0-2 write bytes as _codecs.encode(text, 'latin1'); a pickle asking for another codec
    # (zlib here, which would run compression code on the pickle's data) is not read.
    path = tmp_path / "w.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVzlib\ntR.")
    with pytest.raises(WeightsFileError, match=r"not a readable pickle \(UnpicklingError: _codecs.encode is read only"):
        model_from_pickle(path)


def test_the_allowed_globals_are_numpys_array_rebuilders_only():
    assert sorted(f"{module}.{name}" for module, name in SAFE_GLOBALS) == [
        "_codecs.encode",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy.dtype",
        "numpy.ndarray",
    ]


def _attributes(allowed) -> tuple:
    target = getattr(allowed, "function", allowed)  # a _Sealed wrapper: the function it wraps
    return getattr(target, "__defaults__", None), getattr(target, "foo", None)


@pytest.mark.parametrize("module, name", sorted(SAFE_GLOBALS))
def test_a_pickle_cannot_modify_the_globals_it_may_name(tmp_path, module, name):
    # BUILD sets attributes on whatever is on the stack: here, on the allowed global itself
    # (__defaults__ = ('x',), foo = 1). A plain pickle.load would do it to NumPy's _frombuffer.
    before = _attributes(SAFE_GLOBALS[module, name])
    path = tmp_path / "w.pkl"
    path.write_bytes(f"c{module}\n{name}\n(N}}V__defaults__\n(Vx\ntsVfoo\nI1\nstb.".encode())
    with pytest.raises(WeightsFileError, match=r": not a readable pickle \("):
        model_from_pickle(path)
    assert _attributes(SAFE_GLOBALS[module, name]) == before
    assert before[1] is None
    # Protocol 5 pickles (which call _frombuffer) still load as before.
    assert read_pickled(path, pickle.dumps(np.arange(3.0), protocol=5)).tolist() == [0.0, 1.0, 2.0]


def test_numpy_scalars_and_plain_values_are_data(tmp_path):
    value = {"W1": np.ones((2, 2)), "lr": np.float32(0.5), "epochs": np.int64(3), "notes": ["a", 1, 2.5, True]}
    for protocol in PROTOCOLS:
        loaded = read_pickled(tmp_path / "w.pkl", pickle.dumps(value, protocol=protocol))
        assert loaded["lr"] == np.float32(0.5) and loaded["epochs"] == 3 and loaded["notes"] == ["a", 1, 2.5, True]


# --- damaged files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: data[: len(data) // 2], "not a readable pickle"),
        (lambda data: data[:-1], "not a readable pickle"),
        (lambda data: b"", "not a readable pickle (EOFError: Ran out of input)"),
        (lambda data: b"\x89PNG\r\n\x1a\n" + data, "not a readable pickle (a persistent reference"),
        (lambda data: b"\x00" + data, "not a readable pickle (UnpicklingError: invalid load key, '\\x00'.)"),
        (lambda data: b"W1,b1\n1,2\n", "not a readable pickle"),
        (lambda data: data + b"more", "4 bytes after the end of the pickle"),
    ],
)
def test_truncated_corrupt_and_foreign_files_are_one_line_errors(tmp_path, damage, reason):
    data = pickle.dumps(small_weights())
    path = tmp_path / "w.pkl"
    path.write_bytes(damage(data))
    line = one_error_line(invoke(["import-weights", path, "--out", tmp_path / "m.npz"]))
    assert line.startswith(f"Error: {path}: {reason}"), line
    assert not (tmp_path / "m.npz").exists()


def test_a_pickle_that_calls_numpy_with_bad_arguments_is_a_one_line_error(tmp_path):
    path = tmp_path / "w.pkl"
    path.write_bytes(b"cnumpy\ndtype\n(Vno such type\ntR.")  # an allowed global, called wrongly
    with pytest.raises(WeightsFileError, match=r"not a readable pickle \(TypeError: data type 'no such type' not"):
        model_from_pickle(path)


# --- weights that load ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dict_of_arrays_predicts_like_a_numpy_forward_pass(tmp_path, protocol):
    weights = small_weights()
    weights["b2"] = weights["b2"].reshape(1, -1)  # biases stored as rows load too
    weights["W1"] = np.asfortranarray(weights["W1"])  # and column-major arrays
    path = write_pickle(tmp_path / "w.pkl", weights, protocol)
    result = invoke(["import-weights", path, "--out", tmp_path / "m.npz"])
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"{tmp_path / 'm.npz'}: 16-8-6-5, sigmoid hidden layers, softmax output, inputs /255 (from {path})\n"
    )

    model, scaler, metadata = load_model(tmp_path / "m.npz")
    pixels = np.random.default_rng(1).integers(0, 256, (50, 16)).astype(np.uint8)
    expected = forward([weights[f"W{i}"] for i in (1, 2, 3)], [weights[f"b{i}"] for i in (1, 2, 3)], pixels)
    probabilities = model.predict_proba(scaler.transform(pixels))
    np.testing.assert_allclose(probabilities, expected, atol=2e-6)
    assert (model.predict(scaler.transform(pixels)) == expected.argmax(axis=1)).all()
    assert len(set(expected.argmax(axis=1))) > 1  # the check means something: not one class for all
    assert model.sizes == [16, 8, 6, 5] and model.dtype == np.float32
    assert metadata["classes"] == [0, 1, 2, 3, 4]
    assert metadata["input_size"] == 16
    assert metadata["activations"] == ["sigmoid", "sigmoid"]
    assert metadata["scale"] == "unit"
    assert metadata["preprocessing"] == {"size": 4, "deskew": False, "center": False}
    assert metadata["source"]["file"] == "w.pkl"
    assert metadata["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_activation_option_sets_every_hidden_layer(tmp_path):
    weights = small_weights(seed=3)
    path = write_pickle(tmp_path / "w.pkl", weights)
    result = invoke(["import-weights", path, "--out", tmp_path / "m.npz", "--activation", "relu"])
    assert result.exit_code == 0, result.output
    assert "16-8-6-5, relu hidden layers" in result.output
    model, scaler, metadata = load_model(tmp_path / "m.npz")
    assert metadata["activations"] == ["relu", "relu"]
    pixels = np.random.default_rng(2).integers(0, 256, (40, 16)).astype(np.uint8)
    expected = forward(
        [weights[f"W{i}"] for i in (1, 2, 3)],
        [weights[f"b{i}"] for i in (1, 2, 3)],
        pixels,
        hidden=lambda z: np.maximum(z, 0),
    )
    np.testing.assert_allclose(model.predict_proba(scaler.transform(pixels)), expected, atol=2e-6)
    assert invoke(["import-weights", path, "--out", tmp_path / "m.npz", "--activation", "swish"]).exit_code == 2


@pytest.mark.parametrize("container", [list, tuple])
def test_a_list_of_pairs_gives_the_same_model_as_the_dict(tmp_path, container):
    weights = small_weights(seed=4)
    pairs = container((weights[f"W{i}"], weights[f"b{i}"]) for i in (1, 2, 3))
    from_dict, _, _ = model_from_pickle(write_pickle(tmp_path / "d.pkl", weights))
    from_pairs, _, metadata = model_from_pickle(write_pickle(tmp_path / "p.pkl", pairs))
    assert from_pairs.sizes == [16, 8, 6, 5]
    for mine, theirs in zip(from_pairs.parameters(), from_dict.parameters()):
        np.testing.assert_array_equal(mine, theirs)
    assert metadata["source"]["file"] == "p.pkl"


def test_key_case_does_not_matter_but_a_clash_does(tmp_path):
    weights = small_weights(seed=5)
    lower = {key.lower(): value for key, value in weights.items()}
    model, _, _ = model_from_pickle(write_pickle(tmp_path / "lower.pkl", lower))
    np.testing.assert_array_equal(model.weights[1], weights["W2"].astype(np.float32))
    clash = {**weights, "w2": weights["W2"]}
    with pytest.raises(WeightsFileError, match=r"both 'W2' and 'w2': keys differ only in case"):
        model_from_pickle(write_pickle(tmp_path / "clash.pkl", clash))


def test_a_network_without_hidden_layers_loads(tmp_path):
    weights = {"W1": np.eye(4, 3), "b1": np.zeros(3)}
    result = invoke(["import-weights", write_pickle(tmp_path / "w.pkl", weights), "--out", tmp_path / "m.npz"])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'm.npz'}: 4-3, softmax output" in result.output
    model, _, metadata = load_model(tmp_path / "m.npz")
    assert model.activations == [] and metadata["preprocessing"] == {"size": 2, "deskew": False, "center": False}


def test_a_non_square_input_records_no_size(tmp_path):
    _, _, metadata = model_from_pickle(write_pickle(tmp_path / "w.pkl", small_weights(sizes=(12, 4, 3))))
    assert metadata["preprocessing"] == {"deskew": False, "center": False}
    assert metadata["input_size"] == 12


def replaced(**changes) -> dict:
    weights = small_weights()
    weights.update(changes)
    return {key: value for key, value in weights.items() if value is not None}


@pytest.mark.parametrize(
    "value, message",
    [
        (replaced(W2=np.ones((7, 6))), "W2 has shape (7, 6) but the layer before gives 8 values: shapes do not chain"),
        (replaced(b2=np.ones(5)), "b2 has shape (5,); W2 (8, 6) needs (6,)"),
        (replaced(b2=np.ones((6, 1))), "b2 has shape (6, 1); W2 (8, 6) needs (6,)"),
        (replaced(W1=np.ones(16)), "W1 has shape (16,), not (inputs, outputs)"),
        (replaced(W1=np.ones((16, 8, 1))), "W1 has shape (16, 8, 1), not (inputs, outputs)"),
        (replaced(b3=None), "missing b3"),
        (replaced(W2=None, b2=None), "missing W2, b2"),
        (replaced(epoch=3), "keys other than W1..Wn and b1..bn: 'epoch'"),
        ({}, "missing W1..Wn and b1..bn"),
        (replaced(W1=np.ones((16, 8), np.int64)), "W1 has dtype int64, not floating point"),
        (replaced(W1=[[1.0] * 8] * 16), "W1 is a list, not a NumPy array"),
        (replaced(b1=np.full(8, np.nan)), "b1 has values that are NaN or infinite in float32"),
        (replaced(b1=np.full(8, 1e300)), "b1 has values that are NaN or infinite in float32"),
        (replaced(W3=np.ones((6, 1)), b3=np.ones(1)), "1 output: a classifier needs at least 2"),
        (
            [(np.ones((4, 3)), np.ones(3)), (np.ones((2, 2)), np.ones(2))],
            "item 1 W has shape (2, 2) but the layer before gives 3 values: shapes do not chain",
        ),
        ([(np.ones((4, 3)), np.ones(3), np.ones(3))], "item 0 of the list is not a (W, b) pair"),
        ([], "an empty list: no layers"),
        (np.ones((4, 3)), "holds a ndarray, not a dict of W1..Wn/b1..bn or a list of (W, b) pairs"),
    ],
)
def test_weights_that_do_not_make_a_network_are_one_line_errors(tmp_path, value, message):
    path = write_pickle(tmp_path / "w.pkl", value)
    line = one_error_line(invoke(["import-weights", path, "--out", tmp_path / "m.npz"]))
    assert line == f"Error: {path}: {message}"
    assert not (tmp_path / "m.npz").exists()


def test_nothing_else_in_the_project_unpickles():
    """The restricted unpickler is the only reader of pickles: no pickle.load(s), no Unpickler, no
    allow_pickle=True, no joblib/pandas/shelve pickle readers anywhere else in the packages."""
    reader = re.compile(
        r"^\s*(import|from)\s+(pickle|_pickle|dill|joblib|shelve|cloudpickle)\b|\bUnpickler\b|pickle\.loads?\b"
        r"|allow_pickle\s*=\s*True|read_pickle|joblib\.load|torch\.load"
    )
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for package in ("digitprep", "digittrain")
        for path in sorted((REPO / package).rglob("*.py"))
        if path.name != "pickled_weights.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reader.search(line)
    ]
    assert offenders == []


# --- the pretrained weights of the original write-up (../shared/data) ------------------------------


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory) -> pathlib.Path:
    if not SAMPLE_WEIGHTS.exists():
        pytest.skip("../shared/data/pretrained is absent")
    out = tmp_path_factory.mktemp("pretrained") / "sw.npz"
    result = invoke(["import-weights", SAMPLE_WEIGHTS, "--out", out])
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"{out}: 784-50-100-10, sigmoid hidden layers, softmax output, inputs /255 (from {SAMPLE_WEIGHTS})\n"
    )
    return out


def test_sample_weights_read_0_9352_on_the_mnist_test_set(sample_model, tmp_path):
    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip("../shared/data/mnist is absent")
    built = CliRunner().invoke(
        digitprep_main, ["mnist", str(images), "--sizes", "28", "--out", str(tmp_path / "X.csv"), "-q"]
    )
    assert built.exit_code == 0, built.output
    result = invoke(["evaluate", sample_model, "--test", tmp_path / "X.csv", "--confusion", tmp_path / "c.png"])
    assert result.exit_code == 0, result.output
    assert "accuracy = 0.9352\n" in result.output
    _, _, metadata = load_model(sample_model)
    assert metadata["source"]["file"] == "sample_weight.pkl"
    assert metadata["source"]["sha256"] == hashlib.sha256(SAMPLE_WEIGHTS.read_bytes()).hexdigest()


def test_sample_weights_predict_raw_mnist_pngs_as_the_book_does(sample_model, t10k, tmp_path):
    # `digittrain predict` must see these as MNIST-style raw 28x28 images: no deskew, no centring,
    # so its probabilities are those of the plain forward pass on the IDX pixels.
    pixels, labels = t10k
    paths = [write_image(tmp_path / f"{i}.png", pixels[i]) for i in range(12)]
    result = invoke(["predict", sample_model, *paths])
    assert result.exit_code == 0, result.output
    model, _, _ = load_model(sample_model)
    expected = forward(model.weights, model.biases, pixels[:12].reshape(12, -1))
    lines = [f"{path}: {p.argmax()} ({p.max():.3f})" for path, p in zip(paths, expected)]
    assert result.output.splitlines() == lines
    assert (expected.argmax(axis=1) == labels[:12]).mean() >= 11 / 12
