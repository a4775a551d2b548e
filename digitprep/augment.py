"""Augmentation: seeded random variations of digit images, as pure functions on stacks.

Every function maps (n, H, W) uint8 ink-high stacks (MNIST's ink 255 on 0) to new ones. Rotation,
shift, scale and shear make one affine matrix per image; Simard et al. (2003) elastic distortion adds
a Gaussian-smoothed random displacement field; both are applied in one ``cv2.remap``. Strokes change
by grey-level dilation or erosion, noise is additive Gaussian. Strength 0 changes no byte. Each copy
draws from its own ``np.random.default_rng([seed, image, copy])``, so its bytes depend on nothing
else: not on the rest of the stack, nor on how the work is split. Lengths (shift, elastic, thickness)
are pixels at 28x28, scaled with the image's side so the look is the same at 8x8 or 28x28.
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
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def affine_matrices(
    angles: np.ndarray, shifts: np.ndarray, scales: np.ndarray, shears: np.ndarray, height: int, width: int
) -> np.ndarray:
    """(n, 2, 3) forward matrices (output = A @ [x, y, 1]) about each image's centre: shear, then
    scale, then rotate by ``angles`` degrees counter-clockwise, then move by ``shifts`` (n, 2) x, y."""
    theta = np.deg2rad(np.asarray(angles, np.float64))
    cos, sin = np.cos(theta), np.sin(theta)
    rotate = np.stack((np.stack((cos, sin), -1), np.stack((-sin, cos), -1)), -2)  # y points down
    shear = np.eye(2) + np.tan(np.deg2rad(np.asarray(shears, np.float64)))[:, None, None] * [[0, 1], [0, 0]]
    linear = rotate @ shear * np.asarray(scales, np.float64)[:, None, None]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre + np.asarray(shifts, np.float64) - linear @ centre
    return np.concatenate((linear, offset[:, :, None]), axis=2)


def smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) float64 S: S @ v blurs v by a normalised Gaussian of ``sigma`` pixels, edges
    mirrored (OpenCV's BORDER_REFLECT_101), so a blur of a whole stack is two matmuls."""
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


def warp_stack(stack: np.ndarray, matrices: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: forward affine ``matrices`` (n, 2, 3), then optional
    displacement fields (n, 2, H, W), in one bilinear remap per image (outside = 0)."""
    n, height, width = stack.shape
    if max(height, width) >= REMAP_LIMIT:
        raise ValueError(f"image too large to augment ({width}x{height}; the limit is {REMAP_LIMIT - 1} a side)")
    inverse = np.linalg.inv(matrices[:, :, :2])  # remap wants where each output pixel samples the input
    b = np.concatenate((inverse, -(inverse @ matrices[:, :, 2:])), axis=2).astype(np.float32)[..., None, None]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = xs[None], ys[None]
    if displacement is not None:
        x, y = x + displacement[:, 0], y + displacement[:, 1]
    maps = b[:, :, 0] * x[:, None]  # (n, 2, H, W) source x, y, built in place
    maps += b[:, :, 1] * y[:, None]
    maps += b[:, :, 2]
    out = np.empty_like(stack)
    for i in range(n):
        out[i] = cv2.remap(stack[i], maps[i, 0], maps[i, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def change_thickness(stack: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: strokes grown (amount > 0) or thinned (< 0) by ``|amounts[i]|``
    pixels per side, with a 3x3 cross (outside is background)."""
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
        # the fraction blends with the next step, so the change is continuous in the amount
        out[i] = np.rint(lower + np.float32(fraction) * (upper.astype(np.float32) - lower))
    return out


def add_noise(stack: np.ndarray, noise: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W) uint8: ``levels`` (n,) * 255 times the standard normal ``noise``
    (n, H, W) float32 added, rounded and clipped."""
    scaled = noise * (np.asarray(levels, np.float64) * 255).astype(np.float32)[:, None, None]
    return np.clip(np.rint(stack + scaled), 0, 255).astype(np.uint8)


def copy_keys(seed: int, image_ids: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """(n, 3) uint64 keys (seed, image id, copy), one per copy; ``image_ids`` (n,) int64 may be
    negative (two's complement keeps distinct ids distinct), ``copies`` broadcasts."""
    ids = np.atleast_1d(np.asarray(image_ids, np.int64)).view(np.uint64)
    numbers = np.broadcast_to(np.asarray(copies, np.int64), ids.shape).astype(np.uint64)
    return np.stack((np.full(ids.shape, seed & KEY_MASK, np.uint64), ids, numbers), axis=1)


def draw_randoms(keys: np.ndarray, strengths: AugmentStrengths, height: int, width: int) -> tuple:
    """Per copy, from ``np.random.default_rng(key)``: (n, AMOUNTS) float64 amounts in [-1, 1), then an
    (n, 2, H, W) float32 field in [-1, 1) and (n, H, W) float32 standard normal noise (None when off)."""
    n = len(keys)
    amounts = np.empty((n, AMOUNTS))
    field = np.empty((n, 2, height, width), np.float32) if strengths.elastic else None
    noise = np.empty((n, height, width), np.float32) if strengths.noise else None
    for i, key in enumerate(keys.tolist()):
        generator = np.random.default_rng(key)
        amounts[i] = generator.uniform(-1, 1, AMOUNTS)
        if field is not None:
            generator.random(dtype=np.float32, out=field[i])
        if noise is not None:
            generator.standard_normal(dtype=np.float32, out=noise[i])
    if field is not None:  # 2u - 1, as uniform(-1, 1) computes, which has no float32
        field *= 2
        field -= 1
    return amounts, field, noise


def augment_stack(stack: np.ndarray, strengths: AugmentStrengths, keys: np.ndarray) -> np.ndarray:
    """One augmented copy of each image of ``stack`` (n, H, W) uint8 -> (n, H, W) uint8, drawn from
    ``np.random.default_rng(keys[i])`` (keys (n, 3), see copy_keys) and depending on nothing else."""
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
