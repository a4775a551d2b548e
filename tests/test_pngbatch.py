"""The batched PNG decoder: pixel-identical to the general decoder on what it takes, and declines
everything else (so the general decoder decides what a bad file is)."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import drawn_digit, png_bytes

from digitprep.decode import decode_grey
from digitprep.pngbatch import simple_png_scanlines, simple_png_stacks


def decode_simple_pngs(files, max_pixels):
    """Per file its image from the batched decoder's stacks, or None when it leaves the file to
    the general decoder."""
    greys = [None] * len(files)
    for positions, images in simple_png_stacks(files, max_pixels):
        for position, image in zip(positions.tolist(), images):
            greys[position] = image
    return greys


LIMIT = 64_000_000


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def filter_row(row: np.ndarray, prior: np.ndarray, kind: int, bpp: int) -> np.ndarray:
    """PNG filter ``kind`` applied to one row (int arrays), as an encoder would."""
    left = np.concatenate((np.zeros(bpp, np.int64), row[:-bpp]))
    upper_left = np.concatenate((np.zeros(bpp, np.int64), prior[:-bpp]))
    if kind == 0:
        predicted = np.zeros_like(row)
    elif kind == 1:
        predicted = left
    elif kind == 2:
        predicted = prior
    elif kind == 3:
        predicted = (left + prior) // 2
    else:
        p = left + prior - upper_left
        pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - upper_left)
        predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upper_left))
    return (row - predicted) % 256


def raw_png(pixels: np.ndarray, filters: list[int], extra: bytes = b"") -> bytes:
    """An 8-bit grey (H, W) or RGB (H, W, 3) PNG whose row r uses filter ``filters[r]``."""
    height, width = pixels.shape[:2]
    colour, bpp = (2, 3) if pixels.ndim == 3 else (0, 1)
    rows = pixels.reshape(height, -1).astype(np.int64)
    prior = np.zeros(rows.shape[1], np.int64)
    lines = b""
    for row, kind in zip(rows, filters):
        lines += bytes([kind]) + filter_row(row, prior, kind, bpp).astype(np.uint8).tobytes()
        prior = row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    idat = zlib.compress(lines)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def noise():
    return np.random.default_rng(7).integers(0, 256, (9, 11, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", [0, 1, 2])
@pytest.mark.parametrize("colour", ["grey", "rgb"])
def test_none_sub_up_rows_decode_exactly_like_the_general_decoder(noise, kind, colour):
    pixels = noise[:, :, 0] if colour == "grey" else noise
    data = raw_png(pixels, [kind] * len(pixels))
    (grey,) = decode_simple_pngs([data], LIMIT)
    assert grey is not None
    assert np.array_equal(grey, decode_grey(data))
    if colour == "grey":
        assert np.array_equal(grey, pixels)


def test_a_stack_with_mixed_filters_per_row_and_per_image(noise):
    images = [noise[:, :, i] for i in range(3)]
    files = [raw_png(image, [(row + i) % 3 for row in range(len(image))]) for i, image in enumerate(images)]
    files.append(raw_png(noise[:5, :4, 0], [2, 1, 0, 2, 2]))  # another shape in the same batch
    greys = decode_simple_pngs(files, LIMIT)
    for data, grey in zip(files, greys):
        assert np.array_equal(grey, decode_grey(data))
    for image, grey in zip(images, greys):
        assert np.array_equal(grey, image)


def test_random_runs_of_none_sub_and_up_rows_in_one_stack():
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (9, 7), dtype=np.uint8) for _ in range(40)]
    filters = [rng.choice([0, 1, 2], size=9, p=[0.2, 0.3, 0.5]).tolist() for _ in images]
    filters[0] = [2] * 9  # Up all the way down from the zeros above the image
    files = [raw_png(image, rows) for image, rows in zip(images, filters)]
    for data, image, grey in zip(files, images, decode_simple_pngs(files, LIMIT)):
        assert np.array_equal(grey, image) and np.array_equal(grey, decode_grey(data))


@pytest.mark.parametrize("kind", [3, 4])
def test_average_and_paeth_rows_are_left_to_the_general_decoder(noise, kind):
    image = noise[:, :, 0]
    plain = raw_png(image, [0] * len(image))
    averaged = raw_png(image, [0, kind] + [1] * (len(image) - 2))
    assert np.array_equal(decode_grey(averaged), image)  # the test's encoder is right
    greys = decode_simple_pngs([plain, averaged], LIMIT)
    assert np.array_equal(greys[0], image) and greys[1] is None


def test_files_written_by_opencv_and_pillow_decode_identically():
    digit = drawn_digit("3")
    opencv = [cv2.imencode(".png", image)[1].tobytes() for image in (digit, np.dstack([digit] * 3))]
    pillow = [png_bytes(digit, "L"), png_bytes(np.dstack([digit] * 3), "RGB"), png_bytes(digit[:28, :28], "L")]
    greys = decode_simple_pngs(opencv + pillow, LIMIT)
    assert greys[0] is not None and greys[1] is not None  # libpng chose Sub rows: the fast path takes them
    for data, grey in zip(opencv + pillow, greys):
        if grey is not None:  # Pillow chooses Paeth rows on some: the general decoder takes those
            assert np.array_equal(grey, decode_grey(data))
    assert np.array_equal(greys[0], digit)


def test_harmless_chunks_are_skipped_and_pixel_changing_ones_decline(noise):
    image = noise[:, :, 0]
    text = raw_png(image, [0] * 9, extra=chunk(b"tEXt", b"Comment\x00hello"))
    assert np.array_equal(decode_simple_pngs([text], LIMIT)[0], image)
    for kind, body in [(b"tRNS", b"\x00\x00"), (b"gAMA", struct.pack(">I", 45455)), (b"sBIT", b"\x04")]:
        assert simple_png_scanlines(raw_png(image, [0] * 9, extra=chunk(kind, body)), LIMIT) is None, kind


def test_damaged_or_unusual_files_decline(noise):
    image = noise[:, :, 0]
    good = raw_png(image, [0] * 9)
    bad_crc = bytearray(good)
    bad_crc[-20] ^= 0xFF  # inside the IDAT body
    rows = b"".join(b"\x07" + bytes(row) for row in image)  # filter type 7 does not exist
    header = struct.pack(">IIBBBBB", 11, 9, 8, 0, 0, 0, 0)
    bad_filter = good[:8] + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    short_rows = good[:8] + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows[:-1])) + chunk(b"IEND", b"")
    declined = [
        good[:-12],  # no IEND
        good + b"junk",
        bytes(bad_crc),
        short_rows,
        png_bytes(image.astype(np.uint16) * 257),  # 16-bit
        png_bytes(np.dstack([image] * 4), "RGBA"),
        png_bytes(image, "P"),
        png_bytes(image, "L")[:60],
        b"",
        b"not a png at all, but long enough to be looked at.......",
    ]
    for data in declined:
        assert simple_png_scanlines(data, LIMIT) is None
    assert decode_simple_pngs([bad_filter], LIMIT) == [None]
    assert simple_png_scanlines(good, 98) is None  # over the pixel limit: the general decoder refuses it
    assert simple_png_scanlines(good, 99) is not None


def test_image_data_split_over_several_idat_chunks(noise):
    image = noise[:, :, 0]
    whole = raw_png(image, [1] * 9)
    (length,) = struct.unpack(">I", whole[33:37])
    compressed = whole[41 : 41 + length]
    split = whole[:33] + chunk(b"IDAT", compressed[:5]) + chunk(b"IDAT", compressed[5:]) + chunk(b"IEND", b"")
    assert np.array_equal(decode_simple_pngs([split], LIMIT)[0], image)
