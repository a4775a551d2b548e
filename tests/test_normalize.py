"""Normalisation steps on small synthetic images, with exact expected values."""

import cv2
import numpy as np
import pytest
from conftest import drawn_digit

from digitprep.normalize import (
    REMAP_LIMIT,
    BlankImage,
    ImageTooLarge,
    centres_and_skews,
    deskew,
    deskew_ink,
    digit_ink,
    fit_and_center,
    normalize,
    normalize_stack,
    resized,
    to_uint8,
)
from digitprep.options import NormalizeOptions
from digitprep.paper import ink_high, paper_and_ink


def ink_boxes(stack):
    """The digit's box in each image of a stack (``digit_ink``)."""
    return digit_ink(stack)[1]


def resize(image, width, height):
    return to_uint8(resized(image, width, height))


def ink_bbox(image):
    return tuple(int(v) for v in ink_boxes(image[None])[0])


def crop_to_ink(image):
    x, y, w, h = ink_bbox(image)
    return image[y : y + h, x : x + w]


def skew_of(image):
    return float(centres_and_skews(image[None])[2][0])


def centre_of_mass(image):
    m = cv2.moments(image.astype(np.float64))
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def test_dark_ink_on_light_paper_is_inverted():
    image = np.full((5, 5), 250, np.uint8)
    image[2, 2] = 0
    expected = np.full((5, 5), 5, np.uint8)
    expected[2, 2] = 255
    assert np.array_equal(ink_high(image[None])[0], expected)


def test_light_ink_on_dark_is_kept():
    image = np.zeros((5, 5), np.uint8)
    image[1:4, 2] = 200
    assert ink_high(image[None])[0].tolist() == image.tolist()


def test_paper_and_its_noise_are_removed_and_ink_stretched():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(225, 3, (40, 40)), 0, 255).astype(np.uint8)
    paper[10:30, 18:22] = 30  # a dark stroke
    clean, blank = paper_and_ink(paper[None])[:2]
    clean = clean[0]
    assert not blank[0]
    assert clean[0:8].max() == 0 and clean[:, 0:15].max() == 0  # paper is exactly 0
    assert clean[10:30, 18:22].min() == 255  # the stroke is full ink


def test_clean_ink_high_image_passes_through_unchanged():
    image = np.zeros((28, 28), np.uint8)
    image[5:20, 10:14] = 254
    image[5:20, 14] = 3  # faint antialiasing must survive
    clean, _ = paper_and_ink(image[None])[:2]
    assert np.array_equal(clean[0], image)


def test_faint_ink_is_stretched_to_full_range():
    image = np.zeros((10, 10), np.uint8)
    image[3:7, 3:7] = 100
    image[3, 3] = 50
    out = paper_and_ink(image[None])[:2][0][0]
    assert out[4, 4] == 255 and out[3, 3] == 128 and out[0, 0] == 0


@pytest.mark.parametrize("level", [0, 255, 128])
def test_blank_page_is_refused(level):
    _, blank = paper_and_ink(np.full((1, 20, 20), level, np.uint8))[:2]
    assert blank.tolist() == [True]
    with pytest.raises(BlankImage):
        normalize(np.full((20, 20), level, np.uint8), (8,), NormalizeOptions())


def test_bbox_ignores_stray_noise_pixels():
    image = np.zeros((50, 50), np.uint8)
    image[20:35, 22:30] = 255
    image[2, 2] = image[47, 48] = image[3, 45] = 255  # specks in three corners
    assert ink_bbox(image) == (22, 20, 8, 15)
    assert crop_to_ink(image).shape == (15, 8)


def test_bbox_keeps_every_real_stroke():
    image = np.zeros((50, 50), np.uint8)
    image[10:40, 20:24] = 255  # the stem
    image[10:13, 26:40] = 255  # a detached top bar, as in a broken 5
    assert ink_bbox(image) == (20, 10, 20, 30)


def test_inter_area_shrink_averages_blocks_exactly():
    image = np.array([[0, 0, 255, 255], [0, 0, 255, 255], [100, 100, 50, 50], [100, 100, 50, 50]], np.uint8)
    assert resize(image, 2, 2).tolist() == [[0, 255], [100, 50]]
    assert np.array_equal(resize(image, 4, 4), image)


def test_fit_and_center_places_a_block_in_the_mnist_box():
    block = np.full((40, 20), 255, np.uint8)  # tall ink: fitted to 20 high, 10 wide in 28x28
    frame = fit_and_center(block[None], np.array([[0, 0, 20, 40]]), 28)[0]
    rows, cols = np.nonzero(frame)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 23, 9, 18)
    assert frame[4:24, 9:19].min() == 255 and frame.sum() == 255 * 200


