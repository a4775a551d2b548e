"""bench/messy.py's generators on a '7' drawn here: each kind decodes, is seeded, and is what it claims."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_messy", REPO / "bench" / "messy.py")
messy = importlib.util.module_from_spec(_spec)  # bench/ is a folder of scripts, not a package
_spec.loader.exec_module(messy)

DETERMINISTIC = {"clean", "dark_on_light"}
ON_PAPER = sorted(set(messy.KINDS) - {"clean", "rgba_alpha", "sixteen_bit"})  # dark ink, 8-bit pixels


def seven() -> np.ndarray:
    """A 28x28 '7' white on black like MNIST: a bar at the top, a stroke down to the lower left."""
    digit = np.zeros((28, 28), np.uint8)
    cv2.line(digit, (8, 7), (20, 7), 255, 2, cv2.LINE_AA)
    cv2.line(digit, (20, 7), (11, 22), 255, 2, cv2.LINE_AA)
    return digit


DIGIT = seven()


def make(kind: str, seed: int = 0, index: int = 0) -> tuple[bytes, str]:
    """The file of ``kind`` for DIGIT, seeded as the benchmark seeds it."""
    return messy.KINDS[kind](DIGIT, np.random.default_rng([seed, list(messy.KINDS).index(kind), index]))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def grey(data: bytes) -> np.ndarray:
    """What a viewer shows, as 8-bit grey (EXIF orientation applied)."""
    return np.asarray(ImageOps.exif_transpose(opened(data)).convert("L")).astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def ink28(page: np.ndarray) -> np.ndarray:
    """A dark-on-light page as ink-high 28x28, to compare with DIGIT."""
    return cv2.resize(255 - page, (28, 28), interpolation=cv2.INTER_AREA)


def test_all_kinds_of_the_brief():
    assert len(messy.KINDS) == 18
    assert list(messy.KINDS)[:: len(messy.KINDS) - 1] == ["clean", "mixed"]


@pytest.mark.parametrize("kind", list(messy.KINDS))
def test_each_kind_decodes_and_depends_only_on_its_seed(kind):
    data, ext = make(kind)
    image = opened(data)
    assert image.format == {"png": "PNG", "jpg": "JPEG"}[ext]
    assert min(image.size) >= 10
    if image.mode == "RGBA":
        pixels = np.asarray(image.getchannel("A"))
    else:  # 16-bit values as they are (Pillow's conversion to L would clip them), the rest as grey
        pixels = np.asarray(image if image.mode.startswith("I") else image.convert("L"))
    assert pixels.astype(np.float64).std() > 5  # something is drawn
    assert make(kind) == (data, ext)
    if kind not in DETERMINISTIC:
        assert make(kind, seed=1)[0] != data
        assert make(kind, index=1)[0] != data


def test_clean_is_the_digit_and_dark_on_light_its_inverse():
    assert np.array_equal(grey(make("clean")[0]), DIGIT)
    page = grey(make("dark_on_light")[0])
    assert np.array_equal(page, 255 - DIGIT)
    assert page[DIGIT == 0].mean() > 250 > 5 > page[DIGIT == 255].mean()


@pytest.mark.parametrize("kind", ON_PAPER)
def test_paper_is_brighter_than_ink(kind):
    for index in range(3):
        page = grey(make(kind, index=index)[0])
        # The darkest 0.2 %: thin strokes are under 1 % of their page.
        assert np.median(page) - np.percentile(page, 0.2) > 40, index


def test_sixteen_bit_uses_part_of_the_16_bit_range():
    data, _ = make("sixteen_bit")
    assert data[24:26] == bytes([16, 0])  # IHDR: bit depth 16, colour type 0 (grey)
    assert opened(data).mode in ("I;16", "I")
    values = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert values.dtype == np.uint16
    assert 256 < values.min() < 700 and 3300 < values.max() < 4096  # 12-bit values, not 0..65535


def test_rgba_alpha_has_one_colour_and_the_ink_in_alpha():
    image = opened(make("rgba_alpha")[0])
    assert image.mode == "RGBA"
    rgba = np.asarray(image)
    assert (rgba[..., :3] == rgba[0, 0, :3]).all()
    alpha = rgba[..., 3]
    assert alpha[0, 0] == 0 and alpha.max() > 200  # transparent paper, opaque strokes
    assert correlation(cv2.resize(alpha, (28, 28), interpolation=cv2.INTER_AREA), DIGIT) > 0.9


def test_exif_rotated_is_stored_turned_and_shown_upright():
    tags = set()
    for index in range(8):
        image = opened(make("exif_rotated", index=index)[0])
        tags.add(image.getexif()[0x0112])
        shown = ink28(grey(make("exif_rotated", index=index)[0]))
        stored = ink28(np.asarray(image.convert("L")).astype(np.float64))
        fits = [correlation(np.rot90(shown, k), DIGIT) for k in range(4)]
        assert int(np.argmax(fits)) == 0 and fits[0] > 0.8, fits
        assert int(np.argmax([correlation(np.rot90(stored, k), DIGIT) for k in range(4)])) in (1, 3)
    assert tags == {6, 8}


def test_palette_is_a_few_colours():
    image = opened(make("palette")[0])
    assert image.mode == "P"
    assert 2 <= len(image.getcolors()) <= 16


def ink_mask(page: np.ndarray) -> np.ndarray:
    return page < (np.median(page) + page.min()) / 2


def test_off_centre_puts_the_ink_away_from_the_middle():
    for index in range(5):
        ink = ink_mask(grey(make("off_centre", index=index)[0]))
        ys, xs = np.nonzero(ink)
        offset = np.abs(np.array([ys.mean(), xs.mean()]) / ink.shape - 0.5)
        assert (offset > 0.08).all(), (index, offset)


def test_tight_crop_has_ink_on_every_edge():
    for index in range(3):
        page = grey(make("tight_crop", index=index)[0])
        ink = page < np.median(page) - 0.3 * (np.median(page) - page.min())  # the stroke's soft edge counts
        assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()


def test_form_lines_on_two_to_four_edges():
    counts = set()
    for index in range(12):
        dark = grey(make("form_lines", index=index)[0]) < 128
        rows, cols = dark.mean(axis=1), dark.mean(axis=0)
        edges = [(rows[:6] > 0.9).any(), (rows[-6:] > 0.9).any(), (cols[:6] > 0.9).any(), (cols[-6:] > 0.9).any()]
        counts.add(sum(edges))
        # Paper between the lines and the digit: no row or column next to the border band is mostly ink.
        assert (rows[6:-6] < 0.9).all() and (cols[6:-6] < 0.9).all()
    assert counts <= {2, 3, 4} and len(counts) > 1


def test_thin_strokes_are_one_pixel_and_fat_strokes_wide():
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))

    def kept_by_erosion(kind: str) -> float:
        ink = ink_mask(grey(make(kind)[0])).astype(np.uint8)
        return cv2.erode(ink, cross).sum() / ink.sum()

    assert min(grey(make("thin_stroke")[0]).shape) >= 224
    assert kept_by_erosion("thin_stroke") < 0.05 < 0.6 < kept_by_erosion("fat_stroke")


def test_uneven_light_and_dim_paper():
    for index in range(4):
        page = grey(make("uneven_light", index=index)[0])
        paper = cv2.dilate(page, np.ones((41, 41)))  # the brightest nearby pixel: paper, not ink
        assert paper.max() - paper.min() > 90, index
        dim = grey(make("dim_paper", index=index)[0])
        assert 95 < np.median(dim) < 115 and dim.min() < 45


def test_mixed_recipes():
    recipes = [messy.mixed_recipe(np.random.default_rng(i)) for i in range(100)]
    assert {len(r) for r in recipes} == {2, 3}
    known = {*messy.SHAPES, *messy.LIGHTS, *messy.PAGES}
    assert all(set(r) <= known and len(set(r) & set(messy.LIGHTS)) <= 1 for r in recipes)
    assert set().union(*recipes) == known
