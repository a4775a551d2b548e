"""A fast path for the common PNG: 8-bit grey or RGB, not interlaced, rows filtered with None,
Sub or Up. Many such files of one shape are unfiltered together with a few NumPy calls per row
instead of one libpng call per file, which is most of the decoding cost for small images (MNIST).

Only well-formed files take this path: every chunk's CRC is checked, the image data must inflate to
exactly the expected length, and any chunk that could change the pixels OpenCV returns (palette,
transparency, gamma, colour profiles...) sends the file back to the general decoder, which also
decides what is wrong with a bad file. The result is pixel-identical to ``decode.decode_grey``.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, RGB = 0, 2  # PNG colour types taken here; the channel count of each
CHANNELS = {GREY: 1, RGB: 3}
# Chunks that carry no pixel information for OpenCV's decoder: text, time, physical size.
HARMLESS_CHUNKS = frozenset((b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs"))
FILTER_NONE, FILTER_SUB, FILTER_UP = 0, 1, 2
IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # length 0, type, CRC: the same in every PNG

# The signature and the IHDR chunk's length and type: the same 16 bytes opening every PNG.
PNG_HEAD = PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR"
# IHDR's last five bytes (bit depth, colour type, compression, filter and interlace methods) of
# the files taken here, and their channel counts: 8-bit grey or RGB, deflate, adaptive, plain.
SIMPLE_FORMS = {bytes((8, GREY, 0, 0, 0)): CHANNELS[GREY], bytes((8, RGB, 0, 0, 0)): CHANNELS[RGB]}
_IHDR = struct.Struct(">II5sI")  # width, height, the five bytes above, CRC
_CHUNK_HEAD = struct.Struct(">I4s")
_CRC = struct.Struct(">I")


class Scanlines(NamedTuple):
    """A simple PNG's inflated image data: ``height`` rows of one filter byte then the pixels."""

    height: int
    width: int
    channels: int
    data: bytes


def simple_png_scanlines(data: bytes, max_pixels: int) -> Scanlines | None:
    """The inflated rows of a PNG this module can decode, or None to use the general decoder."""
    # Few Python steps per file: this runs for every file of data sets of tens of thousands.
    if len(data) < 57 or not data.startswith(PNG_HEAD):  # signature, IHDR, an IDAT, IEND
        return None
    width, height, form, crc = _IHDR.unpack_from(data, 16)
    channels = SIMPLE_FORMS.get(form)
    if channels is None or not 0 < width * height <= max_pixels or zlib.crc32(data[12:29]) != crc:
        return None
    (length,) = _CRC.unpack_from(data, 33)
    body_end = 41 + length
    if data[37:41] == b"IDAT" and body_end + 16 == len(data) and data.endswith(IEND_CHUNK):
        # The usual file, one IDAT then IEND as the last twelve bytes: no chunks to walk.
        if zlib.crc32(data[37:body_end]) != _CRC.unpack_from(data, body_end)[0]:
            return None
        compressed = data[41:body_end]
    else:
        compressed = _image_data(data)
        if compressed is None:
            return None
    expected = height * (1 + width * channels)
    inflater = zlib.decompressobj()
    try:
        rows = inflater.decompress(compressed, expected + 1)
    except zlib.error:
        return None
    if len(rows) != expected or not inflater.eof or inflater.unused_data:
        return None
    return tuple.__new__(Scanlines, (height, width, channels, rows))  # without NamedTuple's __new__: per file


def _image_data(data: bytes) -> bytes | None:
    """The compressed image data of a PNG whose IHDR checked out, from its IDAT chunks, or None
    when a chunk after IHDR is damaged or not one this module can ignore."""
    idat: list[bytes] = []
    position, end = 33, len(data)
    while True:
        if position + 12 > end:
            return None
        length, kind = _CHUNK_HEAD.unpack_from(data, position)
        body_end = position + 8 + length
        if body_end + 4 > end or zlib.crc32(data[position + 4 : body_end]) != _CRC.unpack_from(data, body_end)[0]:
            return None
        if kind == b"IDAT":
            idat.append(data[position + 8 : body_end])
        elif kind == b"IEND":
            break
        elif kind not in HARMLESS_CHUNKS:
            return None
        position = body_end + 4
    if body_end + 4 != end:
        return None
    return b"".join(idat)


def unfilter(filtered: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, 1 + W*C) filtered rows of same-shaped images -> ((n, H, W*C) pixels, (n,) mask of the
    images decoded). Images using the Average or Paeth filters are left out of the mask: their
    predictors run pixel by pixel, which the general decoder does far faster.

    A handful of NumPy calls for the whole stack, however many rows: Sub rows are running sums
    along the row (of whole pixels), and a run of Up rows is a running sum down the columns,
    starting from the last row above it that is not Up (or from zeros above the image). All sums
    wrap at 256, as PNG's do."""
    types = filtered[:, :, 0]
    pixels = filtered[:, :, 1:]
    decodable = (types <= FILTER_UP).all(axis=1)
    if not types.any():
        return pixels, decodable
    pixels = pixels.copy()
    height, row_bytes = pixels.shape[1:]
    sub = types == FILTER_SUB
    if sub.any():
        by_pixel = pixels[sub].reshape(-1, row_bytes // channels, channels)
        pixels[sub] = np.cumsum(by_pixel, axis=1, dtype=np.uint8).reshape(-1, row_bytes)
    up = types == FILTER_UP
    if up.any():
        # Rows added up from the top: an Up row is its start row's value plus the Up rows since.
        running = np.cumsum(np.where(up[..., None], pixels, 0), axis=1, dtype=np.uint8)
        start = np.maximum.accumulate(np.where(up, -1, np.arange(height)), axis=1)  # -1: zeros above
        at_start = np.clip(start, 0, None)[..., None]
        base = np.take_along_axis(pixels, at_start, axis=1) - np.take_along_axis(running, at_start, axis=1)
        base[start < 0] = 0
        pixels = np.where(up[..., None], base + running, pixels)
    return pixels, decodable


def simple_png_stacks(files: list[bytes], max_pixels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The files this module decodes, as stacks of same-shaped grey images (identical to
    ``decode_grey``): (positions in ``files``, (k, H, W) uint8). Every other file is left out."""
    groups: dict[tuple[int, int, int], list[tuple[int, bytes]]] = {}
    for position, data in enumerate(files):
        found = simple_png_scanlines(data, max_pixels)
        if found is not None:
            groups.setdefault(found[:3], []).append((position, found.data))
    stacks = []
    for (height, width, channels), members in groups.items():
        filtered = np.frombuffer(b"".join(rows for _, rows in members), np.uint8)
        pixels, decodable = unfilter(filtered.reshape(len(members), height, 1 + width * channels), channels)
        if channels == CHANNELS[RGB]:
            # The same integer conversion decode_grey applies to OpenCV's BGR order.
            pixels = cv2.cvtColor(pixels.reshape(-1, width, 3), cv2.COLOR_RGB2GRAY)
        images = pixels.reshape(len(members), height, width)
        positions = np.array([position for position, _ in members])
        if not decodable.all():
            positions, images = positions[decodable], images[decodable]
        stacks.append((positions, images))
    return stacks