def test_off_centre_digit_on_large_white_canvas_comes_out_centred():
    canvas = np.full((400, 300), 255, np.uint8)
    canvas[20:140, 20:130] = drawn_digit("7", canvas=120)[:, 10:120]  # top-left corner
    for size in (28, 20, 8):
        (out,) = normalize(canvas, (size,), NormalizeOptions(center=True))
        cx, cy = centre_of_mass(out)
        middle = (size - 1) / 2
        assert abs(cx - middle) <= 0.5 and abs(cy - middle) <= 0.5, (size, cx, cy)
        _, _, w, h = cv2.boundingRect((out > 0).view(np.uint8))
        assert max(w, h) <= round(size * 20 / 28) + 1


def slanted_bar(slope=0.5, height=60, width=6):
    image = np.zeros((80, 80), np.uint8)
    for y in range(10, 10 + height):
        x = int(10 + slope * (y - 10))
        image[y, x : x + width] = 255
    return image


def test_slanted_bar_comes_out_upright_after_deskew():
    bar = slanted_bar()
    assert skew_of(bar) == pytest.approx(-0.5, abs=0.02) or skew_of(bar) == pytest.approx(0.5, abs=0.02)
    stack = bar[None].astype(np.float32)
    upright = crop_to_ink(deskew_ink(stack, ink_boxes(stack))[0])
    assert abs(skew_of(upright)) < 0.02
    assert upright.shape[1] <= 8  # 6 wide plus interpolation fringe; slanted it spans 36
    assert abs(upright.shape[0] - 60) <= 1
    (out,) = normalize(bar, (28,), NormalizeOptions(deskew=True, center=True))
    cols = np.nonzero(out.max(axis=0) > 127)[0]
    assert cols.max() - cols.min() <= 4  # a vertical stroke, not a diagonal


def test_deskew_of_the_whole_image_keeps_the_canvas():
    bar = slanted_bar()
    straight = deskew(bar[None])[0]
    assert straight.shape == bar.shape
    assert abs(skew_of(straight)) < 0.02


def slanted_bars(n, height=130, width=40, slopes=(0.2,)):
    """(n, height, width) uint8: a bar 4 px wide through the middle of each image, each at its own
    offset, with the given slopes (x per y) in turn."""
    stack = np.zeros((n, height, width), np.uint8)
    ys = np.arange(10, height - 10)
    for i in range(n):
        xs = width // 2 - 4 + i % 5 + (slopes[i % len(slopes)] * (ys - height / 2)).astype(int)
        for dx in range(4):
            stack[i, ys, xs + dx] = 255
    return stack


def test_each_image_is_deskewed_as_if_alone_whatever_the_stack():
    # 260 x 130 rows: more than cv2.remap takes in one image, so the stack goes in parts too.
    varied = slanted_bars(260, slopes=(0.1, 0.2, -0.15))
    assert len(varied) * varied.shape[1] >= REMAP_LIMIT
    boxes = ink_boxes(varied)
    upright = deskew_ink(varied, boxes)
    for image, box, result in zip(varied, boxes, upright):
        alone = deskew_ink(image[None], box[None])[0]
        rows, columns = alone.shape  # the stack's canvas fits its largest box: the rest is empty
        assert np.array_equal(result[:rows, :columns], alone)
        assert not result[rows:].any() and not result[:, columns:].any()
        assert abs(skew_of(result)) < 0.02
    kept = deskew(varied)
    for image, result in zip(varied, kept):
        assert np.array_equal(result, deskew(image[None])[0])
        assert abs(skew_of(result)) < 0.02
    stacks, blank, _ = normalize_stack(varied, (20,), NormalizeOptions(deskew=True, center=True))
    assert not blank.any() and len(stacks[0]) == 260


def test_every_step_treats_each_image_as_if_alone():
    # Bars of very different slants and sizes in one stack: the deskew canvas is as wide as the
    # widest, yet every image comes out exactly as it does on its own.
    slopes = (0.0, 0.05, 0.1, 0.5, -0.6)
    varied = slanted_bars(60, height=40, width=40, slopes=slopes)
    varied[7, :, :] = 0  # and a blank one among them
    options = NormalizeOptions(deskew=True, center=True)
    stacks, blank, _ = normalize_stack(varied, (20, 8), options)
    assert blank.tolist() == [i == 7 for i in range(60)]
    for position in (0, 3, 8, 59):
        alone, _, _ = normalize_stack(varied[position][None], (20, 8), options)
        row = position - (position > 7)
        assert np.array_equal(stacks[0][row], alone[0][0]) and np.array_equal(stacks[1][row], alone[1][0])


