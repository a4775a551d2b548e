"""`digitprep split` and `digitprep mix`: stratified, deterministic, manifests following their rows,
origins kept; and augmentation only after the split."""

import errno
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import digitprep.atomic
from digitprep.cli import main
from digitprep.csvio import read_dataset, write_onehot_csv
from digitprep.split import stratified_split


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_set(path, labels, side=4, origin=None, seed=0, record=None):
    """A small one-hot CSV whose rows are told apart by their pixels, with a build-style manifest."""
    labels = np.asarray(labels)
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), side * side)).astype(np.uint8)
    write_onehot_csv(path, pixels, labels, tuple(range(10)))
    lines = ["path,label,tag,origin"]
    lines += [f"{path.stem}/{i}.png,{label},,{origin or ''}" for i, label in enumerate(labels)]
    path.with_name(f"{path.stem}.manifest.csv").write_text("\n".join(lines) + "\n")
    if record is not None:
        path.with_name(f"{path.stem}.build.json").write_text(json.dumps(record))
    return pixels


# ---------------------------------------------------------------- split


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    train_rows, test_rows = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[test_rows]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([train_rows, test_rows]).tolist()) == list(range(100))


def test_small_classes_are_on_both_sides_and_single_rows_train():
    labels = np.array([0, 0, 1, 1, 1, 2])
    train_rows, test_rows = stratified_split(labels, 0.2, seed=3)
    assert sorted(labels[test_rows].tolist()) == [0, 1]
    assert sorted(labels[train_rows].tolist()) == [0, 1, 1, 2]


def test_groups_stay_on_one_side():
    labels = np.repeat([3, 5], 40)
    groups = np.repeat(np.arange(20), 4)  # 20 images with 4 rows each (say, augmented copies)
    train_rows, test_rows = stratified_split(labels, 0.3, seed=1, groups=groups)
    assert not set(groups[train_rows]) & set(groups[test_rows])
    assert np.bincount(labels[test_rows], minlength=6)[[3, 5]].tolist() == [12, 12]  # 3 of 10 groups each
    with pytest.raises(ValueError, match="group 'a' holds rows of different labels"):
        stratified_split(np.array([1, 2, 1]), 0.5, 0, groups=np.array(["a", "a", "b"]))


def test_split_command_writes_stratified_parts_with_their_manifests(tmp_path):
    labels = np.repeat(np.arange(10), 10)
    pixels = write_set(tmp_path / "d.csv", labels, record={"size": 4, "deskew": True, "rows": 100})
    result = run("split", tmp_path / "d.csv", "--test-share", 0.2, "--seed", 7)
    assert result.exit_code == 0, result.output
    assert "wrote 80 rows to" in result.stderr and "d_train.csv" in result.stderr
    train, test = read_dataset(tmp_path / "d_train.csv"), read_dataset(tmp_path / "d_test.csv")
    assert np.bincount(test.labels).tolist() == [2] * 10 and np.bincount(train.labels).tolist() == [8] * 10
    rows = {}
    for part in (train, test):
        for row_pixels, manifest_row in zip(part.pixels, part.manifest_rows):
            index = int(manifest_row[0].split("/")[1].split(".")[0])
            assert np.array_equal(row_pixels, pixels[index])  # the manifest row names this very row
            rows[index] = manifest_row
    assert sorted(rows) == list(range(100))  # complete and disjoint
    assert [int(r[0].split("/")[1][:-4]) for r in train.manifest_rows] == sorted(
        int(r[0].split("/")[1][:-4]) for r in train.manifest_rows
    )  # original order kept
    assert train.record["deskew"] is True and train.record["rows"] == 80 and test.record["rows"] == 20
    assert train.record["steps"] == [{"split": {"from": "d.csv", "side": "train", "test": 0.2, "seed": 7, "by": None}}]
    first = {p.name: p.read_bytes() for p in tmp_path.glob("d_t*")}
    assert run("split", tmp_path / "d.csv", "--test-share", 0.2, "--seed", 7).exit_code == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("d_t*")} == first
    assert run("split", tmp_path / "d.csv", "--seed", 8, "--test-out", tmp_path / "other.csv").exit_code == 0
    assert (tmp_path / "other.csv").read_bytes() != first["d_test.csv"]


