"""Model files a trusted tool would accept, and the outputs of a `digittrain` run: checked before
the training, the model before its results row, rows appended without loss by runs at once."""

import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import halves_csv
from numpy.lib import format as npy

from digitprep.atomic import OutputError, OutputFile
from digittrain.cli import main
from digittrain.data import Scaler
from digittrain.model import MLP
from digittrain.modelio import MAX_MODEL_BYTES, ModelFileError, load_model, model_bytes, save_model
from digittrain.reports import append_result

DIGITTRAIN = [sys.executable, "-c", "from digittrain.cli import main; main()"]


def toy_csv(path, n=60, seed=0):
    return halves_csv(path, n, seed)


def good_arrays(scale="unit"):
    """The arrays of a valid 16-8-2 model file, metadata included, to spoil one at a time."""
    model = MLP([16, 8, 2], ["relu"], seed=3)
    scaler = Scaler(scale, np.full(16, 100, np.float32), np.full(16, 50, np.float32)) if scale == "standard" else None
    with np.load(io.BytesIO(model_bytes(model, scaler or Scaler(scale), {"classes": [1, 2]}))) as archive:
        return {name: archive[name] for name in archive.files}


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def with_metadata(**changes):
    arrays = good_arrays()
    arrays["metadata"] = np.array(json.dumps({**json.loads(str(arrays["metadata"])), **changes}))
    return arrays


def npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def lying_npz(path, shape, size=2048):
    """A zip whose W1.npy member is ``size`` bytes but whose header declares ``shape`` float64."""
    header = npy_header(shape)
    return zip_of(path, **{"W1.npy": header + bytes(size - len(header)), "b1.npy": npy_header((2,)) + bytes(16)})


