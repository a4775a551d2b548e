"""Paper and ink found from the whole image: polarity, the paper's level or local background, and
the ink above it, on small synthetic photos and drawings with exact expected values."""

import cv2
import numpy as np
import pytest
from conftest import drawn_digit

from digitprep.paper import ink_high, paper_and_ink


def photo(coverage, paper, ink, grain=3.0, seed=0):
    """A grey uint8 photo: ``paper`` (a level or an array) where coverage is 0, ``ink`` where it is
    1, mixed in between (anti-aliasing), plus seeded Gaussian grain of sigma ``grain``."""
    rng = np.random.default_rng(seed)
    values = paper + (ink - paper) * coverage + rng.normal(0, grain, coverage.shape)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def digit_coverage(text="5", canvas=80):
    """0..1 ink coverage of a digit drawn anti-aliased (1: fully inked)."""
    return (255 - drawn_digit(text, canvas=canvas, at=(15, 65), scale=2.0, thickness=6)) / 255.0


def rectangle_coverage(shape=(80, 80)):
    """0/1 coverage of an F-like shape made of rectangles (no anti-aliasing)."""
    coverage = np.zeros(shape)
    coverage[15:65, 20:26] = 1
    coverage[15:21, 20:60] = 1
    coverage[38:44, 20:55] = 1
    return coverage


def away_from(coverage, distance=3):
    """Pixels at least ``distance`` px (Euclidean) from any ink."""
    no_ink = (coverage == 0).astype(np.uint8)
    return cv2.distanceTransform(no_ink, cv2.DIST_L2, 5) >= distance


def found(image):
    """paper_and_ink of one image: (ink-high float image, blank, inverted, paper level)."""
    out, blank, findings = paper_and_ink(image[None])
    return out[0], bool(blank[0]), bool(findings.inverted[0]), float(findings.paper[0])


def flagged_inverted(image):
    """ink_high's decision for one image: whether it came back turned round."""
    turned = ink_high(image[None])[0]
    assert np.array_equal(turned, image) or np.array_equal(turned, 255 - image)
    return not np.array_equal(turned, image)


@pytest.mark.parametrize("coverage", [digit_coverage(), rectangle_coverage()], ids=["digit", "rectangles"])
def test_dim_photo_dark_ink_is_found_above_its_paper(coverage):
    image = photo(coverage, 105, 30)
    out, blank, inverted, paper = found(image)
    assert inverted and not blank
    assert abs(paper - (255 - 105)) <= 3
    assert out[coverage == 1].min() > 0  # every fully dark stroke pixel is ink
    assert out[away_from(coverage)].max() == 0  # every paper pixel 3 px from a stroke is paper
    assert out.max() == 255
    assert flagged_inverted(image)


@pytest.mark.parametrize("level", [126, 127, 128, 129])
def test_paper_at_mid_grey_decides_the_same_either_side_of_127(level):
    coverage = rectangle_coverage()
    out, blank, inverted, paper = found(photo(coverage, level, 30))
    assert inverted and not blank
    assert abs(paper - (255 - level)) <= 3
    assert out[coverage == 1].min() > 0 and out[away_from(coverage)].max() == 0 and out.max() == 255


def test_paper_at_127_and_128_give_the_same_ink():
    coverage = rectangle_coverage()
    low, high = found(photo(coverage, 127, 30, seed=5)), found(photo(coverage, 128, 30, seed=5))
    assert low[1:3] == high[1:3] == (False, True)
    assert np.array_equal(low[0] > 0, high[0] > 0)  # the same pixels are ink


def test_light_ink_on_a_dark_grainy_photo_is_not_inverted():
    coverage = digit_coverage("3")
    image = photo(coverage, 60, 200)
    out, blank, inverted, paper = found(image)
    assert not inverted and not blank
    assert abs(paper - 60) <= 3
    assert out[coverage == 1].min() > 0 and out[away_from(coverage)].max() == 0 and out.max() == 255
    assert not flagged_inverted(image)