def test_an_image_taller_than_opencv_remaps_is_refused_by_deskew():
    bar = slanted_bars(1, height=REMAP_LIMIT + 10, width=16, slopes=(0.0001,))
    with pytest.raises(ImageTooLarge, match="too large to deskew"):
        deskew(bar)
    with pytest.raises(ImageTooLarge, match="too large to deskew"):
        deskew_ink(bar, ink_boxes(bar))


def test_upright_image_is_left_alone_by_deskew():
    image = np.zeros((20, 20), np.uint8)
    image[2:18, 8:12] = 255
    assert deskew(image[None]).tolist() == image[None].tolist()
    # deskew_ink cuts out the ink box with a pixel of room each side for the interpolation fringe.
    (cut,) = deskew_ink(image[None], np.array([[8, 2, 4, 16]]))
    assert cut.tolist() == [[0, 255, 255, 255, 255, 0]] * 16


def test_shrinking_is_cv2_inter_area_and_enlarging_is_linear():
    rng = np.random.default_rng(3)
    for shape, target in [((28, 28), (20, 20)), ((37, 23), (8, 8)), ((120, 90), (20, 13)), ((9, 9), (8, 8))]:
        image = rng.integers(0, 256, shape).astype(np.uint8)
        theirs = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
        assert np.array_equal(resize(image, *target), theirs), (shape, target)
    image = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    theirs = cv2.resize(image.astype(np.float32), (20, 20), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize(image, 20, 20), np.rint(theirs).astype(np.uint8))


def test_stack_equals_one_at_a_time():
    digits = np.stack([drawn_digit(d, canvas=60, at=(5 + 3 * i, 50), scale=1.5) for i, d in enumerate("0123456789")])
    options = NormalizeOptions(deskew=True, center=True)
    stacks, blank, _ = normalize_stack(digits, (20, 8), options)
    assert not blank.any()
    for i, digit in enumerate(digits):
        single = normalize(digit, (20, 8), options)
        assert np.array_equal(stacks[0][i], single[0]) and np.array_equal(stacks[1][i], single[1])


def test_one_decode_many_sizes():
    digit = drawn_digit("3")
    images = normalize(digit, (28, 20, 8), NormalizeOptions(deskew=True, center=True))
    assert [im.shape for im in images] == [(28, 28), (20, 20), (8, 8)]
    assert all(im.dtype == np.uint8 and im.max() > 200 for im in images)


def test_without_center_the_whole_image_is_resized():
    image = np.zeros((40, 40), np.uint8)
    image[0:20, 0:20] = 255  # top-left quarter stays the top-left quarter
    (out,) = normalize(image, (4,), NormalizeOptions())
    assert out.tolist() == [[255, 255, 0, 0], [255, 255, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_a_digit_at_the_frame_edge_is_placed_inside_it_never_pushed_out():
    image = np.zeros((40, 40), np.uint8)
    image[5:35, 5:9] = 255  # a bar with a heavy blob at its top: its centre of mass sits high
    image[5:12, 5:30] = 255
    out = fit_and_center(image[None].astype(np.float32), ink_boxes(image[None]), 20)[0]
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert rows[0] >= 0 and rows[-1] <= 19 and cols[0] >= 0 and cols[-1] <= 19
    assert out.sum() > 0 and abs(centre_of_mass(out)[1] - 9.5) <= 3


def test_specks_are_cleared_only_in_images_that_have_them():
    clean = np.zeros((30, 30), np.uint8)
    clean[5:25, 12:16] = 200
    specked = clean.copy()
    specked[1, 1] = specked[20, 17] = 255  # one-pixel specks: off the stroke, and beside it
    options = NormalizeOptions(deskew=True, center=True)  # specks would tilt the moments
    (both,), blank, _ = normalize_stack(np.stack([clean, specked]), (20,), options)
    assert not blank.any()
    assert np.array_equal(both[0], both[1])  # the specks left no trace
    assert np.array_equal(both[0], normalize(clean, (20,), options)[0])


def test_plain_bounding_boxes_match_the_speck_free_ones_on_clean_ink():
    stack = np.zeros((3, 30, 40), np.float32)
    stack[0, 5:20, 10:14] = 200
    stack[1, 0:30, 0:40] = 1
    stack[2, 29, 39] = 0.4  # below INK_LEVEL: an empty image gets the whole frame
    from digitprep.normalize import bounding_boxes

    assert bounding_boxes(stack).tolist() == [[10, 5, 4, 15], [0, 0, 40, 30], [0, 0, 40, 30]]
    assert np.array_equal(bounding_boxes(stack[:2]), ink_boxes(stack[:2]))
