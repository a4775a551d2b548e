"""Stroke width: measured on synthetic strokes of known width, and set by re-drawing the skeleton."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_image

from digitprep.cli import main
from digitprep.normalize import normalize, normalize_stack
from digitprep.options import NormalizeOptions
from digitprep.stroke import MNIST_STROKE, set_stroke, stroke_width


def bars(width: int, length: int = 60) -> np.ndarray:
    """Two long straight bars ``width`` px wide, float32 0/255: the ends matter little."""
    image = np.zeros((length + 20, 60), np.float32)
    image[10 : 10 + length, 10 : 10 + width] = 255
    image[10 : 10 + length, 40 : 40 + width] = 255
    return image


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8])
def test_width_of_straight_strokes_is_their_width(width):
    assert stroke_width(bars(width)) == pytest.approx(width, rel=0.12)


def test_width_of_nothing_is_zero():
    assert stroke_width(np.zeros((10, 10), np.float32)) == 0.0


def test_grey_anti_aliasing_counts_from_half_the_peak():
    image = bars(3)
    image[10:70, 9] = 100  # a faint fringe under half the peak: not stroke
    image[10:70, 13] = 200  # a strong one above it: stroke
    assert stroke_width(image) == pytest.approx(4, rel=0.12)


@pytest.mark.parametrize("drawn", [1, 12])
def test_pencil_and_marker_are_redrawn_at_the_same_width(drawn):
    """A 7 drawn with a 1-pixel pencil or a 12-pixel marker on 200x200: re-drawn at 3 px of a
    20-px digit, both measure 3 of those pixels, and the canvas grew by the disc's radius."""
    canvas = np.zeros((200, 200), np.uint8)
    cv2.polylines(canvas, [np.array([[40, 30], [160, 30], [90, 170]])], False, 255, drawn)
    image = canvas.astype(np.float32)
    box = np.array([cv2.boundingRect(canvas)])
    out, changes = set_stroke(image[None], box, 3.0)
    scale = max(box[0, 2], box[0, 3]) / 20  # image pixels per pixel of a 20-px digit
    assert stroke_width(out[0]) / scale == pytest.approx(3.0, rel=0.2)
    assert set(np.unique(out)) <= {0.0, 255.0}
    pad = (out.shape[1] - 200) // 2
    assert pad == round(3 * scale) // 2 + 1
    before, after = changes[0].split("->")
    assert after == "3" and float(before) == pytest.approx(drawn / scale, rel=0.35)


def test_stroke_option_reaches_the_manifest_and_changes_the_row(tmp_path):
    thin = np.full((200, 200), 255, np.uint8)
    cv2.line(thin, (100, 20), (100, 180), 0, 1)  # a 1-pixel pencil 1
    write_image(tmp_path / "src" / "1" / "a.png", thin)
    runner = CliRunner()
    common = ["build", str(tmp_path / "src"), "--labels", "folder", "--sizes", "20", "--center"]
    assert runner.invoke(main, [*common, "--out", str(tmp_path / "keep.csv")]).exit_code == 0
    assert runner.invoke(main, [*common, "--stroke", "auto", "--out", str(tmp_path / "auto.csv")]).exit_code == 0
    keep = (tmp_path / "keep.manifest.csv").read_text().splitlines()[1].split(",")
    auto = (tmp_path / "auto.manifest.csv").read_text().splitlines()[1].split(",")
    assert keep[-1] == "" and auto[-1] == f"0.1->{MNIST_STROKE:g}"
    rows = [np.loadtxt(tmp_path / f"{name}.csv", delimiter=",", skiprows=1)[:400] for name in ("keep", "auto")]
    assert (rows[0] > 0).sum() < (rows[1] > 0).sum()  # wider strokes cover more pixels
    result = runner.invoke(main, [*common, "--stroke", "thick", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "'thick' is not 'keep', 'auto' or a width" in result.output


def test_keep_leaves_the_pipeline_as_it_was():
    digit = np.zeros((28, 28), np.uint8)
    digit[5:22, 12:15] = 255
    options = NormalizeOptions(deskew=True, center=True)
    stacks, _, findings = normalize_stack(digit[None], (20,), options)
    assert findings.stroke == [""]
    assert np.array_equal(stacks[0][0], normalize(digit, (20,), options)[0])