def ramp_page(grain=3.0):
    """Light falling from 230 (left) to 80 (right), multiplicative: ink is 0.2 of the local paper;
    five slanted strokes spread across the page. Returns (image, coverage)."""
    height, width = 120, 240
    coverage = np.zeros((height, width))
    for x in (20, 70, 120, 170, 215):
        cv2.line(coverage, (x, 20), (x + 8, 100), 1.0, 5)
    light = np.linspace(230, 80, width)[None, :].repeat(height, axis=0)
    return photo(coverage, light, 0.2 * light, grain), coverage


def vignette_page(grain=3.0):
    """Light falling from 230 in the middle to 80 in the corners (radial, quadratic), ink 0.2 of the
    local paper; four strokes and a bar. Returns (image, coverage)."""
    side = 160
    ys, xs = np.mgrid[0:side, 0:side]
    r = np.hypot(ys - (side - 1) / 2, xs - (side - 1) / 2) / np.hypot((side - 1) / 2, (side - 1) / 2)
    light = 230 - 150 * r**2
    coverage = np.zeros((side, side))
    for x in (25, 60, 95, 130):
        cv2.line(coverage, (x, 20), (x + 6, 140), 1.0, 5)
    cv2.line(coverage, (20, 30), (140, 30), 1.0, 5)
    return photo(coverage, light, 0.2 * light, grain), coverage


