"""Augmentation: random, seeded variations of digit images, as pure functions on stacks.

Every function takes a stack ``(n, H, W)`` of uint8 ink-high images (MNIST's convention: ink 255
on a 0 background) and returns a new one. Rotation, shift, scale and shear make one affine matrix
per image; Simard et al. (2003) elastic distortion adds a Gaussian-smoothed random displacement
field; both become one sampling map per image, and all the maps are applied by a single
``cv2.remap`` over a mosaic of the stack. Stroke thickness is grey-level dilation or erosion,
noise is additive Gaussian. Each transform's strength 0 leaves the images unchanged, byte for byte.

Strengths that are lengths (shift, elastic, thickness) are given in pixels at MNIST's 28x28 and
scaled with the image's side, so the same options give the same look at 8x8, 20x20 or 28x28.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitprep import keyed_random
from digitprep.options import AugmentStrengths  # defined without NumPy: the command line reads its fields

REFERENCE_SIDE = 28  # strengths measured in pixels refer to this side
REMAP_LIMIT = 32767  # cv2.remap refuses images with a side of SHRT_MAX or more
REMAP_STEPS = 32  # cv2.remap resolves coordinates to 1/32 pixel (INTER_BITS = 5)

# Sub-stream of each random quantity (keyed_random purposes): fixed, so adding a transform later
# never changes what an existing seed produces for the others.
_ROTATION, _SHIFT, _SCALE, _SHEAR, _ELASTIC, _THICKNESS, _NOISE_LEVEL, _NOISE = range(1, 9)


# ---------------------------------------------------------------- geometry: matrices and maps


def affine_matrices(
    angles: np.ndarray, shifts: np.ndarray, scales: np.ndarray, shears: np.ndarray, height: int, width: int
) -> np.ndarray:
    """(n, 2, 3) forward matrices (output = A @ [x, y, 1]) about each image's centre: shear, then
    scale, then rotate by ``angles`` degrees counter-clockwise, then move by ``shifts`` (n, 2) x, y."""
    theta = np.deg2rad(np.asarray(angles, np.float64))
    cos, sin = np.cos(theta), np.sin(theta)
    rotate = np.stack((np.stack((cos, sin), -1), np.stack((-sin, cos), -1)), -2)  # y points down
    shear = np.zeros_like(rotate)
    shear[:, 0, 0] = shear[:, 1, 1] = 1
    shear[:, 0, 1] = np.tan(np.deg2rad(np.asarray(shears, np.float64)))
    linear = rotate @ shear * np.asarray(scales, np.float64)[:, None, None]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre + np.asarray(shifts, np.float64) - linear @ centre
    return np.concatenate((linear, offset[:, :, None]), axis=2)


def invert_affine(matrices: np.ndarray) -> np.ndarray:
    """(n, 2, 3) inverses of forward affine matrices: where each output pixel samples the input."""
    inverse = np.linalg.inv(matrices[:, :, :2])
    return np.concatenate((inverse, -(inverse @ matrices[:, :, 2:])), axis=2)


def smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) float64 S such that S @ v is v blurred by a normalised Gaussian of ``sigma``
    pixels, edges mirrored (OpenCV's BORDER_REFLECT_101): a blur of a whole stack is two matmuls."""
    if size == 1:
        return np.ones((1, 1))
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    period = 2 * (size - 1)
    source = np.mod(np.arange(size)[:, None] + offsets[None, :], period)
    source = np.where(source >= size, period - source, source)
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.repeat(np.arange(size), len(offsets)), source.ravel()), np.tile(weights, size))
    return matrix


