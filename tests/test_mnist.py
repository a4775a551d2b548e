"""MNIST sources: IDX and Kaggle CSV readers, `digitprep mnist` (PNG tree and one-hot CSVs), and
the checked download, on small files written by the tests and the real t10k files when present (the full
`digitprep mnist` runs on t10k, subprocess and default options: test_mnist_png.py)."""

import gzip
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from functools import partial

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SHARED_MNIST

import digitprep.mnist as mnist_module
import digitprep.pngtree as pngtree
from digitprep.cli import main
from digitprep.csvio import read_onehot_csv
from digitprep.mnist import (
    DownloadError,
    MnistFormatError,
    fetch_mnist,
    load_mnist,
    read_idx_images,
    read_idx_labels,
    write_idx,
)
from digitprep.tables import KAGGLE_HEADER, read_table, write_kaggle_csv

KAGGLE_SAMPLE = SHARED_MNIST / "mnist_test_sample_kaggle.csv"


def synthetic_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like digits: white anti-aliased strokes on a black 28x28 frame, ink peaking at 255,
    so `build` without normalisation leaves them exactly as they are."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), np.uint8)
    for image, label, (dx, dy) in zip(images, labels, rng.integers(0, 4, (n, 2))):
        cv2.putText(image, str(label), (6 + int(dx), 21 + int(dy)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2, cv2.LINE_AA)
    return images, labels.astype(np.int64)


def write_pair(folder, images, labels, prefix="small", gz=True):
    """``prefix-images-idx3-ubyte[.gz]`` and its labels file; returns the images path."""
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))
    images_path = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    write_idx(images_path, images)
    return images_path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def t10k_files():
    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip("../shared/data/mnist is absent")
    return images, SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"