def bright_and_dark(kind, shape):
    """Masks of the brightly and the dimly lit parts of a ramp (left/right thirds) or a vignette
    (the middle / the outer ring)."""
    if kind == "ramp":
        columns = np.arange(shape[1])[None, :].repeat(shape[0], axis=0)
        return columns < shape[1] // 3, columns >= 2 * shape[1] // 3
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    r = np.hypot(ys - (shape[0] - 1) / 2, xs - (shape[1] - 1) / 2) / np.hypot((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    return r < 0.4, r > 0.75


PAGES = {"ramp": ramp_page, "vignette": vignette_page}


@pytest.mark.parametrize("kind", PAGES)
def test_uneven_light_is_a_local_background_and_strokes_survive_everywhere(kind):
    image, coverage = PAGES[kind]()
    out, blank, inverted, paper = found(image)
    assert inverted and not blank
    assert np.isnan(paper)  # a local background, not one level
    bright, dark = bright_and_dark(kind, image.shape)
    stroke = coverage == 1
    assert (stroke & bright).any() and (stroke & dark).any()
    assert out[stroke & bright].min() > 0 and out[stroke & dark].min() > 0
    assert out.max() == 255
    assert flagged_inverted(image)


@pytest.mark.parametrize("kind", ["ramp", "vignette"])
def test_uneven_light_grainy_paper_comes_out_zero_on_both_sides(kind):
    image, coverage = PAGES[kind]()
    out = found(image)[0]
    bright, dark = bright_and_dark(kind, image.shape)
    paper = away_from(coverage)
    assert out[paper & bright].max() == 0
    assert out[paper & dark].max() == 0


@pytest.mark.parametrize("kind", PAGES)
def test_uneven_light_clean_paper_comes_out_zero_up_to_the_edges(kind):
    image, coverage = PAGES[kind](grain=0.0)
    out = found(image)[0]
    bright, dark = bright_and_dark(kind, image.shape)
    paper = away_from(coverage)
    assert out[paper & bright].max() == 0
    assert out[paper & dark].max() == 0


def test_clean_mnist_like_image_passes_through_exactly():
    image = np.zeros((28, 28), np.uint8)
    image[5:22, 12:16] = 255
    image[5:22, 11] = 3  # anti-aliasing, faint
    image[5:22, 16] = 120
    image[4, 12:16] = 60
    out, blank, inverted, paper = found(image)
    assert np.array_equal(out, image)
    assert not inverted and not blank and paper == 0
    assert not flagged_inverted(image)


def test_paint_program_drawing_is_inverted_with_paper_at_zero():
    image = drawn_digit("4", canvas=60, at=(10, 50), scale=1.5, thickness=4)  # flat 255, black strokes
    out, blank, inverted, paper = found(image)
    assert inverted and not blank and paper == 0
    assert np.array_equal(out, 255 - image)
    assert flagged_inverted(image)


def fat_ring(inner=5.5, outer=8.0, side=16, supersample=8):
    """A white ring on black, anti-aliased (area coverage), centred, touching all four edges."""
    ys, xs = (np.mgrid[0 : side * supersample, 0 : side * supersample] + 0.5) / supersample
    r = np.hypot(ys - side / 2, xs - side / 2)
    inside = (r >= inner) & (r <= outer)
    coverage = inside.reshape(side, supersample, side, supersample).mean(axis=(1, 3))
    return np.rint(coverage * 255).astype(np.uint8)


def test_tight_crop_with_fat_white_strokes_touching_every_edge_is_kept():
    ring = fat_ring()
    assert ring[0].max() == ring[-1].max() == ring[:, 0].max() == ring[:, -1].max() == 255
    assert ring[7:9, 0].min() == ring[0, 7:9].min() == 255  # a fat stroke runs along each edge
    out, blank, inverted, paper = found(ring)
    assert not inverted and not blank and paper == 0
    assert np.array_equal(out, ring)
    assert not flagged_inverted(ring)


def test_dark_ink_covering_a_third_of_the_image_is_still_inverted():
    coverage = np.zeros((60, 60))
    coverage[6:54, 12:20] = coverage[6:54, 40:48] = 1  # an 8 of fat bars
    coverage[6:14, 12:48] = coverage[26:34, 12:48] = coverage[46:54, 12:48] = 1
    assert 0.34 <= coverage.mean() <= 0.36
    image = photo(coverage, 200, 40, seed=1)
    out, blank, inverted, paper = found(image)
    assert inverted and not blank
    assert abs(paper - 55) <= 3
    assert out[coverage == 1].min() > 0 and out[away_from(coverage)].max() == 0 and out.max() == 255
    assert flagged_inverted(image)


@pytest.mark.parametrize("level", [150, 105, 230])
def test_a_blank_grainy_page_is_blank(level):
    page = photo(np.zeros((60, 60)), level, 0)
    assert found(page)[1]


def test_grain_clipped_at_white_is_not_flat_paper():
    """Coarse grain on white paper piles up at 255 (a third of the pixels here), which alone would
    pass for flat paper; the pixels just under 255 show it is grain: the photo path smooths it and
    the paper comes out 0 but for rare specks (the digit's ink is chosen after), the strokes 255,
    and the normalised digit is the clean one's."""
    from digitprep.normalize import normalize
    from digitprep.options import NormalizeOptions

    coverage = rectangle_coverage()
    image = photo(coverage, 250.0, 40.0, grain=25.0)
    assert (image == 255).mean() > 0.25
    out, blank, inverted, paper = found(image)
    assert inverted and not blank and paper > 0  # a measured level, not the flat path's exact 0
    assert (out[away_from(coverage, 4)] > 0).mean() < 0.005
    assert out[coverage == 1].min() > 0 and out.max() == 255
    options = NormalizeOptions(deskew=True, center=True)
    (noisy,) = normalize(image, (20,), options)
    (clean,) = normalize(photo(coverage, 250.0, 40.0, grain=0.0), (20,), options)
    assert np.corrcoef(noisy.ravel(), clean.ravel())[0, 1] > 0.9  # 0.925 when written


def test_a_paper_level_at_an_end_of_the_range_with_anti_aliasing_is_still_flat():
    """MNIST-like: 0 paper with a few anti-aliased pixels just above it takes the cheap path."""
    from digitprep.paper import polarity

    image = np.zeros((28, 28), np.uint8)
    image[5:22, 12:16] = 255
    image[5:22, 11] = 3
    image[5:22, 16] = 6
    flat, inverted = polarity(image[None])
    assert flat.tolist() == [True] and inverted.tolist() == [False]
