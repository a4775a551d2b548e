"""The Makefile on tiny raw folders, in temporary copies of the project's Makefile: outputs exist, a
second run does no work, touching one input rebuilds only what depends on it, an interrupted run
followed by `make` ends where an uninterrupted one does, augmentation never lets a test image into a
training set; digittrain's flags are recorded like the data options (a change retrains, an unchanged
rerun does nothing) and merged into the default set; every image suffix `digitprep build` reads is
tracked; a person's folders get a data folder of their own; a bare `make` prints the help."""

import csv
import json
import os
import re
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
from digitprep.sources import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[1]
SIZES = ("8", "20")
OUTPUTS = [f"{kind}_{size}.csv" for size in SIZES for kind in ("train", "test", "test_all")]
OUTPUTS += ["train_mixed.csv", "test_mixed.csv"]
PROCESSED = "data/processed/raw/hand+font"  # RAW="raw/hand raw/font" gets a folder of its own
DEFAULT_FLAGS = (
    "--hidden {hidden} --activation relu --optimizer adam --lr {lr} --lr-schedule cosine "
    "--epochs {epochs} --batch-size {batch} --l2 0.0001 --label-smoothing 0.1"
)
STEP = re.compile(r"^  (\w+) +(\S.*)$")  # a quiet recipe's line: "  build   data/processed/parts/hand.csv"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def digit_png(path: Path, digit: int, variant: int, dark_on_light: bool) -> None:
    """A digit drawn with OpenCV's Hershey font, shifted a little per variant; the format follows the suffix."""
    image = np.zeros((28, 28), np.uint8)
    cv2.putText(image, str(digit), (6 + variant % 3, 22 - variant % 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), 255 - image if dark_on_light else image)


def copy_makefile(folder: Path) -> Path:
    """The project's Makefile (and pyproject.toml, its venv stamp's prerequisite) in ``folder``."""
    shutil.copy2(REPO / "Makefile", folder / "Makefile")
    shutil.copy2(REPO / "pyproject.toml", folder / "pyproject.toml")
    (folder / "installed").touch()  # stands for the venv stamp: this test runs inside the venv
    return folder


def raw_origins(folder: Path) -> Path:
    """Two raw origins in ``folder``: 'hand' in the folder layout (dark ink on white) and 'font' in
    the original file-name layout with drawing-size tags 20 and 8; and a copy of the Makefile."""
    copy_makefile(folder)
    for digit in range(10):
        for variant in range(3):
            digit_png(folder / "raw" / "hand" / str(digit) / f"{variant}.png", digit, variant, True)
            for tag in SIZES:
                digit_png(folder / "raw" / "font" / f"{digit}_{tag}_{variant}.png", digit, variant + 1, False)
    return folder


@pytest.fixture
def project(tmp_path):
    """The two raw origins, nothing built."""
    return raw_origins(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The two raw origins after one `make dataset`, and what that make printed."""
    folder = raw_origins(tmp_path_factory.mktemp("built"))
    first = make(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    return folder, first.stdout


@pytest.fixture
def built_project(built, tmp_path):
    """A copy of the built project (times kept, so it is up to date)."""
    shutil.copytree(built[0], tmp_path, dirs_exist_ok=True, symlinks=True)
    return tmp_path


def run_make(folder: Path, *args: str, background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    """make ARGS in ``folder`` with the test's venv; ``background``: started, not awaited."""
    args = ["make", "--no-print-directory", f"BIN={Path(sys.executable).parent}", "STAMP=installed", *args]
    if background:
        return subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=600)


