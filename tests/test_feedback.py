"""What `digitprep build` does and says for a new user's folder (issue 14): drawings deskewed and
centred by default, a Keras-style count before the work, skips collapsed by kind with a hint, no
empty CSV, and option values refused at the edge."""

import json
import math
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, write_image

from digitprep.build import SMALL_INK, ink_extents
from digitprep.cli import main
from digitprep.csvio import read_onehot_csv
from digitprep.normalize import normalize
from digitprep.options import MNIST_BOX, NormalizeOptions
from digitprep.sources import Candidate, census, find_candidates

HINT = "put them in 0/..9/ folders or give --pattern '(?P<label>\\d)'"


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def build(*args):
    return run("build", *args)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def corner_drawing(digit: str = "3") -> np.ndarray:
    """A digit about 20x26 px drawn in the top-left corner of a 200x200 white page."""
    return drawn_digit(digit, canvas=200, at=(8, 45), scale=1.3, thickness=4)


def small_digits(root, counts: dict[int, int]):
    """``counts[label]`` small drawings of each label in ROOT/<label>/, each a little different."""
    for label, count in counts.items():
        for n in range(count):
            write_image(root / str(label) / f"{n}.png", drawn_digit(str(label), 40, (8 + n % 3, 32), 1.0, 2))
    return root


def ink_box(image: np.ndarray) -> tuple[int, int]:
    """(width, height) of the box around an image's non-zero pixels."""
    ys, xs = np.nonzero(image)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    return float(mass.sum(axis=0) @ np.arange(image.shape[1]) / mass.sum()), float(
        mass.sum(axis=1) @ np.arange(image.shape[0]) / mass.sum()
    )


def test_the_default_build_centres_a_small_digit_drawn_in_the_corner_of_its_page(in_tmp):
    write_image(in_tmp / "src" / "3" / "corner.png", corner_drawing())
    result = build("src", "--sizes", 28, "--out", "d.csv")
    assert result.exit_code == 0, result.output
    pixels, labels, _ = read_onehot_csv(in_tmp / "d.csv")
    assert labels.tolist() == [3]
    image = pixels[0].reshape(28, 28)
    cx, cy = centre_of_mass(image)
    assert abs(cx - 13.5) <= 1 and abs(cy - 13.5) <= 1
    assert max(ink_box(image)) == round(MNIST_BOX * 28) == 20  # the longer side fills MNIST's 20/28 box
    record = json.loads((in_tmp / "d.build.json").read_text())
    assert (record["deskew"], record["center"]) == (True, True)
    assert "small digits" not in result.stderr


def test_no_deskew_no_center_gives_the_plain_resize_and_warns_of_small_digits(in_tmp):
    page = corner_drawing()
    write_image(in_tmp / "src" / "3" / "corner.png", page)
    result = build("src", "--sizes", 28, "--no-deskew", "--no-center", "--out", "p.csv")
    assert result.exit_code == 0, result.output
    pixels, _, _ = read_onehot_csv(in_tmp / "p.csv")
    (plain,) = normalize(page, (28,), NormalizeOptions(deskew=False, center=False))
    assert np.array_equal(pixels[0], plain.ravel())  # the rows the build gave before issue 14
    assert max(ink_box(plain)) <= 5  # the speck the issue measured
    record = json.loads((in_tmp / "p.build.json").read_text())
    assert (record["deskew"], record["center"]) == (False, False)
    (warning,) = [line for line in result.stderr.splitlines() if "small digits" in line]
    assert warning == (
        "warning: small digits: in 1 of 1 row the ink spans under 36% of the image side (MNIST's digits: 71%); "
        "--center crops each digit and fits it into --box"
    )


def test_no_small_digit_warning_for_digits_that_fill_their_image(in_tmp):
    small_digits(in_tmp / "src", {label: 2 for label in range(10)})  # 40 px images, digits ~25 px tall
    result = build("src", "--sizes", 20, "--no-center", "--out", "b.csv")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    pixels, _, _ = read_onehot_csv(in_tmp / "b.csv")
    assert (ink_extents(pixels, 20) >= SMALL_INK * 20).all()


def test_ink_extents_measure_the_longer_side_of_the_bright_ink():
    rows = np.zeros((3, 10, 10), np.uint8)
    rows[0, 2:5, 3:9] = 255  # 6 wide, 3 tall
    rows[1, 1:9, 4] = 200  # a bar 8 tall
    rows[1, 0, :] = 100  # fringe under HALF_INK: not counted
    assert ink_extents(rows.reshape(3, 100), 10).tolist() == [6, 8, 0]


