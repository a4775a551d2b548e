"""Augmentation: each transform exact on synthetic images, strength 0 is the identity, seeds give
the same bytes whatever the chunking, and CSV / PNG-tree runs keep labels, tags and provenance."""

import dataclasses

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, write_image

import digitprep.augment as augment_module
import digitprep.augment_data as augment_data
from digitprep import keyed_random
from digitprep.augment import (
    AugmentStrengths,
    add_noise,
    affine_matrices,
    augment_stack,
    change_thickness,
    elastic_displacements,
    quantize_maps,
    remap_stack,
    sampling_maps,
    smoothing_matrix,
    warp_stack,
)
from digitprep.cli import main
from digitprep.csvio import read_onehot_csv, write_onehot_csv
from digitprep.dataset import read_dataset

TRANSFORMS = ["rotation", "shift", "scale", "shear", "elastic", "thickness", "noise"]


def digit_stack(n=12, side=28, seed=0):
    """Ink-high digits of different shapes at ``side``x``side``, like MNIST."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        text, at = str(i % 10), (round(side * 1.1), round(side * 3.4))
        drawn = 255 - drawn_digit(text, canvas=side * 4, at=at, scale=side / 8.5, thickness=round(side / 2.5))
        images.append(cv2.resize(drawn, (side, side), interpolation=cv2.INTER_AREA))
    images = np.stack(images)
    return np.roll(images, rng.integers(-1, 2), axis=2)


def keys_for(n, seed=0, copy=1):
    return keyed_random.stream_keys(seed, np.arange(n), copy)


def only(name, value=None):
    """Strengths with one transform at ``value`` (its default, or 0.1 if that is 0, when None) and
    the rest off."""
    default = getattr(AugmentStrengths(), name) or 0.1
    changes = {name: default if value is None else value}
    if name == "elastic":
        changes["elastic_sigma"] = AugmentStrengths().elastic_sigma
    return dataclasses.replace(AugmentStrengths.none(), **changes)


def centre_of_mass(image):
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.astype(np.float64).sum()
    return (image * xs).sum() / mass, (image * ys).sum() / mass


# ---------------------------------------------------------------- strength 0 is the identity


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_changes_images_and_is_the_identity_at_zero(name):
    stack = digit_stack()
    keys = keys_for(len(stack))
    changed = augment_stack(stack, only(name), keys)
    assert changed.dtype == np.uint8 and changed.shape == stack.shape
    assert all(not np.array_equal(a, b) for a, b in zip(changed, stack)), name
    unchanged = augment_stack(stack, only(name, 0.0), keys)
    assert unchanged.tobytes() == stack.tobytes() and unchanged is not stack


def test_all_strengths_zero_is_the_identity_on_any_bytes():
    stack = np.random.default_rng(3).integers(0, 256, (7, 9, 13)).astype(np.uint8)  # not even square
    assert augment_stack(stack, AugmentStrengths.none(), keys_for(7)).tobytes() == stack.tobytes()


def test_zero_parameters_of_each_step_are_exact():
    """The steps themselves, not only the short cuts in augment_stack, are exact at zero."""
    stack = np.random.default_rng(4).integers(0, 256, (5, 20, 20)).astype(np.uint8)
    n = len(stack)
    identity = affine_matrices(np.zeros(n), np.zeros((n, 2)), np.ones(n), np.zeros(n), 20, 20)
    no_field = elastic_displacements(np.random.default_rng(5).uniform(-1, 1, (n, 2, 20, 20)), 0.0, 4.0)
    assert np.array_equal(warp_stack(stack, identity, no_field), stack)
    assert np.array_equal(change_thickness(stack, np.zeros(n)), stack)
    assert np.array_equal(add_noise(stack, np.ones((n, 20, 20)), np.zeros(n)), stack)


# ---------------------------------------------------------------- each transform, exactly


def test_rotation_by_90_degrees_is_rot90():
    bar = np.zeros((1, 28, 28), np.uint8)
    bar[0, 4:22, 12:15] = 255
    bar[0, 4:7, 15:23] = 180  # a flag, so a wrong direction would show
    turned = warp_stack(bar, affine_matrices([90], [[0, 0]], [1], [0], 28, 28))
    assert np.array_equal(turned[0], np.rot90(bar[0]))  # counter-clockwise, as displayed


def test_shift_moves_the_centre_of_mass_by_exact_pixels():
    stack = digit_stack(3)
    moved = warp_stack(stack, affine_matrices(np.zeros(3), [[3, -2], [-1, 1], [0, 2]], np.ones(3), np.zeros(3), 28, 28))
    for before, after, (dx, dy) in zip(stack, moved, [(3, -2), (-1, 1), (0, 2)]):
        assert after.sum() == before.sum()
        x0, y0 = centre_of_mass(before)
        x1, y1 = centre_of_mass(after)
        assert (x1 - x0, y1 - y0) == pytest.approx((dx, dy), abs=1e-9)


def test_scale_and_shear_act_about_the_centre():
    dot = np.zeros((1, 29, 29), np.uint8)
    dot[0, 13:16, 18:21] = 255  # a 3x3 square 5 pixels right of the centre (14, 14)
    doubled = warp_stack(dot, affine_matrices([0], [[0, 0]], [2], [0], 29, 29))
    assert centre_of_mass(doubled[0]) == pytest.approx((24, 14), abs=0.01)
    assert int(doubled[0].sum()) == pytest.approx(4 * int(dot.sum()), rel=0.05)
    half = warp_stack(dot, affine_matrices([0], [[0, 0]], [0.5], [0], 29, 29))
    assert centre_of_mass(half[0]) == pytest.approx((16.5, 14), abs=0.01)
    low = np.zeros((1, 29, 29), np.uint8)
    low[0, 24, 14] = 255  # 10 pixels below the centre
    sheared = warp_stack(low, affine_matrices([0], [[0, 0]], [1], [45], 29, 29))
    assert centre_of_mass(sheared[0]) == pytest.approx((24, 24), abs=0.01)  # x += tan(45) * 10


@pytest.mark.parametrize("name", ["rotation", "shear", "shift"])
def test_rigid_and_shear_transforms_keep_the_ink_mass(name):
    stack = digit_stack(20)
    out = augment_stack(stack, only(name), keys_for(20))
    ratio = out.reshape(20, -1).sum(1) / stack.reshape(20, -1).sum(1)
    assert np.all(np.abs(ratio - 1) < 0.05), ratio


def test_elastic_distortion_has_simards_size_and_keeps_ink_on_average():
    """Uniform noise in [-1, 1) blurred by a normalised Gaussian has standard deviation
    sqrt(1/3 / (4 pi sigma^2)): alpha 34, sigma 4 displaces pixels by 1.38 on average (RMS)."""
    noise = keyed_random.symmetric(keys_for(50), 1, 2 * 64 * 64).reshape(50, 2, 64, 64)
    field = elastic_displacements(noise, 34.0, 4.0)[:, :, 16:-16, 16:-16]  # away from the mirrored edges
    assert np.sqrt((field**2).mean()) == pytest.approx(34 * np.sqrt(1 / 3 / (4 * np.pi * 16)), rel=0.05)
    stack = digit_stack(40)
    out = augment_stack(stack, only("elastic"), keys_for(40))
    ratio = out.reshape(40, -1).sum(1) / stack.reshape(40, -1).sum(1)
    # a smooth field stretches some parts and squeezes others: each digit changes, the mean stays
    assert abs(ratio.mean() - 1) < 0.05 and np.all(np.abs(ratio - 1) < 0.4), ratio


def test_thicker_adds_ink_and_thinner_removes_it_continuously():
    stack = digit_stack(10)
    ink = (stack > 127).reshape(10, -1).sum(1)
    thicker = change_thickness(stack, np.full(10, 1.0))
    thinner = change_thickness(stack, np.full(10, -1.0))
    assert np.all((thicker > 127).reshape(10, -1).sum(1) > ink)
    assert np.all((thinner > 127).reshape(10, -1).sum(1) < ink)
    half = change_thickness(stack, np.full(10, 0.5)).astype(int)
    assert np.all(half >= stack) and np.all(half <= thicker)
    assert np.abs(half - (stack.astype(int) + thicker) / 2).max() <= 0.5
    one_pixel = np.zeros((1, 7, 7), np.uint8)
    one_pixel[0, 3, 3] = 200
    plus = np.zeros((7, 7), np.uint8)
    plus[2:5, 3] = plus[3, 2:5] = 200  # a 3x3 cross: one pixel more on every side
    assert np.array_equal(change_thickness(one_pixel, [1.0])[0], plus)
    assert np.array_equal(change_thickness(plus[None], [-1.0])[0], one_pixel[0])


def test_noise_has_the_asked_spread():
    grey = np.full((2, 64, 64), 128, np.uint8)
    noise = keyed_random.normal(keys_for(2), 9, 64 * 64).reshape(2, 64, 64)
    noisy = add_noise(grey, noise, np.array([0.05, 0.1]))
    spread = (noisy.astype(float) - 128).reshape(2, -1).std(1)
    assert spread == pytest.approx([0.05 * 255, 0.1 * 255], rel=0.05)


def test_smoothing_matrix_is_opencvs_gaussian_blur():
    values = np.random.default_rng(6).uniform(-1, 1, (23, 5))
    matrix = smoothing_matrix(23, 2.5)
    kernel = 2 * int(np.ceil(4 * 2.5)) + 1
    expected = cv2.GaussianBlur(values, (1, kernel), sigmaX=0.1, sigmaY=2.5, borderType=cv2.BORDER_REFLECT_101)
    assert np.allclose(matrix @ values, expected, atol=1e-9)
    assert np.allclose(matrix.sum(axis=1), 1)
    assert np.allclose(smoothing_matrix(3, 4.0).sum(axis=1), 1)  # a kernel wider than the image


def test_one_remap_over_the_mosaic_equals_a_remap_per_image(monkeypatch):
    monkeypatch.setattr(augment_module, "REMAP_LIMIT", 100)  # 3 images per cv2.remap call
    rng = np.random.default_rng(7)
    stack = rng.integers(0, 256, (8, 28, 28)).astype(np.uint8)
    matrices = affine_matrices(rng.uniform(-40, 40, 8), rng.uniform(-6, 6, (8, 2)), rng.uniform(0.7, 1.4, 8),
                               rng.uniform(-20, 20, 8), 28, 28)  # fmt: skip
    maps = quantize_maps(sampling_maps(augment_module.invert_affine(matrices), None, 28, 28))
    mosaic = remap_stack(stack, maps)
    for image, image_map, result in zip(stack, maps, mosaic):
        alone = cv2.remap(image, image_map[0], image_map[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        assert np.array_equal(alone, result)


# ---------------------------------------------------------------- seeds and keys


def test_a_copy_depends_only_on_its_key(monkeypatch):
    monkeypatch.setattr(augment_module, "REMAP_LIMIT", 200)  # several remap batches of 6 images
    stack = digit_stack(30)
    keys = keys_for(30, seed=11)
    strengths = AugmentStrengths(noise=0.1)
    whole = augment_stack(stack, strengths, keys)
    for start, stop in ((10, 17), (0, 1), (29, 30), (3, 28)):  # other batches, other places in them
        part = augment_stack(stack[start:stop], strengths, keys[start:stop])
        assert part.tobytes() == whole[start:stop].tobytes()
    again = augment_stack(stack, strengths, keys_for(30, seed=11))
    assert again.tobytes() == whole.tobytes()
    other_seed = augment_stack(stack, strengths, keys_for(30, seed=12))
    other_copy = augment_stack(stack, strengths, keys_for(30, seed=11, copy=2))
    assert all(not np.array_equal(a, b) for a, b in zip(whole, other_seed))
    assert all(not np.array_equal(a, b) for a, b in zip(whole, other_copy))


def test_keyed_random_values_are_uniform_and_normal():
    keys = keys_for(2000, seed=5)
    u = keyed_random.uniform(keys, 1, 50)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert np.histogram(u, 10, (0, 1))[0] == pytest.approx(np.full(10, 10000), rel=0.05)
    z = keyed_random.normal(keys, 2, 50)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert np.array_equal(keyed_random.uniform(keys[5:9], 1, 50), u[5:9])
    assert abs(np.corrcoef(u[:, 0], keyed_random.uniform(keys, 3, 1)[:, 0])[0, 1]) < 0.05


# ---------------------------------------------------------------- CSV in, CSV out


def write_digits_csv(path, n=20, side=20):
    stack = digit_stack(n, side)
    labels = np.arange(n) % 10
    write_onehot_csv(path, stack.reshape(n, -1), labels, tuple(range(10)))
    return stack.reshape(n, -1), labels


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_csv_keeps_originals_labels_and_provenance(tmp_path):
    pixels, labels = write_digits_csv(tmp_path / "d.csv")
    result = run("augment", tmp_path / "d.csv", "--out", tmp_path / "a.csv", "--copies", 3, "--seed", 4)
    assert result.exit_code == 0, result.output
    assert "wrote 80 rows" in result.stderr
    out = read_dataset(tmp_path / "a.csv")
    assert out.pixels.shape == (80, 400)
    assert np.array_equal(out.labels, np.repeat(labels, 4))
    assert np.array_equal(out.pixels[::4], pixels)  # each original, then its three copies
    assert out.manifest_header == ["path", "label", "source_row", "copy"]
    assert out.manifest_rows[:5] == [
        ["d.csv:1", "0", "0", "0"],
        ["d.csv:1", "0", "0", "1"],
        ["d.csv:1", "0", "0", "2"],
        ["d.csv:1", "0", "0", "3"],
        ["d.csv:2", "1", "1", "0"],
    ]
    copies = out.pixels.reshape(20, 4, 400)[:, 1:]
    assert all(not np.array_equal(copies[i, k], pixels[i]) for i in range(20) for k in range(3))
    steps = out.record["steps"]
    assert steps[-1]["augment"]["copies"] == 3 and steps[-1]["augment"]["seed"] == 4


def test_csv_same_seed_same_bytes_other_seed_other_bytes_and_zero_strength(tmp_path):
    pixels, _ = write_digits_csv(tmp_path / "d.csv")
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run("augment", tmp_path / "d.csv", "--out", tmp_path / f"{name}.csv", "--seed", seed).exit_code == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.manifest.csv").read_bytes() == (tmp_path / "b.manifest.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    zeros = [arg for name in TRANSFORMS for arg in (f"--{name}", 0)]
    result = run("augment", tmp_path / "d.csv", "--out", tmp_path / "z.csv", "--no-keep-originals", *zeros)
    assert result.exit_code == 0, result.output
    assert np.array_equal(read_onehot_csv(tmp_path / "z.csv")[0], pixels)


def test_csv_one_worker_and_two_workers_give_the_same_bytes(tmp_path, monkeypatch):
    write_digits_csv(tmp_path / "d.csv", n=30)
    monkeypatch.setattr(augment_data, "CHUNK_OUTPUTS", 14)  # 7 images and their 2 copies: five chunks
    monkeypatch.setattr(augment_data, "POOL_THRESHOLD", 1)  # a pool even for this little
    for jobs in (1, 2):
        result = run("augment", tmp_path / "d.csv", "--out", tmp_path / f"j{jobs}.csv", "--copies", 2, "--jobs", jobs)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "j1.csv").read_bytes() == (tmp_path / "j2.csv").read_bytes()
    assert (tmp_path / "j1.manifest.csv").read_bytes() == (tmp_path / "j2.manifest.csv").read_bytes()


def test_csv_bad_inputs_are_one_line_errors(tmp_path):
    write_onehot_csv(tmp_path / "odd.csv", np.zeros((2, 12), np.uint8), np.array([1, 2]), tuple(range(10)))
    result = run("augment", tmp_path / "odd.csv", "--out", tmp_path / "o.csv")
    assert result.exit_code == 1 and "odd.csv: 12 pixels per row is not a square image" in result.output
    write_digits_csv(tmp_path / "d.csv", n=3)
    (tmp_path / "d.manifest.csv").write_text("path,label\nx,0\n")
    result = run("augment", tmp_path / "d.csv", "--out", tmp_path / "o.csv")
    assert result.exit_code == 1 and "d.manifest.csv: 1 rows, but" in result.output
    result = run("augment", tmp_path / "d.csv", "--out-dir", tmp_path / "o")
    assert result.exit_code == 2 and "--out" in result.output
    assert not (tmp_path / "o.csv").exists() and "Traceback" not in result.output


# ---------------------------------------------------------------- PNG tree in, PNG tree out


def test_tree_copies_keep_label_tag_layout_and_polarity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "src" / "names" / "3_20_7.png", drawn_digit("3"))  # dark ink on white
    write_image(
        tmp_path / "src" / "names" / "5_8_1.png", drawn_digit("5", canvas=60, at=(10, 45), scale=1.2, thickness=3)
    )
    write_image(tmp_path / "src" / "7" / "x.png", drawn_digit("7", ink=255, paper=0))  # light ink on black
    (tmp_path / "src" / "7" / "broken.png").write_bytes(b"not a png")
    result = run("augment", "src", "--out-dir", "out", "--copies", 2, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "skipped src/7/broken.png: not an image" in result.stderr
    found = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert found == [
        "7/x.png", "7/x_a1.png", "7/x_a2.png",
        "names/3_20_7.png", "names/3_20_7_a1.png", "names/3_20_7_a2.png",
        "names/5_8_1.png", "names/5_8_1_a1.png", "names/5_8_1_a2.png",
    ]  # fmt: skip
    assert (tmp_path / "out/names/3_20_7.png").read_bytes() == (tmp_path / "src/names/3_20_7.png").read_bytes()
    copy = cv2.imread(str(tmp_path / "out/names/3_20_7_a1.png"), cv2.IMREAD_UNCHANGED)
    assert copy.shape == (120, 120) and copy[0, 0] == 255 and copy.min() < 64  # still dark on white
    light = cv2.imread(str(tmp_path / "out/7/x_a2.png"), cv2.IMREAD_UNCHANGED)
    assert light[0, 0] == 0 and light.max() > 192  # still light on black
    assert run("build", "out/names", "--labels", "filename", "--out", "n.csv").exit_code == 0
    names = read_dataset(tmp_path / "n.csv")
    assert names.labels.tolist() == [3, 3, 3, 5, 5, 5]
    assert names.column("tag") == ["20", "20", "20", "8", "8", "8"]
    assert run("build", "out", "--labels", "folder", "--out", "f.csv").exit_code == 0
    assert read_dataset(tmp_path / "f.csv").labels.tolist() == [7, 7, 7]
    monkeypatch.setattr(augment_data, "CHUNK_FILES", 2)  # two tasks
    monkeypatch.setattr(augment_data, "PIXEL_BUDGET", 3 * 120 * 120)  # one image's copies at a time
    monkeypatch.setattr(augment_data, "POOL_THRESHOLD", 1)  # on two workers
    again = run("augment", "src", "--out-dir", "again", "--copies", 2, "--seed", 3, "--jobs", 2)
    assert again.exit_code == 0, again.output
    assert sorted(p.relative_to(tmp_path / "again").as_posix() for p in (tmp_path / "again").rglob("*.png")) == found
    for path in (tmp_path / "out").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(tmp_path / "out")).read_bytes()


def test_tree_refuses_to_write_inside_its_source(tmp_path):
    write_image(tmp_path / "src" / "1" / "a.png", drawn_digit("1"))
    result = run("augment", tmp_path / "src", "--out-dir", tmp_path / "src" / "aug")
    assert result.exit_code == 1 and "must not be inside" in result.output