def make(folder: Path, *extra: str, background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    """`make dataset` on the two raw origins (font's names carry the original drawing sizes)."""
    base = ("dataset", "RAW=raw/hand raw/font", "ABLATE=0", "JOBS=1", f"SIZES={','.join(SIZES)}", "DRAWING_SIZES=8,20")
    return run_make(folder, *base, *extra, background=background)


def steps(stdout: str) -> list[tuple[str, str]]:
    """(verb, path) of each step line a quiet make printed."""
    return [match.groups() for match in map(STEP.match, stdout.splitlines()) if match]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: modification time and bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_dataset_builds_reruns_nothing_and_rebuilds_only_what_a_change_feeds(built, built_project):
    project, first = built_project, built[1]
    processed = project / PROCESSED
    for name in OUTPUTS:
        assert (processed / name).exists(), name
    verbs = [verb for verb, _ in steps(first)]
    assert steps(first)[0] == ("build", f"{PROCESSED}/parts/hand.csv")
    assert (verbs.count("build"), verbs.count("split"), verbs.count("mix"), len(verbs)) == (2, 4, 8, 14)
    assert "digitprep" not in first  # quiet: one line per step, no commands
    train_20, test_20 = read_dataset(processed / "train_20.csv"), read_dataset(processed / "test_20.csv")
    assert set(train_20.column("tag")) == {"20", ""}
    assert set(read_dataset(processed / "train_8.csv").column("tag")) == {"8", ""}
    assert set(read_dataset(processed / "train_mixed.csv").column("tag")) == {"8", "20", ""}
    assert set(train_20.column("origin")) == {"hand", "font"} and train_20.pixels.shape[1] == 400
    assert not set(train_20.column("path")) & set(test_20.column("path"))
    assert len(train_20.labels) + len(test_20.labels) == 30 + 30  # hand (untagged) and font tag 20

    before = snapshot(processed)
    second = make(project)
    assert second.returncode == 0 and "Nothing to be done for 'dataset'" in second.stdout, second.stdout
    assert snapshot(processed) == before

    time.sleep(0.01)
    os.utime(project / "raw" / "hand" / "3" / "1.png")
    third = make(project)
    assert third.returncode == 0, third.stdout + third.stderr
    builds = [path for verb, path in steps(third.stdout) if verb == "build"]
    assert builds == [f"{PROCESSED}/parts/hand.csv"]
    after = snapshot(processed)
    changed = {name for name in before if after[name][0] != before[name][0]}
    assert not any(name.startswith("parts/font") for name in changed), sorted(changed)
    assert {"parts/hand_20.csv", "train_20.csv", "test_mixed.csv"} <= changed
    assert all(after[name][1] == before[name][1] for name in before)  # same input bytes, same outputs

    # make -n says what a changed option would redo (and changes nothing, its options file included)
    reseeded = make(project, "-n", "SEED=1")  # an option of the split: the builds stay
    assert reseeded.returncode == 0
    assert reseeded.stdout.count("digitprep split") == 4 and "digitprep build" not in reseeded.stdout
    plain = make(project, "-n", "SEED=1", "DESKEW=0")
    assert plain.returncode == 0 and plain.stdout.count("digitprep build") == 2
    assert snapshot(processed) == after


def test_an_interrupted_make_then_make_ends_like_an_uninterrupted_run(project, built):
    running = make(project, background=True)
    deadline = time.monotonic() + 120
    while not (project / PROCESSED / "parts/hand.built").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)  # what Ctrl-C does, somewhere after the first build
    running.wait(timeout=120)
    resumed = make(project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for name in OUTPUTS:
        assert (project / PROCESSED / name).read_bytes() == (built[0] / PROCESSED / name).read_bytes()


def test_augmentation_only_ever_sees_the_training_side(built_project):
    result = make(built_project, "AUGMENT=2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {verb for verb, _ in steps(result.stdout)} == {"mix", "augment"}  # the builds and splits stay
    processed = built_project / PROCESSED
    for name in ("20", "8", "mixed"):
        train, test = read_dataset(processed / f"train_{name}.csv"), read_dataset(processed / f"test_{name}.csv")
        copies = np.array(train.column("copy"))
        assert (copies == "0").sum() * 3 == len(copies)  # each original followed by its 2 copies
        assert not set(train.column("path")) & set(test.column("path")), name  # no copy of a test image


# ---- one origin of JPEGs at one size, built once; the tests below work on copies of it
JPEG_DATA = "data/processed/raw/hand"
JPEG_ARGS = ("RAW=raw/hand", "SIZES=8", "MIXED_SIZE=8", "TRAIN_SIZE=8", "ABLATE=0", "JOBS=1")
TINY_TRAINING = ("HIDDEN=8", "EPOCHS=1")


@pytest.fixture(scope="module")
def jpeg_built(tmp_path_factory):
    """'hand' as JPEGs (one with a space and a '#' in its name) and a stand-in for the default data's
    train_8.csv, after `make dataset RAW=raw/hand`."""
    folder = copy_makefile(tmp_path_factory.mktemp("jpeg"))
    for digit in range(10):
        for variant in range(3):
            digit_png(folder / "raw" / "hand" / str(digit) / f"{variant}.jpg", digit, variant, True)
    digit_png(folder / "raw" / "hand" / "7" / "odd name #3.jpg", 7, 1, True)
    (folder / "data" / "processed").mkdir(parents=True)
    (folder / "data" / "processed" / "train_8.csv").write_text("the default data's\n")
    built = run_make(folder, "dataset", *JPEG_ARGS)
    assert built.returncode == 0, built.stdout + built.stderr
    return folder


@pytest.fixture
def jpeg_project(jpeg_built, tmp_path):
    """A copy of the built JPEG project (times kept, so it is up to date)."""
    shutil.copytree(jpeg_built, tmp_path, dirs_exist_ok=True, symlinks=True)
    return tmp_path


def test_raw_folders_are_built_in_a_folder_of_their_own(jpeg_built, tmp_path):
    processed = jpeg_built / "data" / "processed"
    assert (processed / "train_8.csv").read_text() == "the default data's\n"
    assert sorted(p.name for p in processed.iterdir()) == ["raw", "train_8.csv"]
    train = read_dataset(jpeg_built / JPEG_DATA / "train_8.csv")
    test = read_dataset(jpeg_built / JPEG_DATA / "test_8.csv")
    assert len(train.labels) + len(test.labels) == 31 and train.pixels.shape[1] == 64

    two = run_make(copy_makefile(tmp_path), "-n", "dataset", "RAW=my/hand my/font/")
    assert two.returncode == 0
    assert "--out data/processed/raw/hand+font/train_8.csv" in two.stdout
    assert "--out data/processed/raw/hand+font/parts/font.csv" in two.stdout
    assert not re.search(r"--out data/processed/(train|test)", two.stdout)
    # A person's drawings keep whatever tag they were drawn at (the drawing page saves 3_280_0.png):
    # every row goes into every size's sets unless DRAWING_SIZES is given.
    mixes = [line for line in two.stdout.splitlines() if "digitprep mix" in line]
    assert len(mixes) == 8 and not any("--drawing-size" in line for line in mixes)
    tagged = run_make(tmp_path, "-n", "dataset", "RAW=my/hand", "DRAWING_SIZES=8")
    assert "--drawing-size 8 --drawing-size none --out data/processed/raw/hand/train_8.csv" in tagged.stdout
    same_name = run_make(tmp_path, "-n", "dataset", "RAW=a/hand b/hand")
    assert same_name.returncode == 2 and "two folders with one name" in same_name.stderr


def test_a_replaced_jpeg_or_an_oddly_named_one_rebuilds_its_origin(jpeg_project):
    again = run_make(jpeg_project, "dataset", *JPEG_ARGS)
    assert "Nothing to be done for 'dataset'" in again.stdout, again.stdout

    def pixels_of(name: str) -> np.ndarray:
        for kind in ("train", "test"):
            data = read_dataset(jpeg_project / JPEG_DATA / f"{kind}_8.csv")
            paths = list(data.column("path"))
            if name in paths:
                return data.pixels[paths.index(name)]
        raise AssertionError(f"{name} in no set")

    before = pixels_of("raw/hand/3/1.jpg")
    time.sleep(0.01)
    digit_png(jpeg_project / "raw" / "hand" / "3" / "1.jpg", 3, 2, True)  # another drawing, same name
    assert run_make(jpeg_project, "-q", "dataset", *JPEG_ARGS).returncode == 1
    rebuilt = run_make(jpeg_project, "dataset", *JPEG_ARGS, "V=1")  # V=1: the commands, not the steps
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "digitprep build raw/hand --labels auto --origin hand --sizes 8" in rebuilt.stdout
    assert f"--out {JPEG_DATA}/parts/hand_8.csv" in rebuilt.stdout and steps(rebuilt.stdout) == []
    assert not np.array_equal(pixels_of("raw/hand/3/1.jpg"), before)

    time.sleep(0.01)
    os.utime(jpeg_project / "raw" / "hand" / "7" / "odd name #3.jpg")
    odd = run_make(jpeg_project, "-n", "dataset", *JPEG_ARGS)
    assert odd.returncode == 0 and "digitprep build raw/hand" in odd.stdout, odd.stdout + odd.stderr


def test_every_suffix_build_reads_is_tracked_in_either_case(jpeg_project):
    folder = jpeg_project / "raw" / "hand" / "5"
    old = (jpeg_project / JPEG_DATA / "parts" / "hand.built").stat().st_mtime - 60
    names = [f"x{suffix}" for suffix in IMAGE_SUFFIXES] + [f"y{suffix.upper()}" for suffix in IMAGE_SUFFIXES]
    for name in [*names, "notes.txt"]:
        (folder / name).write_bytes(b"")
        os.utime(folder / name, (old, old))
    os.utime(folder, (old, old))  # the folder's own time says nothing new either

    def up_to_date() -> bool:
        result = run_make(jpeg_project, "-q", "dataset", *JPEG_ARGS)
        assert result.returncode in (0, 1), result.stderr
        return result.returncode == 0

    assert up_to_date()
    os.utime(folder / "notes.txt")  # not an image: build never reads it
    assert up_to_date()
    for name in names:
        os.utime(folder / name)
        assert not up_to_date(), name
        os.utime(folder / name, (old, old))


def test_train_and_compare_get_the_whole_default_flag_set_with_the_variables_merged_in(tmp_path):
    copy_makefile(tmp_path)
    result = run_make(tmp_path, "-n", "train", "EPOCHS=5")
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if "digittrain --size" in line]
    assert DEFAULT_FLAGS.format(hidden="256,256", lr="0.001", epochs=5, batch=32) in command
    assert command.count("--epochs") == 1

    extra = ("HIDDEN=64,32", "LR=0.01", "BATCH=16", "TRAIN_FLAGS=--seed 3 --report 1")
    result = run_make(tmp_path, "-n", "train", *extra)
    (command,) = [line for line in result.stdout.splitlines() if "digittrain --size" in line]
    assert DEFAULT_FLAGS.format(hidden="64,32", lr="0.01", epochs=40, batch=16) in command
    assert command.endswith("--seed 3 --report 1")  # appended: a later flag wins

    result = run_make(tmp_path, "-n", "compare", "EPOCHS=5", "COMPARE_FLAGS=--no-baseline")
    (command,) = [line for line in result.stdout.splitlines() if "digittrain compare" in line]
    assert DEFAULT_FLAGS.format(hidden="256,256", lr="0.001", epochs=5, batch=32) in command
    assert command.endswith("--no-baseline") and command.count("--epochs") == 1


def test_a_changed_training_flag_retrains_and_an_unchanged_rerun_does_nothing(jpeg_project):
    reports = jpeg_project / "reports" / "raw" / "hand"

    def train(*extra: str) -> subprocess.CompletedProcess:
        result = run_make(jpeg_project, "train", *JPEG_ARGS, *TINY_TRAINING, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not [verb for verb, _ in steps(result.stdout) if verb not in ("train",)], result.stdout
        return result

    assert steps(train().stdout) == [("train", "reports/raw/hand/model_8.npz")]
    assert "Nothing to be done for 'train'" in train().stdout
    before = snapshot(reports)
    assert run_make(jpeg_project, "-q", "train", *JPEG_ARGS, *TINY_TRAINING).returncode == 0
    assert run_make(jpeg_project, "-q", "train", *JPEG_ARGS, "HIDDEN=8", "EPOCHS=2").returncode == 1
    dry = run_make(jpeg_project, "-n", "train", *JPEG_ARGS, "HIDDEN=8", "EPOCHS=2")
    assert "--epochs 2" in dry.stdout
    assert snapshot(reports) == before  # -q and -n change nothing

    assert steps(train("EPOCHS=2").stdout) == [("train", "reports/raw/hand/model_8.npz")]
    assert "Nothing to be done for 'train'" in train("EPOCHS=2").stdout
    assert steps(train("EPOCHS=2", "TRAIN_FLAGS=--epochs 3").stdout)[0][0] == "train"
    assert steps(train("EPOCHS=2", "TRAIN_FLAGS=--epochs 3").stdout) == []
    with open(reports / "results.csv", newline="") as table:
        assert [row["epochs"] for row in csv.DictReader(table)] == ["1", "2", "3"]
    assert "--epochs 2" in (reports / "model_8.opts").read_text()

    compare = ("compare", *JPEG_ARGS, *TINY_TRAINING, "COMPARE_FLAGS=--no-baseline")
    first = run_make(jpeg_project, *compare)
    assert first.returncode == 0 and steps(first.stdout) == [("compare", "reports/raw/hand/compare.md")], first.stdout
    assert "Nothing to be done for 'compare'" in run_make(jpeg_project, *compare).stdout
    assert run_make(jpeg_project, *compare, "LR=0.01", "-q").returncode == 1


def test_size_lists_are_comma_lists_handed_on_as_the_tools_flags(tmp_path):
    copy_makefile(tmp_path)
    lists = ("SIZES=8,28", "DRAWING_SIZES=8", "ABLATE=0", "V=1")
    result = run_make(tmp_path, "-n", "dataset", "compare", "RAW=raw/hand raw/font", *lists)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    builds = [line for line in lines if "digitprep build" in line]
    assert len(builds) == 2 and all(" --sizes 20,28,8 " in line for line in builds)  # and MIXED_SIZE 20
    splits = [line for line in lines if "digitprep split" in line]
    assert len(splits) == 2 * 3 and all(" --test-share 0.2 " in line for line in splits)
    filtered = {line.rsplit("--out ", 1)[1] for line in lines if "--drawing-size 8 --drawing-size none --out" in line}
    assert filtered == {f"{PROCESSED}/{kind}_8.csv" for kind in ("train", "test")}  # 28 is no drawing size
    (compare,) = [line for line in lines if "digittrain compare" in line]
    assert f"--data {PROCESSED} --sizes 8,28 " in compare


def test_a_bare_make_prints_the_help_and_touches_nothing(tmp_path):
    copy_makefile(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_make(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not re.search(r"stamp|\.opts|\.built|Nothing to be done", result.stdout), result.stdout
    described = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    text = (REPO / "Makefile").read_text()
    targets = set(re.search(r"^\.PHONY: (.*)$", text, re.MULTILINE).group(1).split())
    variables = set(re.findall(r"^([A-Z_]+) +\?=", text, re.MULTILINE))
    assert targets <= described and variables <= described, (targets | variables) - described
    assert {"EPOCHS", "HIDDEN", "LR", "BATCH", "TRAIN_FLAGS", "COMPARE_FLAGS", "V", "RAW"} <= variables
    assert run_make(tmp_path, "help").stdout == result.stdout
    assert re.search(r"^  SIZES .*comma-separated.*\[8,20\]$", result.stdout, re.MULTILINE)
    drawing = r"^  DRAWING_SIZES .*comma-separated.*\n +\(empty with RAW: every row in every set\) \[8,20\]$"
    assert re.search(drawing, result.stdout, re.MULTILINE)


def test_make_form_writes_a_blank_form_and_its_layout_once_per_set_of_flags(tmp_path):
    copy_makefile(tmp_path)
    first = run_make(tmp_path, "form")
    assert first.returncode == 0, first.stdout + first.stderr
    reports = tmp_path / "reports"
    assert (reports / "form.pdf").read_bytes().startswith(b"%PDF")
    layout = json.loads((reports / "form.json").read_text())
    assert (layout["paper"], layout["rows"]) == ("a4", 10)
    assert "Nothing to be done for 'form'" in run_make(tmp_path, "form").stdout
    letter = run_make(tmp_path, "form", "FORM_FLAGS=--paper letter --rows 12 --cols 6")
    assert letter.returncode == 0 and "form    reports/form.pdf" in letter.stdout
    layout = json.loads((reports / "form.json").read_text())
    assert (layout["paper"], layout["rows"], layout["cols"]) == ("letter", 12, 6)