def test_split_by_a_manifest_column_and_its_errors(tmp_path):
    labels = np.repeat(np.arange(4), 6)
    write_set(tmp_path / "d.csv", labels)
    manifest = (tmp_path / "d.manifest.csv").read_text().splitlines()
    # pairs of rows share a source path, as an original and its augmented copy would
    manifest = [manifest[0]] + [line.replace(f"/{i}.png", f"/{i // 2}.png") for i, line in enumerate(manifest[1:])]
    (tmp_path / "d.manifest.csv").write_text("\n".join(manifest) + "\n")
    result = run("split", tmp_path / "d.csv", "--by", "path", "--test-share", 0.34)
    assert result.exit_code == 0, result.output
    train, test = read_dataset(tmp_path / "d_train.csv"), read_dataset(tmp_path / "d_test.csv")
    assert not set(train.column("path")) & set(test.column("path"))
    assert len(test.labels) == 8 and np.bincount(test.labels).tolist() == [2, 2, 2, 2]
    result = run("split", tmp_path / "d.csv", "--by", "nothing")
    assert result.exit_code == 1 and "d.csv: no manifest column 'nothing'" in result.output
    (tmp_path / "d.manifest.csv").write_text("path,label\nx,0\n")
    result = run("split", tmp_path / "d.csv")
    assert result.exit_code == 1 and "d.manifest.csv: 1 rows, but" in result.output
    assert "Traceback" not in result.output


def test_augmentation_after_the_split_never_reaches_test_images(tmp_path):
    """Split first, augment the train side only: no row of the augmented training set derives from
    a test image (the manifest's path names each row's source image)."""
    labels = np.repeat(np.arange(10), 6)
    write_set(tmp_path / "all.csv", labels, side=8)
    assert run("split", tmp_path / "all.csv", "--test-share", 0.25, "--seed", 2).exit_code == 0
    train = tmp_path / "all_train.csv"
    result = run("augment", train, "--out", tmp_path / "aug.csv", "--copies", 3, "--seed", 5)
    assert result.exit_code == 0, result.output
    augmented, test = read_dataset(tmp_path / "aug.csv"), read_dataset(tmp_path / "all_test.csv")
    assert len(augmented.labels) == 4 * len(read_dataset(train).labels)
    assert set(augmented.column("copy")) == {"0", "1", "2", "3"}
    assert not set(augmented.column("path")) & set(test.column("path"))
    assert set(augmented.column("path")) == set(read_dataset(train).column("path"))
    assert [s["augment"]["copies"] for s in augmented.record["steps"] if "augment" in s] == [3]
    assert augmented.record["steps"][0]["split"]["side"] == "train"


# ---------------------------------------------------------------- mix


def test_mix_concatenates_and_keeps_each_rows_origin(tmp_path):
    a = write_set(tmp_path / "a.csv", [1, 2, 3], origin="mnist", seed=1, record={"size": 4, "center": True})
    b = write_set(tmp_path / "b.csv", [4, 5], seed=2, record={"size": 4, "center": False})
    write_onehot_csv(tmp_path / "c.csv", np.zeros((1, 16), np.uint8), np.array([6]), tuple(range(10)))  # no manifest
    (tmp_path / "c.build.json").write_text('{"size": 4}')
    result = run("mix", tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv", "--out", tmp_path / "m.csv")
    assert result.exit_code == 0, result.output
    assert "wrote 6 rows from 3 files" in result.stderr
    mixed = read_dataset(tmp_path / "m.csv")
    assert mixed.labels.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.array_equal(mixed.pixels[:5], np.vstack([a, b]))
    assert mixed.manifest_header == ["path", "label", "tag", "origin"]
    assert mixed.column("origin") == ["mnist", "mnist", "mnist", "b", "b", "c"]
    assert mixed.column("path") == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "c.csv:1"]
    assert mixed.column("tag")[-1] == ""  # c has no tag column: left empty
    assert mixed.record["size"] == 4 and "center" not in mixed.record  # the inputs disagree on centring
    assert [m["from"] for m in mixed.record["mix"]] == ["a.csv", "b.csv", "c.csv"]


def test_mix_shuffle_is_a_seeded_permutation(tmp_path):
    write_set(tmp_path / "a.csv", np.arange(10), seed=1)
    write_set(tmp_path / "b.csv", np.arange(10), seed=2)
    for name, seed in (("s1", 4), ("s2", 4), ("s3", 5)):
        args = ("mix", tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / f"{name}.csv", "--shuffle")
        assert run(*args, "--seed", seed).exit_code == 0
    assert (tmp_path / "s1.csv").read_bytes() == (tmp_path / "s2.csv").read_bytes()
    assert (tmp_path / "s1.csv").read_bytes() != (tmp_path / "s3.csv").read_bytes()
    shuffled = read_dataset(tmp_path / "s1.csv")
    assert sorted(shuffled.column("path")) == sorted(
        [f"a/{i}.png" for i in range(10)] + [f"b/{i}.png" for i in range(10)]
    )
    for path, label in zip(shuffled.column("path"), shuffled.labels):
        assert int(path.split("/")[1][:-4]) == label  # the manifest moved with its row