def test_an_unlabelled_folder_exits_1_with_one_collapsed_line_and_writes_nothing(in_tmp):
    names = ["3-a.png", "digit3_c.png", "x1.png", "x2.png", "x3.png"]
    for name in names:
        write_image(in_tmp / "drawings" / name, drawn_digit("3"))
    (in_tmp / "mine.csv").write_text("previous\n")
    result = build("drawings", "--sizes", "20,8", "--out", "mine.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Found no usable image among 5 files",
        f"skipped 5 files: no label in the name or folder (e.g. drawings/3-a.png, drawings/digit3_c.png); {HINT}",
        "Error: mine.csv: not written: no rows (all 5 inputs skipped)",
    ]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["drawings", "mine.csv"]  # no empty CSV, no sidecar
    assert (in_tmp / "mine.csv").read_text() == "previous\n"
    quiet = build("drawings", "--out", "mine.csv", "--quiet")  # the reason is still told when nothing is written
    assert quiet.exit_code == 1 and quiet.stderr.splitlines()[0].startswith("skipped 5 files: no label")
    hinted = build("drawings", "--pattern", r"(?P<label>\d)", "--out", "mine.csv")  # the hint works
    assert hinted.exit_code == 0, hinted.output
    assert read_onehot_csv(in_tmp / "mine.csv")[1].tolist() == [3, 3, 1, 2, 3]


def test_mnist_tables_that_give_no_row_exit_1_too(in_tmp):
    (in_tmp / "t.csv").write_text("label,p1,p2,p3,p4\n1,0,255,255,0\n")
    result = run("mnist", "t.csv", "--classes", "2", "--sizes", 4, "--out", "m.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "skipped t.csv#0: label 1 is not in the class set",
        "Error: m.csv: not written: no rows (its one input skipped)",
    ]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["t.csv"]


def test_an_empty_folder_exits_1_and_names_what_was_looked_for(in_tmp):
    (in_tmp / "empty").mkdir()
    (in_tmp / "empty" / "notes.txt").write_text("not an image")
    result = build("empty", "--out", "e.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: empty: no image files (looked for .png, .jpg, .jpeg, .bmp, .tif, .tiff, .gif, .webp, .pgm, .ppm, "
        ".pnm); nothing written"
    ]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["empty"]


def test_skips_are_collapsed_by_kind_with_a_hint_and_listed_in_full_in_the_errors_csv(in_tmp):
    small_digits(in_tmp / "src", {label: 2 for label in range(10)})
    for word in ("zero", "one"):
        for n in range(3):
            write_image(in_tmp / "src" / word / f"{n}.png", drawn_digit("0"))
    for n in range(4):
        (in_tmp / "src" / "5" / f"broken{n}.png").write_bytes(b"")
    result = build("src", "--sizes", 8, "--out", "s.csv")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    # The empty files are found in folder 5 and counted as its images: nothing is read before the line.
    assert lines[0] == "Found 24 images in 10 classes (2-6 each); 6 other files will be skipped"
    assert lines[1:3] == [
        "skipped 6 files: no label: folders named in words (e.g. src/one/0.png, src/one/1.png); "
        "name the folders 0 to 9",
        "skipped 4 files: not a readable image (e.g. src/5/broken0.png, src/5/broken1.png); "
        "re-save them as PNG or JPEG, or remove them",
    ]
    assert lines[3] == "wrote 20 rows to s.csv; skipped 10 (see s.errors.csv)" and len(lines) == 4
    errors = (in_tmp / "s.errors.csv").read_text().splitlines()[1:]
    assert len(errors) == 10
    assert "src/zero/2.png,no label: folder 'zero' spells a digit; name it 0" in errors
    assert "src/5/broken3.png,empty file" in errors


def test_the_found_line_counts_images_per_class_and_quiet_silences_it(in_tmp):
    small_digits(in_tmp / "even", {label: 5 for label in range(10)})
    result = build("even", "--sizes", 8, "--out", "e.csv")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["Found 50 images in 10 classes (5 each)", "wrote 50 rows to e.csv"]
    small_digits(in_tmp / "uneven", {0: 3, 1: 7, 2: 4})
    result = build("uneven", "--sizes", 8, "--classes", "0-2", "--out", "u.csv")
    assert result.stderr.splitlines() == ["Found 14 images in 3 classes (3-7 each)", "wrote 14 rows to u.csv"]
    quiet = build("uneven", "--sizes", 8, "--classes", "0-2", "--out", "u.csv", "--quiet")
    assert quiet.stderr.splitlines() == ["wrote 14 rows to u.csv"]


def test_a_class_with_no_image_or_a_single_one_is_warned_of(in_tmp):
    small_digits(in_tmp / "src", {0: 3, 1: 1, 2: 3, 4: 1})
    result = build("src", "--sizes", 8, "--classes", "0-4", "--out", "c.csv", "--quiet")  # warnings stay
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: class 3 has no image (--classes 0-4): a model trained on these rows never predicts it",
        "warning: classes 1, 4 have a single image: too few to train and test on (a split keeps each on one side)",
        "wrote 8 rows to c.csv",
    ]