def elastic_displacements(noise: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """(n, 2, H, W) float32 displacement fields (dx, dy) in pixels: ``noise`` uniform in [-1, 1)
    smoothed by a Gaussian of ``sigma`` pixels and scaled by ``alpha`` (Simard et al. 2003)."""
    _, _, height, width = noise.shape
    rows = (alpha * smoothing_matrix(height, sigma)).astype(np.float32)
    cols = smoothing_matrix(width, sigma).T.astype(np.float32)
    return rows @ noise.astype(np.float32, copy=False) @ cols


def sampling_maps(inverse: np.ndarray, displacement: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """(n, 2, H, W) float32 source coordinates (x, y) of every output pixel: the output is the
    affine-warped image, then displaced by ``displacement`` (None: no elastic part)."""
    n = len(inverse)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = xs[None], ys[None]
    if displacement is not None:
        x, y = x + displacement[:, 0], y + displacement[:, 1]
    b = inverse.astype(np.float32)[:, :, :, None, None]
    maps = np.empty((n, 2, height, width), np.float32)
    for axis in (0, 1):
        np.multiply(b[:, axis, 0], x, out=maps[:, axis])
        maps[:, axis] += b[:, axis, 1] * y
        maps[:, axis] += b[:, axis, 2]
    return maps


def quantize_maps(maps: np.ndarray) -> np.ndarray:
    """Coordinates rounded (in place) to the 1/32 pixel cv2.remap resolves anyway. Such values stay
    exact when an image's mosaic offset is added, so a copy comes out the same bytes wherever it
    sits in whichever batch."""
    maps *= REMAP_STEPS
    np.rint(maps, out=maps)
    maps /= REMAP_STEPS
    return maps


def remap_stack(stack: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Sample every image at its own (n, 2, H, W) map (see quantize_maps), bilinear, outside = 0.

    The images are laid one under the other, each framed by one row/column of zeros, and every map
    is clipped to its own frame, so one cv2.remap call serves a whole batch of images and no image
    can ever sample its neighbour."""
    n, height, width = stack.shape
    if width + 2 >= REMAP_LIMIT or height + 2 >= REMAP_LIMIT:
        raise ValueError(f"image too large to augment ({width}x{height}; the limit is {REMAP_LIMIT - 3} a side)")
    per_batch = max(1, (REMAP_LIMIT - 1) // (height + 2))
    out = np.empty_like(stack)
    for start in range(0, n, per_batch):
        batch = stack[start : start + per_batch]
        count = len(batch)
        mosaic = np.zeros((count, height + 2, width + 2), np.uint8)
        mosaic[:, 1:-1, 1:-1] = batch
        map_x = np.clip(maps[start : start + count, 0], -1, width) + 1
        map_y = np.clip(maps[start : start + count, 1], -1, height) + 1
        map_y += (np.arange(count, dtype=np.float32) * (height + 2))[:, None, None]
        warped = cv2.remap(
            mosaic.reshape(count * (height + 2), width + 2),
            map_x.reshape(count * height, width),
            map_y.reshape(count * height, width),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        out[start : start + count] = warped.reshape(count, height, width)
    return out


def warp_stack(stack: np.ndarray, matrices: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """Apply forward affine ``matrices`` (n, 2, 3), then optional displacement fields, in one remap."""
    _, height, width = stack.shape
    return remap_stack(stack, quantize_maps(sampling_maps(invert_affine(matrices), displacement, height, width)))


# ---------------------------------------------------------------- strokes and noise


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _cross_extreme(stack: np.ndarray, grow: bool) -> np.ndarray:
    """Max (dilate) or min (erode) over each pixel and its 4 neighbours; outside the image is
    background (0), since there is no ink beyond the frame. One OpenCV call for the whole stack,
    the images laid one under the other with a row of zeros between them."""
    n, height, width = stack.shape
    tall = np.zeros((n, height + 1, width), stack.dtype)
    tall[:, :height] = stack
    operation = cv2.dilate if grow else cv2.erode
    done = operation(tall.reshape(n * (height + 1), width), _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return done.reshape(n, height + 1, width)[:, :height]


def change_thickness(stack: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Grow (amount > 0) or thin (< 0) the strokes of each image by ``|amount|`` pixels per side:
    whole pixels by repeated grey-level dilation/erosion with a 3x3 cross, the fraction by blending
    with the next step, so the change is continuous in the amount."""
    amounts = np.asarray(amounts, np.float64)
    out = stack.copy()
    for grow in (True, False):
        chosen = np.flatnonzero(amounts > 0 if grow else amounts < 0)
        if not len(chosen):
            continue
        size = np.abs(amounts[chosen])
        whole = np.floor(size).astype(np.int64)
        level = stack[chosen].astype(np.float32)
        lower, upper = np.empty_like(level), np.empty_like(level)
        for step in range(int(whole.max()) + 1):
            following = _cross_extreme(level, grow)
            here = whole == step
            lower[here], upper[here] = level[here], following[here]
            level = following
        fraction = (size - whole).astype(np.float32)[:, None, None]
        out[chosen] = np.rint(lower + fraction * (upper - lower)).astype(np.uint8)
    return out


def add_noise(stack: np.ndarray, noise: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Add ``levels`` (n,) * 255 times the standard normal ``noise`` (n, H, W), rounded and clipped."""
    scaled = noise * (np.asarray(levels, np.float64) * 255).astype(np.float32)[:, None, None]
    return np.clip(np.rint(stack + scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- random copies


def augment_stack(stack: np.ndarray, strengths: AugmentStrengths, keys: np.ndarray) -> np.ndarray:
    """One augmented copy of each image, its amounts drawn from its own random stream ``keys[i]``
    (keyed_random.stream_keys): the result for an image does not depend on the rest of the stack."""
    stack = np.asarray(stack, np.uint8)
    n, height, width = stack.shape
    keys = np.asarray(keys, np.uint64)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} random keys for {n} images")
    s = strengths
    if n == 0:
        return stack.copy()
    pixel = np.sqrt(height * width) / REFERENCE_SIDE  # one pixel at 28x28, in this image's pixels
    out = stack
    if s.rotation or s.shift or s.scale or s.shear or s.elastic:
        matrices = affine_matrices(
            s.rotation * keyed_random.symmetric(keys, _ROTATION)[:, 0],
            s.shift * pixel * keyed_random.symmetric(keys, _SHIFT, 2),
            (1 + s.scale) ** keyed_random.symmetric(keys, _SCALE)[:, 0],
            s.shear * keyed_random.symmetric(keys, _SHEAR)[:, 0],
            height,
            width,
        )
        displacement = None
        if s.elastic:
            field = keyed_random.symmetric(keys, _ELASTIC, 2 * height * width, np.float32).reshape(n, 2, height, width)
            displacement = elastic_displacements(field, s.elastic * pixel**2, s.elastic_sigma * pixel)
        out = warp_stack(out, matrices, displacement)
    if s.thickness:
        out = change_thickness(out, s.thickness * pixel * keyed_random.symmetric(keys, _THICKNESS)[:, 0])
    if s.noise:
        noise = keyed_random.normal(keys, _NOISE, height * width, np.float32).reshape(n, height, width)
        out = add_noise(out, noise, s.noise * keyed_random.uniform(keys, _NOISE_LEVEL, 1)[:, 0])
    return out if out is not stack else stack.copy()
