"""The Makefile's data pipeline on a tiny raw folder, in a temporary copy of the project's Makefile:
outputs exist, a second run does no work, touching one input rebuilds only what depends on it, an
interrupted run followed by `make` ends where an uninterrupted one does, and augmentation never
lets a test image into a training set."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitprep.csvio import read_dataset

REPO = Path(__file__).resolve().parents[1]
SIZES = ("8", "20")
OUTPUTS = [f"{kind}_{size}.csv" for size in SIZES for kind in ("train", "test", "test_all")]
OUTPUTS += ["train_mixed.csv", "test_mixed.csv"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def digit_png(path: Path, digit: int, variant: int, dark_on_light: bool) -> None:
    """A digit drawn with OpenCV's Hershey font, shifted a little per variant."""
    image = np.zeros((28, 28), np.uint8)
    cv2.putText(image, str(digit), (6 + variant % 3, 22 - variant % 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), 255 - image if dark_on_light else image)


@pytest.fixture
def project(tmp_path):
    """A copy of the Makefile with two raw origins: 'hand' in the folder layout (dark ink on white)
    and 'font' in the original file-name layout with drawing-size tags 20 and 8."""
    shutil.copy2(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "installed").touch()  # stands for the venv stamp: this test runs inside the venv
    for digit in range(10):
        for variant in range(3):
            digit_png(tmp_path / "raw" / "hand" / str(digit) / f"{variant}.png", digit, variant, True)
            for tag in SIZES:
                digit_png(tmp_path / "raw" / "font" / f"{digit}_{tag}_{variant}.png", digit, variant + 1, False)
    return tmp_path


def make(folder: Path, *extra: str, background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    """`make dataset` on the two raw origins with the test's venv; ``background``: started, not awaited."""
    args = [
        "make",
        "--no-print-directory",
        "dataset",
        "RAW=raw/hand raw/font",
        f"BIN={Path(sys.executable).parent}",
        "STAMP=installed",
        "ABLATE=0",
        "JOBS=1",
        f"SIZES={' '.join(SIZES)}",
        *extra,
    ]
    if background:
        return subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under data/processed: modification time and bytes."""
    root = folder / "data" / "processed"
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_dataset_builds_reruns_nothing_and_rebuilds_only_what_a_change_feeds(project):
    first = make(project)
    assert first.returncode == 0, first.stdout + first.stderr
    processed = project / "data" / "processed"
    for name in OUTPUTS:
        assert (processed / name).exists(), name
    train_20, test_20 = read_dataset(processed / "train_20.csv"), read_dataset(processed / "test_20.csv")
    assert set(train_20.column("tag")) == {"20", ""}
    assert set(read_dataset(processed / "train_8.csv").column("tag")) == {"8", ""}
    assert set(read_dataset(processed / "train_mixed.csv").column("tag")) == {"8", "20", ""}
    assert set(train_20.column("origin")) == {"hand", "font"} and train_20.pixels.shape[1] == 400
    assert not set(train_20.column("path")) & set(test_20.column("path"))
    assert len(train_20.labels) + len(test_20.labels) == 30 + 30  # hand (untagged) and font tag 20

    before = snapshot(project)
    second = make(project)
    assert second.returncode == 0 and "Nothing to be done for 'dataset'" in second.stdout, second.stdout
    assert snapshot(project) == before

    time.sleep(0.01)
    os.utime(project / "raw" / "hand" / "3" / "1.png")
    third = make(project)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "build raw/hand" in third.stdout and "build raw/font" not in third.stdout
    after = snapshot(project)
    changed = {name for name in before if after[name][0] != before[name][0]}
    assert not any(name.startswith("parts/font") for name in changed), sorted(changed)
    assert {"parts/hand_20.csv", "train_20.csv", "test_mixed.csv"} <= changed
    assert all(after[name][1] == before[name][1] for name in before)  # same input bytes, same outputs

    reseeded = make(project, "SEED=1")  # an option of the split: the builds stay
    assert reseeded.returncode == 0
    assert "digitprep split" in reseeded.stdout and "digitprep build" not in reseeded.stdout
    plain = make(project, "SEED=1", "DESKEW=0")
    assert plain.returncode == 0 and plain.stdout.count("digitprep build") == 2


def test_an_interrupted_make_then_make_ends_like_an_uninterrupted_run(project, tmp_path_factory):
    reference = tmp_path_factory.mktemp("reference")
    shutil.copytree(project, reference, dirs_exist_ok=True)
    assert make(reference).returncode == 0
    running = make(project, background=True)
    deadline = time.monotonic() + 120
    while not (project / "data/processed/parts/hand.built").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)  # what Ctrl-C does, somewhere after the first build
    running.wait(timeout=120)
    resumed = make(project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for name in OUTPUTS:
        assert (project / "data/processed" / name).read_bytes() == (reference / "data/processed" / name).read_bytes()


def test_augmentation_only_ever_sees_the_training_side(project):
    result = make(project, "AUGMENT=2")
    assert result.returncode == 0, result.stdout + result.stderr
    processed = project / "data" / "processed"
    for name in ("20", "8", "mixed"):
        train, test = read_dataset(processed / f"train_{name}.csv"), read_dataset(processed / f"test_{name}.csv")
        copies = np.array(train.column("copy"))
        assert (copies == "0").sum() * 3 == len(copies)  # each original followed by its 2 copies
        assert not set(train.column("path")) & set(test.column("path")), name  # no copy of a test image
