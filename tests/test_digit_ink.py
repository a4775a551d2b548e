"""Which ink is the digit (``digit_ink``), and the levels and findings the pipeline puts out."""

import cv2
import numpy as np
import pytest

from digitprep.normalize import digit_ink, fit_and_center, normalize, normalize_stack
from digitprep.options import NormalizeOptions

DESKEW_CENTRE = NormalizeOptions(deskew=True, center=True)


def kept(image):
    """digit_ink of one image: (the image with the other ink zeroed, its box as a tuple)."""
    out, boxes = digit_ink(image[None].astype(np.float32))
    return out[0], tuple(int(v) for v in boxes[0])


def test_a_five_in_two_blobs_keeps_both():
    five = np.zeros((60, 60), np.float32)
    five[20:32, 20:24] = 255  # the body: upper stem, middle bar, bowl, bottom
    five[28:32, 20:38] = 255
    five[28:46, 34:38] = 255
    five[42:46, 20:38] = 255
    five[14:18, 23:40] = 255  # the top bar, apart: two empty rows above the stem
    assert cv2.connectedComponents((five > 0).astype(np.uint8), connectivity=8)[0] - 1 == 2
    out, box = kept(five)
    assert np.array_equal(out, five)
    assert box == (20, 14, 20, 32)  # x 20..39, y 14..45


def test_specks_far_from_the_digit_are_dropped():
    digit = np.zeros((60, 60), np.float32)
    digit[15:45, 25:31] = 255
    digit[15:20, 25:40] = 255
    specked = digit.copy()
    specked[2, 2] = specked[57, 3] = specked[50, 52] = 255  # one-pixel specks
    specked[55:57, 55:57] = 255  # 2x2 specks
    specked[3:5, 50:52] = 180
    out, box = kept(specked)
    assert np.array_equal(out, digit)
    assert box == (25, 15, 15, 30)


def test_a_smudge_twice_the_digits_area_in_a_corner_is_dropped():
    digit = np.zeros((100, 100), np.float32)
    digit[35:65, 46:52] = 255
    digit[35:40, 46:58] = 255
    area = int((digit > 0).sum())
    side = int(np.ceil(np.sqrt(2 * area)))
    smudged = digit.copy()
    smudged[:side, :side] = 200
    assert (smudged[:side, :side] > 0).sum() >= 2 * area
    out, box = kept(smudged)
    assert box == (46, 35, 12, 30)
    assert np.array_equal(out, digit)


def test_a_digit_broken_into_four_arcs_keeps_them_all():
    ring = np.zeros((60, 60), np.uint8)
    cv2.circle(ring, (30, 30), 18, 255, 4)
    ring[28:33, :] = 0
    ring[:, 28:33] = 0
    assert cv2.connectedComponents(ring, connectivity=8)[0] - 1 == 4
    out, box = kept(ring)
    assert np.array_equal(out, ring)
    assert box == (10, 10, 41, 41)


def test_a_dashed_stroke_of_four_similar_pieces_keeps_them_all():
    dashed = np.zeros((60, 60), np.float32)
    for k in range(4):
        dashed[12 + 10 * k : 19 + 10 * k, 28:33] = 255  # 7 px dashes, 3 px gaps
    out, box = kept(dashed)
    assert box == (28, 12, 5, 37)
    assert np.array_equal(out, dashed)


STROKES = {
    "0": [("ellipse", ((140, 140), (60, 95), 0, 0, 360))],
    "1": [("lines", [(110, 70), (150, 45), (150, 235)])],
    "4": [("lines", [(170, 235), (170, 45), (80, 170), (210, 170)])],
    "7": [("lines", [(85, 50), (195, 50), (120, 235)])],
}


def pen_drawing(digit, thickness):
    """A digit drawn dark on a white 280x280 canvas with a pen of the given thickness."""
    canvas = np.full((280, 280), 255, np.uint8)
    for kind, shape in STROKES[digit]:
        if kind == "lines":
            cv2.polylines(canvas, [np.array(shape, np.int32)], False, 0, thickness)
        else:
            cv2.ellipse(canvas, *shape, 0, thickness)
    return canvas


@pytest.mark.parametrize("thickness", [1, 20], ids=["pencil", "marker"])
@pytest.mark.parametrize("digit", STROKES)
def test_thin_and_thick_pens_reach_full_contrast_after_the_resize(digit, thickness):
    (out,) = normalize(pen_drawing(digit, thickness), (20,), DESKEW_CENTRE)
    assert out.shape == (20, 20) and out.dtype == np.uint8
    assert out.max() == 255


def test_an_mnist_image_peaking_at_254_comes_out_identical():
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 254
    image[5:23, 11] = 40
    image[5:23, 16] = 3
    image[4, 12:16] = 100
    (out,) = normalize(image, (28,), NormalizeOptions())
    assert np.array_equal(out, image)


