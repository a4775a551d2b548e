"""Decoding by content: every flavour lands as the same grey image; bad bytes give a reason."""

import io

import numpy as np
import pytest
from conftest import png_bytes, png_of_zeros
from PIL import Image

from digitprep.decode import UnusableImage, decode_grey, sniff_format

GREY = np.array([[0, 64, 128], [192, 255, 10]], np.uint8)


def test_8bit_grey_is_exact():
    assert np.array_equal(decode_grey(png_bytes(GREY, "L")), GREY)


def test_16bit_grey_scales_to_8bit_exactly():
    wide = GREY.astype(np.uint16) * 257
    assert np.array_equal(decode_grey(png_bytes(wide)), GREY)


def test_rgb_gives_the_grey_values():
    rgb = np.dstack([GREY] * 3)
    assert np.array_equal(decode_grey(png_bytes(rgb, "RGB")), GREY)


def test_palette_png_gives_the_palette_colours():
    indices = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    palette = Image.fromarray(indices, "P")
    palette.putpalette([v for g in GREY.ravel() for v in (g, g, g)])
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    assert np.array_equal(decode_grey(buffer.getvalue()), GREY)


def test_rgba_transparent_background_is_composited_on_white():
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 0] = 100
    alpha = np.array([[255, 0, 0], [0, 128, 0]], np.uint8)
    rgba = np.dstack([colour, alpha])
    grey = decode_grey(png_bytes(rgba, "RGBA"))
    # 100 opaque; black at half alpha -> round(255 * 127/255) = 127; transparent -> white
    assert grey.tolist() == [[100, 255, 255], [255, 127, 255]]


def test_ink_only_in_alpha_survives_even_when_colour_is_white():
    alpha = np.zeros((5, 5), np.uint8)
    alpha[1:4, 2] = 255
    white = np.full((5, 5, 3), 255, np.uint8)
    grey = decode_grey(png_bytes(np.dstack([white, alpha]), "RGBA"))
    expected = np.full((5, 5), 255, np.uint8)
    expected[1:4, 2] = 0  # dark ink on white paper, as a composite of black ink would be
    assert np.array_equal(grey, expected)


def test_grey_alpha_png():
    la = np.dstack([np.zeros((4, 4), np.uint8), np.eye(4, dtype=np.uint8) * 255])
    grey = decode_grey(png_bytes(la, "LA"))
    assert np.array_equal(grey, 255 - np.eye(4, dtype=np.uint8) * 255)


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "TIFF"])
def test_other_formats_named_png_are_sniffed(fmt):
    data = png_bytes(np.full((8, 8), 200, np.uint8), "L", fmt=fmt)
    assert sniff_format(data) == {"JPEG": "jpeg", "BMP": "bmp", "TIFF": "tiff"}[fmt]
    grey = decode_grey(data)
    assert grey.shape == (8, 8) and abs(int(grey.mean()) - 200) <= 2


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am text", "not an image"),
        (png_bytes(GREY, "L")[:40], "truncated"),
    ],
)
def test_bad_bytes_name_the_reason(data, reason):
    with pytest.raises(UnusableImage, match=reason):
        decode_grey(data)


def test_bomb_header_is_refused_before_decoding():
    data = png_of_zeros(60000, 60000, rows=1)  # IHDR claims 60000x60000
    with pytest.raises(UnusableImage, match="60000x60000 pixels exceeds the limit of 64000000"):
        decode_grey(data, max_pixels=64_000_000)


def test_decoded_bytes_are_guarded_as_well_as_pixels():
    # 8000x8000 16-bit RGBA: 64 M pixels pass the pixel limit, but decode to 488 MB before any
    # step makes them grey. A few hundred kilobytes on disk.
    data = png_of_zeros(8000, 8000, bit_depth=16, colour_type=6)
    with pytest.raises(
        UnusableImage, match=r"8000x8000 x 4 channels x 2 bytes = 488 MB decoded: over the limit of 256 MB"
    ):
        decode_grey(data)
    assert decode_grey(png_of_zeros(300, 200, bit_depth=16, colour_type=6)).shape == (200, 300)  # small: decoded
