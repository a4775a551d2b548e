"""Image bytes, whatever the format, -> a 2-D grey uint8 array (polarity decided later).

The size guard comes first: the header is read with Pillow and an image whose pixels or decoded
bytes (pixels x channels x bytes per sample) pass the limits is refused before anything is
decoded. Pixels come from ``cv2.imdecode``, or from Pillow for the flavours OpenCV refuses and for
images whose EXIF orientation says they are stored turned (``ImageOps.exif_transpose`` puts them
upright, as every image viewer shows them).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

from digitprep.options import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

# libpng/OpenCV warnings about broken files would add a second stderr line per bad file;
# the caller reports each one itself, once.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
Image.MAX_IMAGE_PIXELS = None  # the guard here decides, with the user's --max-pixels
# Pillow warns of a corrupt EXIF block as it opens a JPEG: the pixels are still good (orientation 1),
# and a warning line per file would break the one-line-per-file report.
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"P5", "pnm"),
    (b"P6", "pnm"),
)


class UnusableImage(Exception):
    """The bytes cannot become a digit image; the message is the reason shown to the user."""


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's leading bytes, or None when it is not an image."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_size(data: bytes, fmt: str, max_pixels: int, max_bytes: int) -> int:
    """Refuse an image whose header declares no pixels, more than ``max_pixels`` pixels or more
    than ``max_bytes`` decoded bytes; nothing is decoded. Returns the EXIF orientation (1-8; 1:
    stored upright, also when there is no tag). Raises UnusableImage."""
    try:
        # The PNG reader straight away: Image.open would first try its registry of formats.
        opened = PngImagePlugin.PngImageFile(io.BytesIO(data)) if fmt == "png" else Image.open(io.BytesIO(data))
        with opened as image:
            (width, height), bands, raw = image.size, len(image.getbands()), str(image.tile[0][3] if image.tile else "")
            orientation = exif_orientation(image, fmt)
    except Exception:
        raise UnusableImage(f"truncated or corrupt {fmt.upper()} header") from None
    sample = 2 if ";16" in f"{image.mode};{raw}" else 4 if image.mode in ("I", "F") else 1
    if width == 0 or height == 0:
        raise UnusableImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise UnusableImage(f"refused: {width}x{height} pixels exceeds the limit of {max_pixels} (decompression bomb?)")
    size = width * height * bands * sample
    if size > max_bytes:
        raise UnusableImage(
            f"refused: {width}x{height} x {bands} channels x {sample} bytes = {size >> 20} MB decoded: "
            f"over the limit of {max_bytes >> 20} MB"
        )
    return orientation if orientation in range(1, 9) else 1


def exif_orientation(image: Image.Image, fmt: str) -> int:
    """The EXIF orientation tag of an opened image (1: upright, also when there is none, or when
    its EXIF block cannot be read: the pixels are still good)."""
    if "exif" not in image.info and fmt != "tiff":  # a PNG's getexif() would decode the whole image
        return 1
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1


def decode_native(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[np.ndarray, int]:
    """Decode to OpenCV's native layout (grey, BGR or BGRA; uint8 or uint16), upright, checking
    size first; and the EXIF orientation that was applied (1: none)."""
    if not data:
        raise UnusableImage("empty file")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnusableImage("not an image (unknown file signature)")
    orientation = check_size(data, fmt, max_pixels, max_bytes)
    native = None if orientation != 1 else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if native is None:
        native = _decode_with_pillow(data, fmt)
    if native.dtype not in (np.uint8, np.uint16):
        native = _to_uint8_range(native)
    return native, orientation


def _decode_with_pillow(data: bytes, fmt: str) -> np.ndarray:
    """For files OpenCV rejects (unusual GIF/WEBP/TIFF flavours) and those stored turned (EXIF
    orientation), put upright; truncation is an error."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            im = ImageOps.exif_transpose(opened)
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                return cv2.cvtColor(np.asarray(im.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.uint16)
            return np.asarray(im.convert("L"))
    except Exception:
        raise UnusableImage(f"truncated or corrupt {fmt.upper()} data") from None


def _to_uint8_range(native: np.ndarray) -> np.ndarray:
    """Float or 32-bit images (some TIFFs) scaled linearly onto 0-255."""
    values = native.astype(np.float64)
    low, high = np.nanmin(values), np.nanmax(values)
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


def to_grey(native: np.ndarray) -> np.ndarray:
    """Grey uint8 from any native layout: 16-bit scaled by the bits it uses, alpha composited on white.

    A 16-bit image is scaled by the range its brightest value reaches: 8-bit values stored as 16
    bits stay as they are, 12-bit camera data is scaled by 255 / 4095, full 16-bit data by 1 / 257.

    When the colour channels carry nothing and the ink lives only in the alpha channel (a
    transparent canvas drawn on with a single colour), the alpha channel itself is the ink.
    """
    if native.dtype == np.uint16:
        full = (1 << max(8, int(native.max()).bit_length())) - 1
        native = ((native.astype(np.uint32) * 255 + full // 2) // full).astype(np.uint8)
    if native.ndim == 2:
        return native
    channels = native.shape[2]
    if channels == 1:
        return native[:, :, 0]
    if channels == 3:
        return cv2.cvtColor(native, cv2.COLOR_BGR2GRAY)
    colour = cv2.cvtColor(native[:, :, :3], cv2.COLOR_BGR2GRAY)
    alpha = native[:, :, 3]
    if alpha.min() == 255:
        return colour
    visible = alpha > 0
    if not visible.any() or np.ptp(colour[visible]) == 0:
        # One colour wherever anything is visible: the drawing is the alpha mask itself.
        # Returned as dark ink on white paper, like the composite of black ink would be.
        return (255 - alpha).astype(np.uint8)
    # Composite on white: grey = colour * a + 255 * (1 - a), in integers with rounding.
    a = alpha.astype(np.uint32)
    composite = (colour.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return composite.astype(np.uint8)


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[np.ndarray, int]:
    """Bytes of any supported image -> (2-D grey uint8 upright, polarity not yet decided; the EXIF
    orientation applied, 1 for none). Raises UnusableImage with the reason (empty, not an image,
    corrupt, over the size limits)."""
    native, orientation = decode_native(data, max_pixels, max_bytes)
    return to_grey(native), orientation


def decode_grey(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """``decode_image`` without the orientation: 2-D grey uint8, upright."""
    return decode_image(data, max_pixels, max_bytes)[0]
