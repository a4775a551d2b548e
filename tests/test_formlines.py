"""Form lines: printed box lines along a crop's edges are removed, a digit's own strokes never."""

import cv2
import numpy as np
import pytest

import digitprep.formlines as formlines
from digitprep.formlines import remove_form_lines, remove_lines, side_lines


def digit(shape=(60, 60)):
    """An ink-high float32 'F' in the middle of the frame, a margin of paper all round."""
    image = np.zeros(shape, np.float32)
    image[15:45, 26:32] = 255  # stem
    image[15:20, 26:42] = 255  # top bar
    image[28:33, 26:40] = 255  # middle bar
    return image


def removed(image):
    """remove_form_lines of one image: (the image after, the sides removed)."""
    out, sides = remove_form_lines(image[None])
    return out[0], sides[0]


def test_a_box_on_all_four_sides_is_removed_and_the_digit_kept():
    base = digit()
    boxed = base.copy()
    boxed[0:2], boxed[-2:], boxed[:, 0:2], boxed[:, -2:] = 255, 255, 255, 255
    out, sides = removed(boxed)
    assert sides == ("top", "bottom", "left", "right")
    line = (boxed > 0) & (base == 0)
    assert out[line].max() == 0  # every line pixel is gone
    assert np.array_equal(out[base > 0], base[base > 0])  # every digit pixel is as it was
    assert np.array_equal(out, base)
    assert out.dtype == np.float32


def test_lines_on_two_sides_are_removed():
    base = digit()
    lined = base.copy()
    lined[0:2] = 255
    lined[:, 0:2] = 255
    out, sides = removed(lined)
    assert sides == ("top", "left")
    assert np.array_equal(out, base)


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_one_line_alone_on_its_side_apart_from_the_digit_is_removed(side):
    base = digit()
    lined = base.copy()
    rows = {"top": np.s_[1:3, :], "bottom": np.s_[-3:-1, :], "left": np.s_[:, 1:3], "right": np.s_[:, -3:-1]}
    lined[rows[side]] = 255
    out, sides = removed(lined)
    assert sides == (side,)
    assert np.array_equal(out, base)


@pytest.mark.parametrize("degrees", [1.0, 1.5, 2.0])
def test_a_slightly_tilted_line_is_removed(degrees):
    size = 100
    base = np.zeros((size, size), np.float32)
    base[25:75, 47:53] = 255  # a digit's stroke, apart from the line
    drawn = np.zeros((size, size), np.uint8)
    drop = (size - 1) * np.tan(np.radians(degrees))  # about 2.6 px over the width at 1.5 degrees
    cv2.line(drawn, (0, 2 * 16), ((size - 1) * 16, round((2 + drop) * 16)), 255, 2, cv2.LINE_8, shift=4)
    rows = np.flatnonzero(drawn.any(axis=1))
    assert rows.max() - rows.min() >= 2 + round(drop) - 1  # the line does span several rows
    lined = np.maximum(base, drawn.astype(np.float32))
    out, sides = removed(lined)
    assert sides == ("top",)
    assert np.array_equal(out, base)


def test_a_stroke_crossing_the_line_loses_only_the_line_rows():
    base = np.zeros((60, 60), np.float32)
    base[0:45, 28:34] = 255  # a vertical stroke from the top edge downward, through the line
    base[40:45, 20:40] = 255
    lined = base.copy()
    lined[0:2] = 255
    lined[:, 0:2] = 255
    out, sides = removed(lined)
    assert sides == ("top", "left")
    assert out[0:2].max() == 0 and out[:, 0:2].max() == 0  # both lines gone, crossing included
    # Away from the line rows (2 px of anti-aliasing fringe go with the line) the digit is intact.
    assert np.array_equal(out[4:], base[4:])
    assert out[4:45, 28:34].min() == 255


def test_a_stroke_from_the_line_down_with_lines_on_two_sides():
    base = digit()
    base[2:15, 28:32] = 255  # the digit's stem reaches up to the top line
    lined = base.copy()
    lined[0:2] = 255
    lined[:, -2:] = 255
    out, sides = removed(lined)
    assert sides == ("top", "right")
    assert out[0:2].max() == 0 and out[:, -2:].max() == 0
    assert np.array_equal(out[4:, :-4], base[4:, :-4])


def tight_seven(bar: int = 4):
    """A tight crop of a 7: its ``bar`` px bar is the whole top edge, joined to a slanted 4 px
    stem (a 2 px bar is thin enough to pass for a form line on its own)."""
    seven = np.zeros((30, 20), np.float32)
    seven[0:bar, :] = 255
    for y in range(bar, 30):
        x = round(16 - (y - bar) * 0.4)
        seven[y, x - 2 : x + 2] = 255
    return seven


def fat_ring(inner=4.5, outer=8.0, side=16, supersample=8):
    """A fat ring (float32 ink-high) touching all four edges of a 16x16 crop."""
    ys, xs = (np.mgrid[0 : side * supersample, 0 : side * supersample] + 0.5) / supersample
    r = np.hypot(ys - side / 2, xs - side / 2)
    coverage = ((r >= inner) & (r <= outer)).reshape(side, supersample, side, supersample).mean(axis=(1, 3))
    return np.rint(coverage * 255).astype(np.float32)


@pytest.mark.parametrize(
    "image",
    [tight_seven(), tight_seven(bar=2), fat_ring(), fat_ring(5.5, 8.0)],
    ids=["seven", "seven-thin-bar", "ring", "thin-ring"],
)
def test_a_digits_own_strokes_along_the_edges_are_kept(image):
    out, sides = removed(image)
    assert sides == ()
    assert np.array_equal(out, image)


def thin_one_with_flag():
    """A 1 px wide 1 cropped tight: the stem is the right edge, a 4 px flag reaches the left one."""
    one = np.zeros((28, 5), np.float32)
    one[:, 4] = 255
    for y, x in ((1, 3), (2, 2), (3, 1), (4, 0)):
        one[y, x] = 255
    return one


THIN_ONES = {
    "one-column": np.full((28, 1), 255, np.float32),
    "stem-at-the-edge": np.array([[0, 255]] * 28, np.float32),
    "with-flag": thin_one_with_flag(),
}


@pytest.mark.parametrize("name", THIN_ONES)
def test_a_thin_tight_one_is_never_removed_as_a_line(name, monkeypatch):
    one = THIN_ONES[name]
    out, sides = removed(one)
    assert sides == ()
    assert np.array_equal(out, one)
    # It is the KEEP_SHARE guard that keeps it: the stem does look like a form line.
    assert side_lines(one > 0.5)
    monkeypatch.setattr(formlines, "KEEP_SHARE", 0.0)
    assert remove_lines(one)[1] != ()


def test_images_without_ink_near_the_edges_are_returned_as_they_are():
    stack = np.stack([digit(), digit() * 0.5, np.zeros((60, 60), np.float32)])
    out, sides = remove_form_lines(stack)
    assert out is stack  # nothing to look at: not even a copy
    assert sides == [(), (), ()]
    image = digit()
    same, found = remove_lines(image)
    assert same is image and found == ()


def test_only_images_with_lines_change_in_a_stack():
    plain = digit()
    boxed = plain.copy()
    boxed[0:2], boxed[-2:], boxed[:, 0:2], boxed[:, -2:] = 255, 255, 255, 255
    stack = np.stack([plain, boxed, plain])
    out, sides = remove_form_lines(stack)
    assert sides == [(), ("top", "bottom", "left", "right"), ()]
    assert all(np.array_equal(image, plain) for image in out)
    assert np.array_equal(stack[1], boxed)  # the input is left alone