def file_mode():
    """The permissions a new file gets under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def tree_bytes(root):
    """Every file under ROOT (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def png_tree_pixels(root, count):
    """(count, 28, 28) images and labels read back from ROOT/<label>/<index>.png with OpenCV."""
    images = np.zeros((count, 28, 28), np.uint8)
    labels = np.full(count, -1)
    for path in root.glob("*/*.png"):
        index = int(path.stem)
        images[index] = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        labels[index] = int(path.parent.name)
    return images, labels


def rows_by_source_index(csv_path):
    """One-hot CSV rows put back in source order using the manifest (…/<index>.png or …#<index>)."""
    pixels, labels, _ = read_onehot_csv(csv_path)
    manifest = pd.read_csv(csv_path.with_name(f"{csv_path.stem}.manifest.csv"))
    index = manifest["path"].str.extract(r"[/#](\d+)(?:\.png)?$")[0].astype(int).to_numpy()
    order = np.argsort(index)
    return index[order], pixels[order], labels[order]


# --- IDX ---------------------------------------------------------------------------------------


def test_write_idx_writes_the_standard_header(tmp_path):
    write_idx(tmp_path / "a-images-idx3-ubyte", np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    data = (tmp_path / "a-images-idx3-ubyte").read_bytes()
    assert data[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert data[16:] == bytes(range(24))
    write_idx(tmp_path / "a-labels-idx1-ubyte.gz", np.array([7, 1], np.uint8))
    assert gzip.decompress((tmp_path / "a-labels-idx1-ubyte.gz").read_bytes()) == bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 1])


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_gzipped_or_not(tmp_path, gz):
    images, labels = synthetic_mnist(9)
    images_path = write_pair(tmp_path, images, labels, gz=gz)
    assert (images_path.read_bytes()[:2] == b"\x1f\x8b") == gz
    assert np.array_equal(read_idx_images(images_path), images)
    loaded_images, loaded_labels = load_mnist(images_path)  # labels found beside
    assert loaded_images.dtype == np.uint8 and loaded_images.shape == (9, 28, 28)
    assert np.array_equal(loaded_images, images) and np.array_equal(loaded_labels, labels)


def test_compression_is_told_from_the_bytes_not_the_name(tmp_path):
    images, labels = synthetic_mnist(4)
    gz_images = write_pair(tmp_path, images, labels, gz=True)
    misnamed = tmp_path / "odd"
    misnamed.mkdir()
    (misnamed / "odd-images-idx3-ubyte").write_bytes(gz_images.read_bytes())  # gzip without .gz
    (misnamed / "odd-labels-idx1-ubyte.gz").write_bytes(
        gzip.decompress(  # plain named .gz
            (tmp_path / "small-labels-idx1-ubyte.gz").read_bytes()
        )
    )
    loaded_images, loaded_labels = load_mnist([misnamed / "odd-images-idx3-ubyte"])
    assert np.array_equal(loaded_images, images) and np.array_equal(loaded_labels, labels)


def test_images_pair_with_the_labels_given_in_any_order(tmp_path):
    a_images, a_labels = synthetic_mnist(3, seed=1)
    b_images, b_labels = synthetic_mnist(5, seed=2)
    a = write_pair(tmp_path, a_images, a_labels, prefix="a", gz=False)
    b = write_pair(tmp_path, b_images, b_labels, prefix="b")
    kaggle = tmp_path / "k.csv"
    write_kaggle_csv(kaggle, a_images[:2], a_labels[:2])
    paths = [tmp_path / "b-labels-idx1-ubyte.gz", a, kaggle, b, tmp_path / "a-labels-idx1-ubyte"]
    images, labels = load_mnist(paths)
    assert np.array_equal(images, np.concatenate((a_images, a_images[:2], b_images)))
    assert np.array_equal(labels, np.concatenate((a_labels, a_labels[:2], b_labels)))


def test_real_t10k_files_read_as_the_raw_bytes_say(t10k):
    images_path, labels_path = t10k_files()
    images, labels = load_mnist([images_path, labels_path])
    assert images.shape == (10_000, 28, 28) and labels.dtype == np.int64
    assert np.array_equal(images, t10k[0]) and np.array_equal(labels, t10k[1])
    assert np.array_equal(read_idx_labels(labels_path), t10k[1])


@pytest.mark.parametrize(
    ("images", "labels", "reason"),
    [
        (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), "declares 0 x 28 x 28: no images"),
        (np.zeros((5, 0, 0), np.uint8), np.zeros(5, np.uint8), "declares 5 x 0 x 0: images of 0 pixels"),
        (np.zeros((3, 28, 0), np.uint8), np.zeros(3, np.uint8), "declares 3 x 28 x 0: images of 0 pixels"),
        (None, None, "a header and no data rows: no images"),  # a Kaggle CSV with its header only
    ],
)
def test_empty_sources_are_one_line_errors(tmp_path, images, labels, reason):
    if images is None:
        source = tmp_path / "header_only.csv"
        source.write_text(KAGGLE_HEADER + "\n")
    else:
        source = write_pair(tmp_path, images, labels)
    with pytest.raises(MnistFormatError, match=reason):
        load_mnist(source)
    for output in (["--out", tmp_path / "out" / "x.csv"], ["--out-dir", tmp_path / "out" / "tree"]):
        result = run("mnist", source, *output, "--jobs", 1)
        assert result.exit_code == 1 and result.output.startswith(f"Error: {source}: "), result.output
        assert reason in result.output and result.output.count("\n") == 1, result.output
        assert not (tmp_path / "out").exists()