def test_the_census_counts_usable_candidates_per_class():
    found = [
        Candidate("a", "a", "o", 1),
        Candidate("b", "b", "o", 1),
        Candidate("c", "c", "o", 2),
        Candidate("d", "d", "o", None, problem="no label"),
    ]
    counted = census(found, (0, 1, 2))
    assert (counted.files, counted.usable, counted.per_class) == (4, 3, {0: 0, 1: 2, 2: 1})
    assert counted.line() == "Found 3 images in 2 classes (1-2 each); 1 other file will be skipped"
    assert census(found[:1], (1,)).line() == "Found 1 image in 1 class"
    unlabelled = [Candidate("a", "a", "o"), Candidate("b", "b", "o")]
    assert census(unlabelled, (0,), labels_known=False).line() == (
        "Found 2 images (labels read from each image's first row)"
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(", "is not a regular expression (missing ), unterminated subpattern at position 0)"),
        ("a{99999999999}", "is not a regular expression (the repetition number is too large)"),
        (r"(?P<digit>\d)", "has no named group 'label', e.g. (?P<label>\\d)_(?P<tag>\\d+)"),
    ],
)
def test_a_bad_pattern_is_one_line_naming_the_option(in_tmp, pattern, reason):
    small_digits(in_tmp / "src", {1: 1})
    result = build("src", "--pattern", pattern, "--out", "x.csv")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == f"Error: Invalid value for '--pattern': {pattern!r} {reason}"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["src"]
    with pytest.raises(ValueError, match=re.escape(f"--pattern {pattern!r} {reason}")):  # the library says it too
        find_candidates([in_tmp / "src"], pattern=pattern)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_a_box_that_is_not_finite_is_refused_naming_the_option(in_tmp, value):
    small_digits(in_tmp / "src", {1: 1})
    result = build("src", "--box", value, "--out", "x.csv")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == f"Error: Invalid value for '--box': {value!r} is not a finite number."
    assert sorted(p.name for p in in_tmp.iterdir()) == ["src"]


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("mnist", "--box", "nan"),
        ("augment", "--rotation", "nan"),
        ("augment", "--elastic-sigma", "inf"),
        ("augment", "--noise", "nan"),
        ("render", "--rotation", "nan"),
        ("render", "--jitter", "inf"),
        ("split", "--test-share", "nan"),
    ],
)
def test_every_numeric_option_refuses_values_that_are_not_finite(in_tmp, command, option, value):
    (in_tmp / "data.csv").write_text("label,pixel0\n1,0\n")
    first = {"mnist": ["data.csv", "--out", "o.csv"], "augment": ["data.csv", "--out", "o.csv"]}
    first |= {"render": ["--out-dir", "fonts"], "split": ["data.csv"]}
    result = run(command, *first[command], option, value)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"Error: Invalid value for '{option}': {value!r} is not a finite number."
    assert sorted(p.name for p in in_tmp.iterdir()) == ["data.csv"]


@pytest.mark.parametrize(
    ("command", "option", "value", "message"),
    [
        ("build", "--stroke", "nan", "'nan' is not 'keep', 'auto' or a width from 0.5 to 10 pixels"),
        ("render", "--stroke", "nan,0.01", "need -0.1 <= LOW <= HIGH <= 0.1, got 'nan,0.01'"),
        ("render", "--glyph-size", "0.5,inf", "need 0.2 <= LOW <= HIGH <= 1.0, got '0.5,inf'"),
        ("build", "--box", "2", "2.0 is not in the range 0.05<=x<=1."),
    ],
)
def test_ranges_and_widths_refuse_nan_and_inf_too(in_tmp, command, option, value, message):
    small_digits(in_tmp / "src", {1: 1})
    first = {"build": ["src", "--out", "x.csv"], "render": ["--out-dir", "fonts"]}[command]
    result = run(command, *first, option, value)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].replace("'", "") == f"Error: Invalid value for {option}: {message}".replace(
        "'", ""
    )


def test_normalize_options_refuse_what_the_command_line_refuses():
    for box in (math.nan, math.inf, 0.0, 1.5):
        with pytest.raises(ValueError, match=r"^box must be a share from 0\.05 to 1"):
            NormalizeOptions(box=box)
    for stroke in (math.nan, -1.0, 0.2, 11.0):
        with pytest.raises(ValueError, match=r"^stroke must be 0"):
            NormalizeOptions(stroke=stroke)
    assert NormalizeOptions(box=1.0, stroke=2.9).box == 1.0


def test_only_build_deskews_and_centres_by_default():
    defaults = {
        name: {p.name: p.default for p in main.commands[name].params if p.name in ("deskew", "center")}
        for name in ("build", "mnist")
    }
    assert defaults == {"build": {"deskew": True, "center": True}, "mnist": {"deskew": False, "center": False}}
    mnist_help = " ".join(run("mnist", "--help").output.split())
    assert "Off by default: the rows mirror the source's pixels" in mnist_help


def test_a_bar_drawn_slanted_and_small_comes_out_upright_by_default(in_tmp):
    page = np.full((200, 200), 255, np.uint8)
    cv2.line(page, (150, 120), (170, 180), 0, 5)  # a "1" leaning right, in the lower-right corner
    write_image(in_tmp / "src" / "1" / "lean.png", page)
    assert build("src", "--sizes", 28, "--out", "l.csv").exit_code == 0
    image = read_onehot_csv(in_tmp / "l.csv")[0][0].reshape(28, 28)
    width, height = ink_box(image)
    assert height == 20 and width <= 6  # upright, filling the box's height