def test_mix_tag_keeps_only_rows_of_those_drawing_sizes(tmp_path):
    pixels = write_set(tmp_path / "a.csv", [1, 2, 3, 4])
    manifest = tmp_path / "a.manifest.csv"
    lines = manifest.read_text().splitlines()
    for i, tag in zip(range(1, 5), ["8", "20", "", "8"]):
        path, label, _, origin = lines[i].split(",")
        lines[i] = f"{path},{label},{tag},{origin}"
    manifest.write_text("\n".join(lines) + "\n")
    tags = ("--drawing-size", "8", "--drawing-size", "none")
    assert run("mix", tmp_path / "a.csv", *tags, "--out", tmp_path / "m.csv").exit_code == 0
    kept = read_dataset(tmp_path / "m.csv")
    assert kept.labels.tolist() == [1, 3, 4] and kept.column("tag") == ["8", "", "8"]
    assert np.array_equal(kept.pixels, pixels[[0, 2, 3]])
    assert kept.record["tags"] == ["8", "none"]


def test_mix_refuses_different_sizes_and_classes(tmp_path):
    write_set(tmp_path / "a.csv", [1, 2], side=20)
    write_set(tmp_path / "b.csv", [1, 2], side=8)
    result = run("mix", tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / "m.csv")
    assert result.exit_code == 1
    assert (
        "b.csv: 64 pixels per row (8x8), but" in result.output
        and "a.csv has 400 pixels per row (20x20)" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    write_onehot_csv(tmp_path / "c.csv", np.zeros((1, 400), np.uint8), np.array([1]), (1, 2, 3))
    result = run("mix", tmp_path / "a.csv", tmp_path / "c.csv", "--out", tmp_path / "m.csv")
    assert result.exit_code == 1 and "c.csv: classes 1-3, but" in result.output
    assert not (tmp_path / "m.csv").exists()


# ---------------------------------------------------------------- outputs that cannot be written


def full_disk_fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def source(tmp_path):
    """A data set to read, tmp_path/d.csv (written while the disk still has room)."""
    write_set(tmp_path / "d.csv", np.repeat(np.arange(10), 4))
    return tmp_path / "d.csv"


@pytest.fixture(params=["under a file", "full disk"])
def unwritable(request, tmp_path, monkeypatch, source):
    """(folder, reason): a folder whose outputs cannot be written. Under a regular file (as root,
    chmod would not stop a write), or on a full disk, where fsync fails (the data reached only the
    page cache)."""
    if request.param == "full disk":
        monkeypatch.setattr(digitprep.atomic.os, "fsync", full_disk_fsync)
        (tmp_path / "out").mkdir()
        return tmp_path / "out", "No space left on device"
    (tmp_path / "blocker").write_text("a file, not a folder")
    return tmp_path / "blocker", ""


def assert_one_line_error(result, path, reason):
    """Exit 1 with one line on stderr naming ``path`` and ``reason``, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}: cannot write (") and reason in line, line


def temporaries(folder):
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_split_that_cannot_write_names_the_file_and_leaves_nothing(tmp_path, source, unwritable):
    folder, reason = unwritable
    result = run("split", source, "--train-out", folder / "tr.csv", "--test-out", folder / "te.csv")
    assert_one_line_error(result, folder / "tr.csv", reason)
    assert temporaries(tmp_path) == [] and not (folder / "tr.csv").exists() and not (folder / "te.csv").exists()


def test_mix_that_cannot_write_names_the_file_and_leaves_nothing(tmp_path, source, unwritable):
    folder, reason = unwritable
    result = run("mix", source, source, "--out", folder / "m.csv")
    assert_one_line_error(result, folder / "m.csv", reason)
    assert temporaries(tmp_path) == [] and not (folder / "m.csv").exists()


def test_show_that_cannot_write_names_the_file_and_leaves_nothing(tmp_path, source, unwritable):
    folder, reason = unwritable
    result = run("show", source, "--out", folder / "sheet.png")
    assert_one_line_error(result, folder / "sheet.png", reason)
    assert temporaries(tmp_path) == [] and not (folder / "sheet.png").exists()