def gzip_bomb(path, declared_images=10, zeros=2 << 30):
    """An IDX images file declaring ``declared_images`` 28x28 images, gzipped, followed by ``zeros``
    zero bytes (2 GiB: about 2 MB on disk). The zeros are gzip members of 64 MiB each, compressed
    once and repeated (a gzip file is any sequence of members), which takes under a second where
    streaming 2 GiB through one GzipFile takes 15."""
    member_bytes = 64 << 20
    member = gzip.compress(bytes(member_bytes), compresslevel=9, mtime=0)
    assert member[-4:] == member_bytes.to_bytes(4, "little")  # its trailer: inflates to 64 MiB
    header = bytes([0, 0, 8, 3]) + np.array([declared_images, 28, 28], ">u4").tobytes()
    with open(path, "wb") as handle:
        handle.write(gzip.compress(header + bytes(declared_images * 784), mtime=0))
        for _ in range(zeros // member_bytes):
            handle.write(member)
    return path


def peak_memory_of(command, cwd):
    """(exit code, stderr, peak resident MB) of a command run in a fresh interpreter, so that
    RUSAGE_CHILDREN sees that command (and its children) only."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.write(done.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *map(str, command)], capture_output=True, text=True, cwd=cwd)
    first, _, stderr = out.stdout.partition("\n")
    code, kib = map(int, first.split())
    return code, stderr, kib / 1024


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb-images-idx3-ubyte.gz")
    write_idx(tmp_path / "bomb-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    assert bomb.stat().st_size < 3 << 20
    started = time.monotonic()
    code, stderr, peak_mb = peak_memory_of(
        [sys.executable, "-m", "digitprep", "mnist", bomb.name, "--out", "x.csv"], tmp_path
    )
    elapsed = time.monotonic() - started
    expected = f"Error: {bomb.name}: more than 1048576 bytes after the 10 x 28 x 28 = 7840 the header declares\n"
    assert code == 1 and stderr == expected
    print(f"gzip bomb (2 GiB inflated): refused in {elapsed:.1f} s, peak memory {peak_mb:.0f} MB")
    assert peak_mb < 200  # inflating it whole would take over 2048 MB
    assert sorted(p.name for p in tmp_path.iterdir()) == [bomb.name, "bomb-labels-idx1-ubyte.gz"]


# --- Kaggle CSV --------------------------------------------------------------------------------


def test_kaggle_csv_with_or_without_header_loads_the_same(tmp_path):
    images, labels = synthetic_mnist(6)
    write_kaggle_csv(tmp_path / "with.csv", images, labels)
    write_kaggle_csv(tmp_path / "without.csv", images, labels, header=False)
    text = (tmp_path / "with.csv").read_text()
    assert text.startswith("label,1x1,1x2,") and KAGGLE_HEADER.endswith(",28x27,28x28")
    assert text.splitlines()[1] == ",".join(map(str, [labels[0], *images[0].ravel()]))
    assert (tmp_path / "without.csv").read_text() == text.split("\n", 1)[1]
    for name in ("with.csv", "without.csv"):
        loaded_images, loaded_labels = read_table(tmp_path / name)
        assert np.array_equal(loaded_images, images) and np.array_equal(loaded_labels, labels)
    (tmp_path / "packed.csv.gz").write_bytes(gzip.compress((tmp_path / "without.csv").read_bytes()))
    assert np.array_equal(load_mnist(tmp_path / "packed.csv.gz")[0], images)


def test_kaggle_sample_is_exactly_t10k_images(t10k, tmp_path):
    if not KAGGLE_SAMPLE.exists():
        pytest.skip("../shared/data/mnist is absent")
    images, labels = load_mnist(KAGGLE_SAMPLE)
    assert images.shape == (1000, 28, 28) and images.dtype == np.uint8
    position = {image.tobytes(): i for i, image in enumerate(t10k[0])}
    found = np.array([position.get(image.tobytes(), -1) for image in images])
    assert (found >= 0).all()  # every row is a t10k image, pixel for pixel
    assert np.array_equal(labels, t10k[1][found])  # with its true label
    headerless = tmp_path / "headerless.csv"
    headerless.write_bytes(KAGGLE_SAMPLE.read_bytes().split(b"\n", 1)[1])
    again_images, again_labels = load_mnist(headerless)
    assert np.array_equal(again_images, images) and np.array_equal(again_labels, labels)


# --- errors ------------------------------------------------------------------------------------


def bad_inputs(folder):
    """(files to pass, the file the message must name, words it must contain) per kind of bad input."""
    images, labels = synthetic_mnist(4)
    cases = {}

    def pair(name, images_data=None, labels_data=None):
        sub = folder / name
        sub.mkdir()
        path = write_pair(sub, images, labels, gz=False)
        if images_data is not None:
            path.write_bytes(images_data(path.read_bytes()))
        if labels_data is not None:
            (sub / "small-labels-idx1-ubyte").write_bytes(labels_data((sub / "small-labels-idx1-ubyte").read_bytes()))
        return sub, path

    sub, path = pair("truncated", images_data=lambda data: data[:-100])
    cases["truncated IDX"] = ([path], path, "truncated")
    sub, path = pair("shortheader", images_data=lambda data: data[:10])
    cases["truncated header"] = ([path], path, "truncated")
    sub, path = pair("extra", images_data=lambda data: data + b"\0\0")
    cases["extra bytes"] = ([path], path, "2 bytes after")
    sub, path = pair("gz")
    gz = sub / "small-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(path.read_bytes())[:-30])
    path.unlink()
    cases["truncated gzip"] = ([gz], gz, "truncated or corrupt gzip")
    sub, path = pair("gzextra", images_data=lambda data: data + b"\0\0")
    gz = sub / "small-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    cases["extra bytes in gzip"] = ([gz], gz, "2 bytes after the 4 x 28 x 28 = 3136 the header declares")
    sub, path = pair("huge", images_data=lambda data: data[:4] + (2**32 - 1).to_bytes(4, "big") + data[8:])
    cases["count far beyond the data"] = ([path], path, "3367254359280 bytes, found 3136")  # not allocated
    sides = (2**32 - 16).to_bytes(4, "big") * 2
    sub, path = pair(
        "overflow", images_data=lambda data: data[:4] + (2**32 - 16).to_bytes(4, "big") + sides + data[16:]
    )
    cases["a size past 2**63"] = ([path], path, "= 79228161628820625354020352000 bytes, found 3136")
    sub, path = pair("magic", images_data=lambda data: b"\0\0\x08\x02" + data[4:])
    cases["wrong magic"] = ([path], path, "wrong magic 0x00000802")
    sub, path = pair("swapped")
    cases["labels as images"] = (
        [sub / "small-labels-idx1-ubyte"],
        sub / "small-labels-idx1-ubyte",
        "without its images",
    )
    sub, path = pair("count", labels_data=lambda data: data[:7] + b"\x03" + data[8:-1])
    cases["count mismatch"] = ([path], path, "4 images but")
    sub, path = pair("label", labels_data=lambda data: data[:-1] + b"\x0c")
    cases["IDX label 12"] = ([path], sub / "small-labels-idx1-ubyte", "label 12 is not a digit")
    sub, path = pair("alone")
    (sub / "small-labels-idx1-ubyte").unlink()
    cases["no labels file"] = ([path], path, "no labels file")

    good = ",".join(["3"] + ["0"] * 784)
    csv_texts = {
        "non-square Kaggle rows": (",".join(["3"] + ["0"] * 401) + "\n") * 2,
        "short Kaggle row": KAGGLE_HEADER + "\n" + good + "\n" + ",".join(["3"] + ["0"] * 700) + "\n",
        "long Kaggle row": good + "\n" + good + ",0\n",
        "non-integer label": good + "\n" + "3.5" + good[1:] + "\n",
        "text value": good + "\n" + good.replace(",0,", ",ink,", 1) + "\n",
        "value 256": good + "\n" + good + "\n" + good[:-1] + "256\n",
        "negative value": good + "\n" + good.replace(",0,", ",-1,", 1) + "\n",
        "Kaggle label 12": good + "\n12" + good[1:] + "\n",
        "empty CSV": "",
    }
    reasons = {
        "non-square Kaggle rows": "402 columns leave 402 pixels, not a square image; give --shape HxW",
        "short Kaggle row": "data row 2: missing value",
        "long Kaggle row": "line 2 has 786 values, expected 785",
        "non-integer label": "data row 2: label 3.5 is not a digit 0-9",
        "text value": "data row 2, column 2: 'ink' is not an integer",
        "value 256": "data row 3, column 785: '256' is not an integer 0-255",
        "negative value": "data row 2, column 2: '-1' is not an integer",
        "Kaggle label 12": "data row 2: label 12 is not a digit",
        "empty CSV": "empty file",
    }
    for name, text in csv_texts.items():
        path = folder / (name.replace(" ", "_") + ".csv")
        path.write_text(text)
        cases[name] = ([path], path, reasons[name])
    return cases


def test_every_bad_input_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = bad_inputs(tmp_path)
    for name, (paths, culprit, reason) in cases.items():
        with pytest.raises(MnistFormatError) as caught:
            load_mnist(paths)
        assert str(culprit) in str(caught.value) and reason in str(caught.value), (name, str(caught.value))
        for output in (["--out", tmp_path / "out" / "x.csv"], ["--out-dir", tmp_path / "out" / "tree"]):
            result = run("mnist", *paths, *output)
            assert result.exit_code == 1, (name, result.output)
            assert result.output.startswith("Error: ") and result.output.count("\n") == 1, (name, result.output)
            assert reason in result.output and "Traceback" not in result.output
            assert not (tmp_path / "out").exists(), name  # nothing written, not even a folder


# --- digitprep mnist: PNG tree -----------------------------------------------------------------


def test_idx_to_png_tree_to_build_28_reproduces_the_pixels(tmp_path):
    images, labels = synthetic_mnist(40)
    source = write_pair(tmp_path, images, labels)
    result = run("mnist", source, "--out-dir", tmp_path / "tree")
    assert result.exit_code == 0 and "wrote 40 PNGs" in result.output
    tree_images, tree_labels = png_tree_pixels(tmp_path / "tree", 40)
    assert np.array_equal(tree_images, images) and np.array_equal(tree_labels, labels)
    out = tmp_path / "b.csv"
    plain = ["--sizes", 28, "--no-deskew", "--no-center"]  # build deskews and centres by default (issue 14)
    assert run("build", tmp_path / "tree", "--labels", "folder", *plain, "-q", "--out", out).exit_code == 0
    index, pixels, built_labels = rows_by_source_index(out)
    assert index.tolist() == list(range(40))
    assert np.array_equal(pixels, images.reshape(40, 784)) and np.array_equal(built_labels, labels)


def test_real_t10k_through_the_png_tree_and_build(t10k, tmp_path):
    images_path, _ = t10k_files()
    assert run("mnist", images_path, "--out-dir", tmp_path / "testing").exit_code == 0
    out = tmp_path / "t.csv"
    plain = ["--sizes", 28, "--no-deskew", "--no-center"]  # build deskews and centres by default (issue 14)
    assert run("build", tmp_path / "testing", "--labels", "folder", *plain, "-q", "--out", out).exit_code == 0
    index, pixels, labels = rows_by_source_index(out)
    assert index.tolist() == list(range(10_000))
    assert np.array_equal(pixels, t10k[0].reshape(10_000, 784)) and np.array_equal(labels, t10k[1])


def test_png_tree_replaces_digit_folders_only(tmp_path):
    images, labels = synthetic_mnist(12)
    labels[:] = np.arange(12) % 3  # digits 0-2 only
    source = write_pair(tmp_path, images, labels)
    tree = tmp_path / "tree"
    (tree / "9").mkdir(parents=True)
    (tree / "9" / "stale.png").write_bytes(b"old")
    (tree / "1").mkdir()
    (tree / "1" / "999.png").write_bytes(b"old")
    (tree / "notes.txt").write_text("mine")
    assert run("mnist", source, "--out-dir", tree).exit_code == 0
    assert sorted(p.name for p in tree.iterdir()) == ["0", "1", "2", "notes.txt"]
    assert sorted(int(p.stem) for p in (tree / "1").iterdir()) == [1, 4, 7, 10]
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name, "small-labels-idx1-ubyte.gz", "tree"]


def test_failed_png_tree_leaves_the_previous_one(tmp_path, monkeypatch):
    images, labels = synthetic_mnist(30)
    source = write_pair(tmp_path, images, labels)
    tree = tmp_path / "tree"
    assert run("mnist", source, "--out-dir", tree).exit_code == 0
    before = {p.relative_to(tree): p.read_bytes() for p in tree.rglob("*.png")}
    calls = []

    def failing_encode(image):
        calls.append(1)
        if len(calls) == 20:
            raise OSError("disk full")
        return cv2.imencode(".png", image)[1].tobytes()

    monkeypatch.setattr(pngtree, "encode_png", failing_encode)
    with pytest.raises(OSError, match="disk full"):
        pngtree.write_png_tree(images, labels, tree, jobs=1)
    assert {p.relative_to(tree): p.read_bytes() for p in tree.rglob("*.png")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name, "small-labels-idx1-ubyte.gz", "tree"]


def test_png_tree_is_the_same_whatever_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = synthetic_mnist(300, seed=6)
    source = write_pair(tmp_path, images, labels)
    trees = []
    for jobs in (1, 2):  # in process, then 8 tasks of 38 images on two workers
        result = run("mnist", source.name, "--out-dir", f"tree{jobs}", "--jobs", jobs)
        assert result.exit_code == 0 and "wrote 300 PNGs" in result.output
        trees.append(tree_bytes(tmp_path / f"tree{jobs}"))
    assert trees[0] == trees[1] and len(trees[0]) == 300
    tree_images, tree_labels = png_tree_pixels(tmp_path / "tree2", 300)
    assert np.array_equal(tree_images, images) and np.array_equal(tree_labels, labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [source.name, source.name.replace("images-idx3", "labels-idx1"), "tree1", "tree2"]
    )


def test_name_layout_replaces_files_of_those_names_only(tmp_path):
    images, labels = synthetic_mnist(30, seed=7)
    out = tmp_path / "flat"
    out.mkdir()
    (out / f"{labels[3]}_8_3.png").write_bytes(b"old")
    (out / "5_20_0.png").write_bytes(b"another source's")
    assert pngtree.write_png_tree(images, labels, out, tag="8", layout="name", jobs=2) == 30
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{label}_8_{i}.png" for i, label in enumerate(labels)] + ["5_20_0.png"])
    assert (out / "5_20_0.png").read_bytes() == b"another source's"
    for i, label in enumerate(labels):
        assert np.array_equal(cv2.imread(str(out / f"{label}_8_{i}.png"), cv2.IMREAD_UNCHANGED), images[i])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat"]  # no staging folder left


# --- digitprep mnist: one-hot CSVs -------------------------------------------------------------


def test_csv_at_28_without_normalisation_is_the_source_pixels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = synthetic_mnist(30)
    source = write_pair(tmp_path, images, labels)
    result = run("mnist", source.name, "--out", "m.csv")
    assert result.exit_code == 0 and "wrote 30 rows to m.csv" in result.output
    pixels, csv_labels, classes = read_onehot_csv(tmp_path / "m.csv")
    assert np.array_equal(pixels, images.reshape(30, 784)) and np.array_equal(csv_labels, labels)
    assert classes == tuple(range(10))
    manifest = (tmp_path / "m.manifest.csv").read_text().splitlines()
    assert manifest[0] == "path,label,tag,origin,width,height,sha256,orientation,inverted,paper,lines,stroke"
    digest = hashlib.sha256(images[1].tobytes()).hexdigest()
    assert manifest[2] == f"small-images-idx3-ubyte.gz#1,{labels[1]},,mnist,28,28,{digest},1,0,0,,"
    assert (tmp_path / "m.errors.csv").read_text() == "path,reason\n"
    record = json.loads((tmp_path / "m.build.json").read_text())
    assert (record["labels"], record["rows"], record["size"], record["deskew"]) == ("mnist", 30, 28, False)


def test_csv_with_normalisation_equals_build_on_the_png_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = synthetic_mnist(50, seed=3)
    source = write_pair(tmp_path, images, labels)
    assert run("mnist", source, "--out-dir", "tree").exit_code == 0
    options = ["--sizes", "20,8", "--deskew", "--center", "--box", 0.6, "--jobs", 1, "-q"]
    assert run("mnist", source, *options, "--out", "m.csv").exit_code == 0
    assert run("build", "tree", "--labels", "folder", *options, "--out", "b.csv").exit_code == 0
    for size in (20, 8):
        m_index, m_pixels, m_labels = rows_by_source_index(tmp_path / f"m_{size}.csv")
        b_index, b_pixels, b_labels = rows_by_source_index(tmp_path / f"b_{size}.csv")
        assert m_index.tolist() == b_index.tolist() == list(range(50))
        assert np.array_equal(m_pixels, b_pixels) and np.array_equal(m_labels, b_labels)


def test_csv_from_kaggle_rows_parallel_equals_serial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = synthetic_mnist(25, seed=4)
    write_kaggle_csv(tmp_path / "k.csv", images, labels, header=False)
    outputs = []  # 25 rows: tasks of 7 rows in process, of 4 rows on two workers
    for jobs in (1, 2):
        assert run("mnist", "k.csv", "--sizes", 14, "--center", "--jobs", jobs, "-q", "--out", "k14.csv").exit_code == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(tmp_path.glob("k14*"))})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 4
    assert (tmp_path / "k14.manifest.csv").read_text().splitlines()[25].startswith("k.csv#24,")


def test_classes_skip_other_digits_and_strict_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = synthetic_mnist(20, seed=5)
    source = write_pair(tmp_path, images, labels)
    result = run("mnist", source.name, "--classes", "1-5", "--out", "c.csv")
    wanted = (labels >= 1) & (labels <= 5)
    assert result.exit_code == 0 and f"skipped {(~wanted).sum()}" in result.output
    pixels, csv_labels, classes = read_onehot_csv(tmp_path / "c.csv")
    assert classes == (1, 2, 3, 4, 5) and np.array_equal(pixels, images[wanted].reshape(-1, 784))
    assert np.array_equal(csv_labels, labels[wanted])
    errors = (tmp_path / "c.errors.csv").read_text().splitlines()
    first_skipped = int(np.flatnonzero(~wanted)[0])
    assert errors[1] == f"{source.name}#{first_skipped},label {labels[first_skipped]} is not in the class set"
    result = run("mnist", source.name, "--classes", "1-5", "--strict", "--out", "strict.csv")
    assert result.exit_code == 1 and "nothing written" in result.output
    assert not list(tmp_path.glob("strict*")) and not list(tmp_path.glob(".strict*"))


def test_usage_errors(tmp_path):
    images, labels = synthetic_mnist(2)
    source = write_pair(tmp_path, images, labels)
    assert "either --out-dir" in run("mnist", source).output
    assert "either --out-dir" in run("mnist", source, "--out", tmp_path / "a.csv", "--out-dir", tmp_path / "t").output
    result = run("mnist", source, "--out-dir", tmp_path / "t", "--sizes", 20, "--deskew")
    assert result.exit_code == 2 and "--sizes, --deskew only apply to --out" in result.output


# --- download ----------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path):
    """A folder of small stand-in IDX files and their MD5 table."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    images, labels = synthetic_mnist(5)
    write_pair(folder, images, labels, prefix="t10k")
    write_pair(folder, images[:3], labels[:3], prefix="train")
    checksums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    return folder, checksums


@pytest.fixture
def http_mirror(mirror):
    """The mirror folder served over HTTP on 127.0.0.1 by a thread; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(mirror[0])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_over_http_lands_verified_files_and_rerun_keeps_them(mirror, http_mirror, tmp_path):
    folder, checksums = mirror
    statuses = {}
    fetch_mnist(tmp_path / "raw", (http_mirror,), checksums, on_file=statuses.__setitem__)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(checksums)
    for name in checksums:
        assert (tmp_path / "raw" / name).read_bytes() == (folder / name).read_bytes()
        assert (tmp_path / "raw" / name).stat().st_mode & 0o777 == file_mode()  # not the temporary's 0600
        assert statuses[name].startswith(f"downloaded from {http_mirror}{name}")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "raw").iterdir()}
    fetch_mnist(tmp_path / "raw", ("http://127.0.0.1:9/nothing-here/",), checksums, on_file=statuses.__setitem__)
    assert set(statuses.values()) == {"present, MD5 verified"}
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "raw").iterdir()}


def test_wrong_checksum_is_an_error_and_leaves_no_file(mirror, tmp_path):
    folder, checksums = mirror
    name = "t10k-images-idx3-ubyte.gz"
    wrong = dict(checksums, **{name: "0" * 32})
    with pytest.raises(DownloadError) as caught:
        fetch_mnist(tmp_path / "raw", (folder.as_uri() + "/",), wrong)
    message = str(caught.value)
    assert name in message and "0" * 32 in message and checksums[name] in message
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(n for n in checksums if n != name)


def test_fallback_mirror_and_corrupt_copy_replaced(mirror, tmp_path):
    folder, checksums = mirror
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"half a file")
    statuses = {}
    missing = (tmp_path / "no-such-mirror").as_uri()
    fetch_mnist(raw, (missing, folder.as_uri()), checksums, on_file=statuses.__setitem__)
    for name in checksums:
        assert (raw / name).read_bytes() == (folder / name).read_bytes()
    assert "cannot fetch" in statuses["t10k-images-idx3-ubyte.gz"]  # the first mirror failed
    assert "the copy there had MD5" in statuses["train-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in raw.iterdir()) == sorted(checksums)  # no temporary files


def test_fetch_mnist_command(mirror, tmp_path, monkeypatch):
    folder, checksums = mirror
    monkeypatch.setattr(mnist_module, "MNIST_MD5", checksums)
    result = run("fetch-mnist", tmp_path / "raw", "--mirror", folder.as_uri())
    assert result.exit_code == 0, result.output
    assert result.output.count("MD5 verified") == 4
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"tampered")
    (tmp_path / "raw" / "train-images-idx3-ubyte.gz").unlink()
    result = run("fetch-mnist", tmp_path / "raw", "--mirror", folder.as_uri())
    assert result.exit_code == 1 and "wrong MD5" in result.output and result.output.count("\n") == 4
    assert not (tmp_path / "raw" / "train-images-idx3-ubyte.gz").exists()


@pytest.fixture
def trickle_mirror():
    """An HTTP server on 127.0.0.1 that answers every file with 1000 bytes announced and sends
    them one at a time, ``server.interval`` seconds apart; stopped (its handlers too) at teardown."""
    stop = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    if stop.wait(self.server.interval):
                        return
            except OSError:  # the client gave up
                return

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    server.interval = 10.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("interval", [10.0, 0.2])  # silent longer than the deadline; never silent for long
def test_a_trickling_mirror_fails_at_the_deadline_and_leaves_nothing(trickle_mirror, tmp_path, monkeypatch, interval):
    trickle_mirror.interval = interval
    url = f"http://127.0.0.1:{trickle_mirror.server_address[1]}/"
    name = "t10k-labels-idx1-ubyte.gz"
    monkeypatch.setattr(mnist_module, "MNIST_MD5", {name: "0" * 32})
    monkeypatch.setattr(mnist_module, "DEADLINE_SECONDS", 2)
    started = time.monotonic()
    result = run("fetch-mnist", tmp_path / "raw", "--mirror", url)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"{name}: {url}{name} took longer than the 2 s deadline" in result.output
    assert 2 <= elapsed < 3.5, elapsed  # the socket timeout (60 s) alone would not end it
    assert list((tmp_path / "raw").iterdir()) == []  # no file, no temporary
    with pytest.raises(DownloadError, match=r"took longer than the 0\.5 s deadline"):
        fetch_mnist(tmp_path / "raw", (url,), {name: "0" * 32}, deadline=0.5)


def test_real_checksums_match_the_shared_files(tmp_path):
    t10k_files()
    available = {n: md5 for n, md5 in mnist_module.MNIST_MD5.items() if (SHARED_MNIST / n).exists()}
    fetch_mnist(tmp_path / "raw", (SHARED_MNIST.as_uri(),), available)
    assert len(available) == 3 and all((tmp_path / "raw" / n).exists() for n in available)