def zip_of(path, **members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def assert_one_line(result, path, reason):
    """Exit 1, one line on stderr naming ``path`` and ``reason``, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}: ") and reason in line, line


def evaluate(model_path, folder):
    return CliRunner().invoke(main, ["evaluate", str(model_path), "--test", str(toy_csv(folder / "small.csv"))])


# Each: (what the file is, how to write it at a path, what the one-line error says).
MALFORMED = {
    "npy renamed npz": (lambda p: p.write_bytes(npy_header((2, 2)) + bytes(32)), "a single .npy array, not a zip"),
    "metadata a JSON list": (lambda p: npz(p, **{**good_arrays(), "metadata": np.array("[1, 2]")}), "JSON list"),
    "metadata not JSON": (lambda p: npz(p, **{**good_arrays(), "metadata": np.array("{oops")}), "not valid JSON"),
    "metadata an array of texts": (
        lambda p: npz(p, **{**good_arrays(), "metadata": np.array(["{}", "{}"])}),
        "not one JSON text",
    ),
    "0-d W1": (lambda p: npz(p, **{**good_arrays(), "W1": np.float32(3)}), "W1 has shape (), not a 2-D"),
    "integer W1": (lambda p: npz(p, **{**good_arrays(), "W1": np.ones((16, 8), np.int64)}), "W1 has dtype int64"),
    "NaN in W2": (lambda p: npz(p, **{**good_arrays(), "W2": np.full((8, 2), np.nan)}), "W2 holds non-finite"),
    "b1 too narrow": (lambda p: npz(p, **{**good_arrays(), "b1": np.zeros(7, np.float32)}), "b1 has shape (7,)"),
    "W2 does not chain": (lambda p: npz(p, **{**good_arrays(), "W2": np.zeros((9, 2))}), "layer 2 shapes do not"),
    "b2 missing": (lambda p: npz(p, **{k: v for k, v in good_arrays().items() if k != "b2"}), "missing b2"),
    "unknown scaling": (lambda p: npz(p, **with_metadata(scale="weird")), "scale 'weird' is not one of unit"),
    "unknown activation": (lambda p: npz(p, **with_metadata(activations=["swish"])), "activations ['swish']"),
    "activations not a list": (lambda p: npz(p, **with_metadata(activations=7)), "activations 7 do not fit"),
    "classes a number": (lambda p: npz(p, **with_metadata(classes=5)), "classes 5 are not 2 distinct"),
    "sizes disagree": (lambda p: npz(p, **with_metadata(sizes=[16, 9, 2])), "sizes [16, 9, 2] but the arrays"),
    "standard without arrays": (lambda p: npz(p, **with_metadata(scale="standard")), "without its scale_mean"),
    "standard mean of the wrong width": (
        lambda p: npz(p, **{**good_arrays("standard"), "scale_mean": np.zeros(15, np.float32)}),
        "scale_mean has shape (15,), not (16,)",
    ),
    "object array": (
        lambda p: np.savez(p, **{**good_arrays(), "W1": np.array([1, "a"], dtype=object)}, allow_pickle=True),
        "W1 holds Python objects",
    ),
    "structured array": (
        lambda p: npz(p, **{**good_arrays(), "W1": np.zeros(3, [("a", "<f4"), ("b", "<i4")])}),
        "not plain numbers",
    ),
    "a zip that is not npz": (
        lambda p: zip_of(p, **{"notes.txt": "hello"}),
        "not a model: missing W1..Wn",
    ),
    "a member that is not .npy": (
        lambda p: zip_of(p, **{"W1.npy": "plain text, no magic"}),
        "W1 is not a .npy array",
    ),
    "a truncated zip": (lambda p: p.write_bytes(Path(npz(p, **good_arrays())).read_bytes()[:900]), "not a readable"),
    "an empty file": (lambda p: p.write_bytes(b""), "not a readable .npz model file"),
    "3.6 TiB declared in 2 KB": (lambda p: lying_npz(p, (1_000_000, 495_000)), "more than a model may hold"),
    "8 MB declared in 2 KB": (lambda p: lying_npz(p, (1000, 1000)), "(8000000 bytes) but its zip entry holds"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_model_file_is_one_line_naming_it_and_why(tmp_path, case):
    write, reason = MALFORMED[case]
    path = tmp_path / "bad.npz"
    write(path)
    assert_one_line(evaluate(path, tmp_path), path, reason)
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_folder_or_a_missing_path_is_a_model_file_error(tmp_path):
    for path, reason in [(tmp_path, "Is a directory"), (tmp_path / "absent.npz", "No such file")]:
        with pytest.raises(ModelFileError, match=f"^{path}: cannot read \\({reason}"):
            load_model(path)


@pytest.mark.parametrize("shape", [(1_000_000, 495_000), (12_000, 10_000)])  # 3.6 TiB; 960 MB, under the cap
def test_a_member_lying_about_its_size_is_refused_before_any_allocation(tmp_path, shape):
    path = lying_npz(tmp_path / "bomb.npz", shape)
    assert path.stat().st_size < 3000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="W1 declares a"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # NumPy reports its allocations to tracemalloc: nothing the size of the array
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024


def test_arrays_declaring_more_than_the_cap_in_total_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("digittrain.modelio.MAX_MODEL_BYTES", 1000)
    path = npz(tmp_path / "m.npz", **good_arrays())  # 16*8*4 + ... bytes: over 1000
    with pytest.raises(ModelFileError, match=r"arrays declare \d+ bytes, more than a model may hold"):
        load_model(path)
    assert MAX_MODEL_BYTES == 1 << 30


def test_a_good_model_round_trips(tmp_path):
    model = MLP([16, 8, 4, 2], ["relu", "tanh"], seed=7)
    scaler = Scaler.fit("standard", np.random.default_rng(0).integers(0, 256, (30, 16)).astype(np.uint8))
    metadata = {"classes": [3, 5], "input_size": 16, "preprocessing": {"size": 4}, "metrics": {"test": 0.5}}
    save_model(tmp_path / "m.npz", model, scaler, metadata)
    loaded, loaded_scaler, loaded_metadata = load_model(tmp_path / "m.npz")
    for mine, theirs in zip(model.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(mine, theirs)
    assert loaded.sizes == [16, 8, 4, 2] and loaded.activations == ["relu", "tanh"]
    assert loaded_scaler.mode == "standard"
    np.testing.assert_array_equal(loaded_scaler.mean, scaler.mean)
    np.testing.assert_array_equal(loaded_scaler.std, scaler.std)
    assert loaded_metadata == {**metadata, "activations": ["relu", "tanh"], "sizes": [16, 8, 4, 2], "scale": "standard"}
    x = np.random.default_rng(1).random((5, 16), np.float32)
    np.testing.assert_array_equal(model.forward(x), loaded.forward(x))


def test_a_bare_float64_weights_file_with_row_biases_loads(tmp_path):
    rng = np.random.default_rng(2)
    w1, b1, w2, b2 = rng.random((16, 5)), rng.random((1, 5)), rng.random((5, 2)), rng.random((1, 2))
    model, scaler, metadata = load_model(npz(tmp_path / "w.npz", W1=w1, b1=b1, W2=w2, b2=b2), "tanh")
    assert model.sizes == [16, 5, 2] and model.activations == ["tanh"] and scaler.mode == "unit"
    assert metadata == {"activations": ["tanh"], "scale": "unit"}
    np.testing.assert_allclose(model.biases[0], b1[0].astype(np.float32))


# --- digittrain's outputs -------------------------------------------------------------------------


def train_args(folder, *outputs, seed=0):
    return ["--train", str(toy_csv(folder / "train.csv")), "--hidden", "4", "--epochs", "1", "--seed", str(seed)] + [
        str(o) for o in outputs
    ]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_save_under_a_file_fails_before_the_training(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    save = tmp_path / "blocker" / "m.npz"
    result = invoke(*train_args(tmp_path), "--save", save, "--results", tmp_path / "r.csv")
    assert_one_line(result, save, "cannot write (")
    assert "Epoch" not in result.output and not (tmp_path / "r.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "train.csv"]


def test_an_unreadable_results_table_fails_before_the_training(tmp_path):
    (tmp_path / "r.csv").write_bytes(b"finished,seed\n\xff\xfe,1\n")
    result = invoke(*train_args(tmp_path), "--save", tmp_path / "m.npz", "--results", tmp_path / "r.csv")
    assert_one_line(result, tmp_path / "r.csv", "cannot read the results table (UnicodeDecodeError")
    assert "Epoch" not in result.output and not (tmp_path / "m.npz").exists()


def test_a_model_that_fails_at_commit_leaves_no_results_row(tmp_path, monkeypatch):
    real_publish = OutputFile.publish

    def publish(self):
        if self.path.name == "m.npz":
            raise OutputError(f"{self.path}: cannot write (Input/output error)")
        real_publish(self)

    monkeypatch.setattr(OutputFile, "publish", publish)
    result = invoke(*train_args(tmp_path), "--save", tmp_path / "m.npz", "--results", tmp_path / "r.csv")
    assert_one_line(result, tmp_path / "m.npz", "Input/output error")
    assert "Epoch 1" in result.output  # it trained, and then recorded nothing
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "r.csv").exists()
    assert list(tmp_path.glob(".*.tmp")) == []


def test_the_results_row_comes_after_the_model_and_plot(tmp_path, monkeypatch):
    """A results table that fails to take the row leaves the model and plot in place, the table as it was."""
    table = "finished,test_accuracy\n2024-01-01T00:00:00,0.5\n"  # the row's new columns widen it: a rewrite
    (tmp_path / "r.csv").write_text(table)
    real_write = OutputFile.write

    def write(self, data):
        if self.path.name == "r.csv":
            raise OutputError(f"{self.path}: cannot write (No space left on device)")
        real_write(self, data)

    monkeypatch.setattr(OutputFile, "write", write)
    outputs = ["--save", tmp_path / "m.npz", "--plot", tmp_path / "c.png", "--results", tmp_path / "r.csv"]
    result = invoke(*train_args(tmp_path), *outputs)
    assert_one_line(result, tmp_path / "r.csv", "No space left on device")
    assert load_model(tmp_path / "m.npz")[0].sizes == [16, 4, 2]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "r.csv").read_text() == table


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_ten_runs_at_once_append_ten_intact_rows(tmp_path):
    toy_csv(tmp_path / "train.csv")
    results = tmp_path / "r.csv"
    runs = [
        subprocess.Popen(
            [*DIGITTRAIN, *train_args(tmp_path, seed=seed), "--results", results],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(10)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    lines = results.read_text().splitlines()
    rows = read_table(results)
    assert len(lines) == 11 and lines[0].startswith("finished,")
    assert sorted(int(row["seed"]) for row in rows) == list(range(10))
    for row in rows:
        assert list(row) == lines[0].split(",") and row["hidden"] == "4" and row["epochs"] == "1"
        assert 0 <= float(row["test_accuracy"]) <= 1 and row["finished"].startswith("20")


def hammer(path, worker, count):
    """``count`` rows from one worker; every fifth row brings a new column (a widening rewrite)."""
    for i in range(count):
        extra = {f"extra_{worker}_{i}": "x"} if i % 5 == 4 else {}
        append_result(path, {"worker": worker, "i": i, "payload": f"{worker}-{i}-" + "y" * 300, **extra})


@pytest.mark.parametrize("pool", [ProcessPoolExecutor, ThreadPoolExecutor])
def test_appends_from_many_writers_lose_nothing(tmp_path, pool):
    path, workers, count = tmp_path / "r.csv", 6, 25
    with pool(workers) as executor:
        for done in [executor.submit(hammer, path, w, count) for w in range(workers)]:
            done.result()
    rows = read_table(path)
    assert sorted((int(r["worker"]), int(r["i"])) for r in rows) == [
        (w, i) for w in range(workers) for i in range(count)
    ]
    assert all(r["payload"] == f"{r['worker']}-{r['i']}-" + "y" * 300 for r in rows)
    extras = [k for k in rows[0] if k.startswith("extra_")]
    assert len(extras) == workers * (count // 5)
    for r in rows:  # each widening column is filled on the one row that brought it
        assert [k for k in extras if r[k]] == ([f"extra_{r['worker']}_{r['i']}"] if int(r["i"]) % 5 == 4 else [])
    assert list(tmp_path.glob(".*.tmp")) == []


def test_append_keeps_the_header_order_and_mends_a_missing_newline(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("b,a,c\n1,2,3")  # edited by hand: no newline at the end
    append_result(path, {"a": "x", "b": None})
    assert path.read_text() == "b,a,c\n1,2,3\n,x,\n"
    append_result(path, {"d": 4, "a": "y"})
    assert path.read_text() == "b,a,c,d\n1,2,3,\n,x,,\n,y,,4\n"
    append_result(tmp_path / "new" / "r.csv", {"a": 1.5, "b": "with, comma"})
    assert (tmp_path / "new" / "r.csv").read_text() == 'a,b\n1.5,"with, comma"\n'


def test_a_table_with_rows_longer_than_its_header_is_refused(tmp_path):
    (tmp_path / "r.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'r.csv'}: cannot read the results table"):
        append_result(tmp_path / "r.csv", {"a": 1})
    assert (tmp_path / "r.csv").read_text() == "a,b\n1,2,3\n"


# --- as a user permission bits apply to (we run as root) -----------------------------------------


def unprivileged() -> list[str]:
    """A command prefix that runs as nobody (uid 65534), or nothing when we are not root already."""
    if os.geteuid() != 0:
        return []
    for prefix in (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], ["runuser", "-u", "nobody", "--"]):
        if shutil.which(prefix[0]):
            check = subprocess.run([*prefix, *DIGITTRAIN, "--help"], capture_output=True, cwd="/")
            if check.returncode == 0:
                return prefix
    pytest.skip("cannot run digittrain as an unprivileged user here (no setpriv/runuser, or the venv unreadable)")


@pytest.fixture
def shared_folder():
    """A world-readable temporary folder (pytest's tmp_path is root's only), with a training CSV
    and a results folder anyone can write to."""
    folder = Path(tempfile.mkdtemp(prefix="digittrain-perm-", dir="/tmp"))  # TMPDIR may be private
    try:
        folder.chmod(0o755)
        toy_csv(folder / "train.csv").chmod(0o644)
        (folder / "out").mkdir(mode=0o777)
        (folder / "out").chmod(0o777)
        yield folder
    finally:
        shutil.rmtree(folder)


def run_unprivileged(folder, save):
    prefix = unprivileged()
    args = ["--train", folder / "train.csv", "--hidden", "4", "--epochs", "1", "--save", save]
    command = [*prefix, *DIGITTRAIN, *map(str, args), "--results", str(folder / "out" / "r.csv")]
    return subprocess.run(command, capture_output=True, text=True, cwd=folder / "out", timeout=300)


def test_save_into_a_read_only_folder_fails_before_the_training(shared_folder):
    (shared_folder / "ro").mkdir()
    (shared_folder / "ro").chmod(0o555)
    save = shared_folder / "ro" / "m.npz"
    run = run_unprivileged(shared_folder, save)
    assert run.returncode == 1 and "Epoch" not in run.stdout and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"Error: {save}: cannot write (Permission denied)"]
    assert os.listdir(shared_folder / "ro") == [] and os.listdir(shared_folder / "out") == []


def test_save_over_another_users_file_in_a_sticky_folder_fails_before_the_training(shared_folder):
    """A folder like /tmp: the temporary can be made beside the file, the rename over it not."""
    (shared_folder / "sticky").mkdir()
    (shared_folder / "sticky").chmod(0o1777)
    save = shared_folder / "sticky" / "m.npz"
    save.write_bytes(b"root's model")
    run = run_unprivileged(shared_folder, save)
    assert run.returncode == 1 and "Epoch" not in run.stdout and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"Error: {save}: cannot write (another user's file in a folder with the sticky bit)"
    ]
    assert save.read_bytes() == b"root's model" and os.listdir(shared_folder / "out") == []


def test_an_unprivileged_run_saves_and_appends(shared_folder):
    """The same commands succeed where the user may write: the failures above are the permissions."""
    run = run_unprivileged(shared_folder, shared_folder / "out" / "m.npz")
    assert run.returncode == 0, run.stderr
    assert load_model(shared_folder / "out" / "m.npz")[0].sizes == [16, 4, 2]
    assert len(read_table(shared_folder / "out" / "r.csv")) == 1


def test_threads_share_one_process_but_not_the_lock(tmp_path):
    """flock locks belong to each open of the file: two threads' appends exclude each other too."""
    barrier = threading.Barrier(8)

    def one(worker):
        barrier.wait()
        append_result(tmp_path / "r.csv", {"worker": worker, f"c{worker}": worker})

    threads = [threading.Thread(target=one, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = read_table(tmp_path / "r.csv")
    assert sorted(int(r["worker"]) for r in rows) == list(range(8))
    assert all(r[f"c{r['worker']}"] == r["worker"] for r in rows)
