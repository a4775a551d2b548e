"""`digittrain compare`: every model scored on every subset, the table, the CSV and the chart."""

import csv
import errno
import os

import numpy as np
import pytest
from click.testing import CliRunner

import digitprep.atomic
from digitprep.csvio import read_dataset, write_onehot_csv
from digittrain.cli import main
from digittrain.experiments import subsets


def write_set(path, labels, tags, origins, side=4, seed=0):
    """Rows told apart by which quarter of the image is inked (label 1..4), with a manifest."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (len(labels), side, side))
    half = side // 2
    for image, label in zip(images, labels):
        r, c = divmod(label - 1, 2)
        image[r * half : (r + 1) * half, c * half : (c + 1) * half] += 200
    write_onehot_csv(path, images.reshape(len(labels), -1).astype(np.uint8), np.asarray(labels), (1, 2, 3, 4))
    rows = enumerate(zip(labels, tags, origins))
    lines = ["path,label,tag,origin"] + [
        f"{path.stem}/{i}.png,{label},{tag},{origin}" for i, (label, tag, origin) in rows
    ]
    path.with_name(f"{path.stem}.manifest.csv").write_text("\n".join(lines) + "\n")
    path.with_name(f"{path.stem}.build.json").write_text('{"deskew": true, "center": true}')


def write_data_dir(folder):
    """train/test/test_all at size 4, and the mixed set, the way the Makefile lays them out."""
    labels = np.tile([1, 2, 3, 4], 10)
    tags = np.repeat(["8", "20"], 20)
    origins = np.tile(["fonts", "fonts", "hand", "hand"], 10)
    write_set(folder / "train_4.csv", labels[tags == "8"], tags[tags == "8"], origins[tags == "8"], seed=1)
    write_set(folder / "test_4.csv", labels[:8], ["8"] * 8, origins[:8], seed=2)
    write_set(folder / "test_all_4.csv", labels[:12], ["8"] * 6 + ["20"] * 6, origins[:12], seed=3)
    write_set(folder / "train_mixed.csv", labels, tags, origins, seed=4)
    write_set(folder / "test_mixed.csv", labels[:12], ["8"] * 6 + ["20"] * 6, origins[:12], seed=5)


def test_subsets_are_all_rows_each_drawing_size_and_each_origin(tmp_path):
    write_set(tmp_path / "e.csv", [1, 2, 3, 4, 1, 2], ["8", "20", "8", "", "20", "8"], ["a", "a", "b", "b", "b", "a"])
    found = subsets(read_dataset(tmp_path / "e.csv"))
    assert {name: rows.tolist() for name, rows in found.items()} == {
        "all": [0, 1, 2, 3, 4, 5],
        "drawn at 8": [0, 2, 5],
        "drawn at 20": [1, 4],
        "a": [0, 1, 5],
        "b": [2, 3, 4],
    }
    write_set(tmp_path / "one.csv", [1, 2], ["8", "8"], ["a", "a"])  # one tag, one origin: nothing to add
    assert list(subsets(read_dataset(tmp_path / "one.csv"))) == ["all"]


def test_compare_scores_every_model_on_every_subset(tmp_path):
    write_data_dir(tmp_path)
    out = tmp_path / "reports"
    args = ["compare", "--data", tmp_path, "--sizes", "4", "--hidden", "8", "--epochs", "30", "--batch-size", "4"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--lr", "0.01", "--out-dir", out]])
    assert result.exit_code == 0, result.output
    with open(out / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    models = {(r["model"], r["trained_on"]) for r in rows}
    assert models == {(m, s) for m in ("NumPy MLP", "sklearn MLPClassifier") for s in ("4", "mixed")}
    subsets_seen = {r["subset"] for r in rows}
    assert subsets_seen == {"own test", "all", "drawn at 8", "drawn at 20", "fonts", "hand"}
    sizes = {(r["trained_on"], r["subset"]): int(r["test_rows"]) for r in rows if r["model"] == "NumPy MLP"}
    assert sizes[("4", "own test")] == 8 and sizes[("4", "all")] == 12 and sizes[("4", "drawn at 20")] == 6
    assert sizes[("mixed", "own test")] == 12 and sizes[("4", "fonts")] == 6
    assert ("mixed", "all") not in sizes  # its own test set is already every test row
    project = [r for r in rows if r["model"] == "NumPy MLP"]
    assert all(float(r["accuracy"]) == 1.0 for r in project), project  # the quarters are easy to tell apart
    assert all(r["variant"] == "deskew+centre" and int(r["train_rows"]) in (20, 40) for r in rows)
    table = (out / "compare.md").read_text()
    header = "| model | trained on | normalised | train rows | time (s) | own test | all | drawn at 8 | drawn at 20 |"
    assert header in table and "| NumPy MLP | 4 | deskew+centre | 20 |" in table
    assert "| 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in table
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_without_the_data_names_the_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["compare", "--data", str(tmp_path), "--sizes", "8", "--no-baseline"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'train_8.csv'}: not found (`make dataset` writes it)"


def test_compare_rejects_bad_sizes(tmp_path):
    result = CliRunner().invoke(main, ["compare", "--data", str(tmp_path), "--sizes", "8,x"])
    assert result.exit_code == 2 and "'x' is not a valid integer (in '8,x')" in result.output


def full_disk_fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["under a file", "full disk"])
def test_compare_that_cannot_write_its_report_names_the_file_and_leaves_nothing(tmp_path, monkeypatch, where):
    write_data_dir(tmp_path)
    if where == "full disk":
        out, reason = tmp_path / "reports", "No space left on device"
        monkeypatch.setattr(digitprep.atomic.os, "fsync", full_disk_fsync)
    else:  # as root, chmod would not stop a write
        (tmp_path / "blocker").write_text("a file, not a folder")
        out, reason = tmp_path / "blocker" / "reports", ""
    args = ["compare", "--data", tmp_path, "--sizes", "4", "--no-mixed", "--no-baseline", "--epochs", "1"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--out-dir", out]])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    *log, line = result.stderr.strip().splitlines()  # the log: a line per model trained
    if where == "under a file":
        assert log == []  # an impossible --out-dir fails before any training
    else:
        assert len(log) == 1 and log[0].startswith("NumPy MLP on 4"), log
    assert line.startswith(f"Error: {out / 'compare.md'}: cannot write (") and reason in line, line
    assert list(tmp_path.rglob("compare.*")) == [] and list(tmp_path.rglob(".*.tmp")) == []
