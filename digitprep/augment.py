"""Augmentation: random, seeded variations of digit images, as pure functions on stacks.

Every function takes a stack ``(n, H, W)`` of uint8 ink-high images (MNIST's convention: ink 255
on a 0 background) and returns a new one. Rotation, shift, scale and shear make one affine matrix
per image; Simard et al. (2003) elastic distortion adds a Gaussian-smoothed random displacement
field; both become one sampling map per image, applied by ``cv2.remap``. Stroke thickness is
grey-level dilation or erosion, noise is additive Gaussian. Each transform's strength 0 leaves the
images unchanged, byte for byte. Every copy draws its random numbers from its own
``np.random.default_rng([seed, image, copy])``, so its bytes depend on nothing else: not on the
other images of the stack, nor on how the work is split.

Strengths that are lengths (shift, elastic, thickness) are given in pixels at MNIST's 28x28 and
scaled with the image's side, so the same options give the same look at 8x8, 20x20 or 28x28.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitprep.options import AugmentStrengths  # defined without NumPy: the command line reads its fields

REFERENCE_SIDE = 28  # strengths measured in pixels refer to this side
REMAP_LIMIT = 32767  # cv2.remap refuses images with a side of SHRT_MAX or more
KEY_MASK = (1 << 64) - 1  # SeedSequence takes non-negative numbers: keys are taken modulo 2**64

# The amounts every copy draws first, uniform in [-1, 1), in this order; whatever transforms are
# on, so turning one off never changes the amounts of the others.
_ROTATION, _SHIFT_X, _SHIFT_Y, _SCALE, _SHEAR, _THICKNESS, _NOISE_LEVEL = range(7)
AMOUNTS = 7


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


def remap_stack(stack: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: every image sampled at its own (n, 2, H, W) float32 map
    of source coordinates, bilinear, outside = 0."""
    n, height, width = stack.shape
    if max(height, width) >= REMAP_LIMIT:
        raise ValueError(f"image too large to augment ({width}x{height}; the limit is {REMAP_LIMIT - 1} a side)")
    out = np.empty_like(stack)
    for i in range(n):
        out[i] = cv2.remap(stack[i], maps[i, 0], maps[i, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def warp_stack(stack: np.ndarray, matrices: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: forward affine ``matrices`` (n, 2, 3), then optional
    displacement fields (n, 2, H, W), applied in one remap."""
    _, height, width = stack.shape
    return remap_stack(stack, sampling_maps(invert_affine(matrices), displacement, height, width))


# ---------------------------------------------------------------- strokes and noise


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def change_thickness(stack: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: grow (amount > 0) or thin (< 0) the strokes of each image
    by ``|amounts[i]|`` pixels per side: whole pixels by repeated grey-level dilation/erosion with a
    3x3 cross (outside the image is background), the fraction by blending with the next step, so
    the change is continuous in the amount."""
    out = np.asarray(stack, np.uint8).copy()
    for i, amount in enumerate(np.asarray(amounts, np.float64).tolist()):
        if amount == 0:
            continue
        operation = cv2.dilate if amount > 0 else cv2.erode
        whole, fraction = divmod(abs(amount), 1)
        lower = out[i]
        for _ in range(int(whole)):
            lower = operation(lower, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        upper = operation(lower, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        out[i] = np.rint(lower + np.float32(fraction) * (upper.astype(np.float32) - lower))
    return out


def add_noise(stack: np.ndarray, noise: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: ``levels`` (n,) * 255 times the standard normal ``noise``
    (n, H, W) float32 added, rounded and clipped."""
    scaled = noise * (np.asarray(levels, np.float64) * 255).astype(np.float32)[:, None, None]
    return np.clip(np.rint(stack + scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- random copies


def copy_keys(seed: int, image_ids: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """(n, 3) uint64 keys (seed, image id, copy), one per augmented copy; ``image_ids`` (n,) int64
    may be negative (two's complement, so distinct ids stay distinct), ``copies`` broadcasts."""
    ids = np.atleast_1d(np.asarray(image_ids, np.int64)).view(np.uint64)
    numbers = np.broadcast_to(np.asarray(copies, np.int64), ids.shape).astype(np.uint64)
    return np.stack((np.full(ids.shape, seed & KEY_MASK, np.uint64), ids, numbers), axis=1)


def draw_randoms(keys: np.ndarray, strengths: AugmentStrengths, height: int, width: int) -> tuple:
    """Each copy's random numbers from its own ``np.random.default_rng(key)``: (n, AMOUNTS) float64
    amounts in [-1, 1), then (when elastic is on) an (n, 2, H, W) float32 field in [-1, 1), then
    (when noise is on) (n, H, W) float32 standard normal noise; None for a part that is off."""
    n = len(keys)
    amounts = np.empty((n, AMOUNTS))
    field = np.empty((n, 2, height, width), np.float32) if strengths.elastic else None
    noise = np.empty((n, height, width), np.float32) if strengths.noise else None
    for i, key in enumerate(keys.tolist()):
        generator = np.random.default_rng(key)
        generator.random(out=amounts[i])  # 2u - 1 below: the numbers generator.uniform(-1, 1) gives
        if field is not None:
            generator.random(dtype=np.float32, out=field[i])
        if noise is not None:
            generator.standard_normal(dtype=np.float32, out=noise[i])
    for uniform in (amounts, field):
        if uniform is not None:
            uniform *= 2
            uniform -= 1
    return amounts, field, noise


def augment_stack(stack: np.ndarray, strengths: AugmentStrengths, keys: np.ndarray) -> np.ndarray:
    """One augmented copy of each image of ``stack`` (n, H, W) uint8 -> (n, H, W) uint8, its amounts
    drawn from its own generator ``np.random.default_rng(keys[i])`` (keys (n, 3), see copy_keys):
    the result for an image depends on its key alone, not on the rest of the stack."""
    stack = np.asarray(stack, np.uint8)
    n, height, width = stack.shape
    keys = np.asarray(keys, np.uint64)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} random keys for {n} images")
    s = strengths
    if n == 0:
        return stack.copy()
    pixel = np.sqrt(height * width) / REFERENCE_SIDE  # one pixel at 28x28, in this image's pixels
    amounts, field, noise = draw_randoms(keys, s, height, width)
    out = stack
    if s.rotation or s.shift or s.scale or s.shear or s.elastic:
        matrices = affine_matrices(
            s.rotation * amounts[:, _ROTATION],
            s.shift * pixel * amounts[:, [_SHIFT_X, _SHIFT_Y]],
            (1 + s.scale) ** amounts[:, _SCALE],
            s.shear * amounts[:, _SHEAR],
            height,
            width,
        )
        displacement = None
        if field is not None:
            displacement = elastic_displacements(field, s.elastic * pixel**2, s.elastic_sigma * pixel)
        out = warp_stack(out, matrices, displacement)
    if s.thickness:
        out = change_thickness(out, s.thickness * pixel * amounts[:, _THICKNESS])
    if noise is not None:
        out = add_noise(out, noise, s.noise * (amounts[:, _NOISE_LEVEL] + 1) / 2)
    return out if out is not stack else stack.copy()