def test_a_narrow_digit_fitted_two_pixels_wide_is_centred():
    pencil = np.zeros((60, 60), np.uint8)
    cv2.line(pencil, (32, 10), (28, 49), 255, 1)  # a slanted 1-pixel 1: box 5 wide, 40 tall
    assert cv2.boundingRect(pencil) == (28, 10, 5, 40)  # fitted to 2 x 14 in a 20x20 frame
    out = fit_and_center(pencil[None].astype(np.float32), np.array([[28, 10, 5, 40]]), 20)[0]
    assert out.max() > 0
    moments = cv2.moments(out.astype(np.float64))
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    assert abs(cx - 9.5) <= 1 and abs(cy - 9.5) <= 1  # today: (0.5, 12.5), in the left edge


def test_findings_columns_for_an_inverted_flat_drawing():
    drawing = pen_drawing("7", 12)
    _, blank, findings = normalize_stack(drawing[None], (20,), DESKEW_CENTRE)
    assert blank.tolist() == [False]
    assert findings.columns(0)[:3] == (1, "0", "")


def test_findings_columns_for_a_local_background():
    height, width = 120, 240
    coverage = np.zeros((height, width))
    for x in (20, 70, 120, 170, 215):
        cv2.line(coverage, (x, 20), (x + 8, 100), 1.0, 5)
    light = np.linspace(230, 80, width)[None, :].repeat(height, axis=0)
    photo = np.clip(np.rint(light * (1 - 0.8 * coverage)), 0, 255).astype(np.uint8)
    _, blank, findings = normalize_stack(photo[None], (20,), DESKEW_CENTRE)
    assert blank.tolist() == [False]
    assert findings.columns(0)[:3] == (1, "local", "")


def test_findings_columns_for_a_boxed_digit():
    form = np.full((60, 60), 255, np.uint8)
    form[15:45, 26:32] = form[15:20, 26:42] = form[28:33, 26:40] = 0  # the digit, dark on white
    form[0:2], form[-2:], form[:, 0:2], form[:, -2:] = 0, 0, 0, 0  # the printed box
    (stack,), blank, findings = normalize_stack(form[None], (20,), NormalizeOptions(center=True))
    assert blank.tolist() == [False]
    assert findings.columns(0)[:3] == (1, "0", "top+bottom+left+right")
    # Without the box the digit comes out the same.
    bare = form.copy()
    bare[0:2], bare[-2:], bare[:, 0:2], bare[:, -2:] = 255, 255, 255, 255
    assert np.array_equal(stack[0], normalize(bare, (20,), NormalizeOptions(center=True))[0])


def test_a_strong_smudge_bigger_than_a_faint_digit_leaves_the_digit_as_if_alone():
    """A faint pencil 7 (ink 60 on black) and, in a corner, a dark smudge (255) twice its area:
    the digit is chosen, the smudge dropped, and the row is the one the 7 gives on its own,
    lifted to 255 although the smudge set the image's peak."""
    seven = np.zeros((100, 100), np.uint8)
    cv2.line(seven, (35, 30), (65, 30), 60, 3)
    cv2.line(seven, (65, 30), (45, 70), 60, 3)
    smudged = seven.copy()
    smudged[76:100, 0:26] = 255  # 624 px against the 7's 379
    assert (smudged == 255).sum() > 1.5 * (seven > 0).sum()
    options = NormalizeOptions(deskew=True, center=True)
    (alone,), (with_smudge,) = normalize(seven, (20,), options), normalize(smudged, (20,), options)
    assert with_smudge.max() == 255
    assert np.abs(with_smudge.astype(int) - alone).max() <= 2  # lifted before the resize alone, after it here


def test_a_faint_smudge_near_the_digit_is_not_one_of_its_strokes():
    """A grey blurred smudge (a thumb, a shadow) within reach of a dark 6 and smaller than it: a
    piece drawn with another pen, dropped; the box is the 6's."""
    six = np.zeros((280, 280), np.float32)
    cv2.ellipse(six, (140, 170), (40, 40), 0, 0, 360, 255, 12)
    cv2.line(six, (105, 150), (150, 60), 255, 12)
    smudge = np.zeros_like(six)
    cv2.ellipse(smudge, (40, 250), (22, 12), 0, 0, 360, 70, -1)
    smudged = np.maximum(six, cv2.GaussianBlur(smudge, (0, 0), 3))
    assert (smudge > 0).sum() < (six > 0).sum()  # smaller than the digit, and within its reach
    out, box = kept(smudged)
    assert box == kept(six)[1]
    assert out[225:275, 10:70].max() < 0.5  # nothing left that counts as ink (INK_LEVEL)
