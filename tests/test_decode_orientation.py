"""Decoding: EXIF orientation puts phone photos upright; 16-bit grey is scaled by the bits it uses."""

import io

import numpy as np
import pytest
from conftest import png_bytes
from PIL import Image, ImageOps

from digitprep.decode import decode_image


def upright_page():
    """60 tall, 40 wide, white, a dark bar across the top third and a dark block at the bottom left:
    any turn or mirror moves one of them."""
    page = np.full((60, 40), 255, np.uint8)
    page[4:18, 4:36] = 0
    page[48:56, 4:12] = 0
    return page


# Stored pixels for each EXIF orientation, as a phone writes them: ImageOps.exif_transpose turns them back.
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def turned_jpeg(orientation):
    upright = upright_page()
    stored = Image.fromarray(upright).transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue(), upright


@pytest.mark.parametrize("orientation", [6, 8])
def test_the_jpegs_are_built_the_way_viewers_turn_them(orientation):
    data, upright = turned_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (60, 40)  # stored sideways: 60 wide, 40 tall
        shown = np.asarray(ImageOps.exif_transpose(stored).convert("L"))
    assert shown.shape == upright.shape
    assert np.abs(shown.astype(int) - upright).max() <= 16


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_decodes_upright(orientation):
    data, upright = turned_jpeg(orientation)
    grey, found = decode_image(data)
    assert found == orientation
    assert grey.shape == (60, 40) and grey.dtype == np.uint8
    assert np.abs(grey.astype(int) - upright).max() <= 16  # JPEG's loss only
    assert grey[6:16, 6:34].max() < 40  # the bar at the top
    assert grey[50:54, 6:10].max() < 40  # the block at the bottom left
    assert grey[50:54, 28:36].min() > 215  # and nothing at the bottom right


def test_a_png_without_exif_reports_orientation_1():
    page = upright_page()
    grey, found = decode_image(png_bytes(page))
    assert found == 1
    assert np.array_equal(grey, page)


def test_a_jpeg_without_exif_reports_orientation_1():
    buffer = io.BytesIO()
    Image.fromarray(upright_page()).save(buffer, "JPEG", quality=95)
    grey, found = decode_image(buffer.getvalue())
    assert found == 1 and grey.shape == (60, 40)


def test_12_bit_data_in_16_bits_is_scaled_by_4095():
    values = np.linspace(400, 3700, 48).round().astype(np.uint16).reshape(6, 8)
    values[0, 0], values[-1, -1] = 400, 3700
    grey, _ = decode_image(png_bytes(values))
    expected = np.rint(values.astype(np.float64) * 255 / 4095).astype(np.uint8)
    assert np.array_equal(grey, expected)
    assert (grey.min(), grey.max()) == (25, 230)


def test_8_bit_values_stored_in_16_bits_stay_as_they_are():
    values = np.linspace(30, 230, 48).round().astype(np.uint16).reshape(6, 8)
    grey, _ = decode_image(png_bytes(values))
    assert np.array_equal(grey, values.astype(np.uint8))


def test_full_range_16_bit_decodes_exactly():
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    grey, _ = decode_image(png_bytes(levels * 257))
    assert np.array_equal(grey, levels.astype(np.uint8))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # pytest resets the module-level filter per test
def test_a_corrupt_exif_block_leaves_the_image_readable_and_upright(tmp_path):
    """The pixels are good: the file decodes as stored, orientation 1, and a build prints nothing
    about it (Pillow's warning would be a second line for the file)."""
    import subprocess
    import sys

    buffer = io.BytesIO()
    image = Image.fromarray(np.full((40, 30), 230, np.uint8))
    image.paste(20, (10, 8, 20, 32))  # a dark bar: a digit of sorts
    image.save(buffer, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7fjunk")
    grey, orientation = decode_image(buffer.getvalue())
    assert orientation == 1 and grey.shape == (40, 30) and abs(int(grey[20, 15]) - 20) <= 4
    (tmp_path / "src" / "1").mkdir(parents=True)
    (tmp_path / "src" / "1" / "a.jpg").write_bytes(buffer.getvalue())
    options = ["--labels", "folder", "--sizes", "8", "--classes", "1"]
    command = [sys.executable, "-m", "digitprep", "build", "src", *options]
    done = subprocess.run([*command, "--out", "x.csv"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.splitlines() == [
        "Found 1 image in 1 class",
        "warning: class 1 has a single image: too few to train and test on (a split keeps each on one side)",
        "wrote 1 rows to x.csv",
    ]
