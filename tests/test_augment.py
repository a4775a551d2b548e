"""Augmentation: each transform exact on synthetic images, strength 0 is the identity, seeds give
the same bytes whatever the chunking and --jobs, CSV / PNG-tree runs keep labels, tags and
provenance, and a failed or stopped run leaves the old outputs and no temporaries."""

import dataclasses
import errno
import os
import pathlib
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, gone_within, terminated_once, write_image

import digitprep.augment_data as augment_data
from digitprep.augment import (
    AugmentStrengths,
    add_noise,
    affine_matrices,
    augment_stack,
    change_thickness,
    copy_keys,
    elastic_displacements,
    smoothing_matrix,
    warp_stack,
)
from digitprep.cli import main
from digitprep.csvio import read_dataset, read_onehot_csv, write_onehot_csv

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
    return copy_keys(seed, np.arange(n), copy)


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
    same = [i for i, (a, b) in enumerate(zip(changed, stack)) if np.array_equal(a, b)]
    assert len(same) <= 1, (name, same)  # an amount drawn near 0 changes nothing (thickness: image 3, 0.001 px)
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
    noise = np.random.default_rng(1).uniform(-1, 1, (50, 2, 64, 64))
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
    noise = np.random.default_rng(9).standard_normal((2, 64, 64), np.float32)
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


# ---------------------------------------------------------------- seeds and keys


def test_a_copy_depends_only_on_its_key():
    stack = digit_stack(30)
    keys = keys_for(30, seed=11)
    strengths = AugmentStrengths(noise=0.1)
    whole = augment_stack(stack, strengths, keys)
    for start, stop in ((10, 17), (0, 1), (29, 30), (3, 28)):  # other stacks, other places in them
        part = augment_stack(stack[start:stop], strengths, keys[start:stop])
        assert part.tobytes() == whole[start:stop].tobytes()
    again = augment_stack(stack, strengths, keys_for(30, seed=11))
    assert again.tobytes() == whole.tobytes()
    other_seed = augment_stack(stack, strengths, keys_for(30, seed=12))
    other_copy = augment_stack(stack, strengths, keys_for(30, seed=11, copy=2))
    assert all(not np.array_equal(a, b) for a, b in zip(whole, other_seed))
    assert all(not np.array_equal(a, b) for a, b in zip(whole, other_copy))


def test_each_copy_draws_from_numpys_generator_keyed_by_seed_image_and_copy():
    """The documented stream: seven amounts uniform in [-1, 1) first (rotation the first), from
    np.random.default_rng([seed, image, copy]); negative image ids are taken modulo 2**64."""
    stack = digit_stack(3)
    keys = copy_keys(3, [7, -1, 2**40], [2, 1, 5])
    assert keys.dtype == np.uint64
    assert keys.tolist() == [[3, 7, 2], [3, 2**64 - 1, 1], [3, 2**40, 5]]
    assert copy_keys(-2, [0], 1).tolist() == [[2**64 - 2, 0, 1]]
    turned = augment_stack(stack, only("rotation", 10.0), keys)
    for image, result, key in zip(stack, turned, keys.tolist()):
        angle = 10.0 * np.random.default_rng(key).uniform(-1, 1, 7)[0]
        expected = warp_stack(image[None], affine_matrices([angle], [[0, 0]], [1], [0], 28, 28))[0]
        assert np.array_equal(result, expected)
    other = augment_stack(stack[1:2], only("rotation", 10.0), copy_keys(3, [1], 1))
    assert not np.array_equal(other[0], turned[1])  # id -1 is not id 1


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
    flags = [f"--{name}" if name != "scale" else "--zoom" for name in TRANSFORMS]  # field scale's flag: --zoom
    zeros = [arg for flag in flags for arg in (flag, 0)]
    result = run("augment", tmp_path / "d.csv", "--out", tmp_path / "z.csv", "--no-keep-originals", *zeros)
    assert result.exit_code == 0, result.output
    assert np.array_equal(read_onehot_csv(tmp_path / "z.csv")[0], pixels)


def test_csv_one_worker_and_two_workers_give_the_same_bytes(tmp_path, monkeypatch):
    write_digits_csv(tmp_path / "d.csv", n=30)
    monkeypatch.setattr(augment_data, "CHUNK_OUTPUTS", 14)  # 7 images and their 2 copies: five tasks
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
    assert temporaries(tmp_path) == []


def test_tree_refuses_to_write_inside_its_source(tmp_path):
    write_image(tmp_path / "src" / "1" / "a.png", drawn_digit("1"))
    result = run("augment", tmp_path / "src", "--out-dir", tmp_path / "src" / "aug")
    assert result.exit_code == 1 and "must not be inside" in result.output


def test_tree_written_again_replaces_its_folders_and_keeps_other_entries(tmp_path):
    write_image(tmp_path / "src" / "1" / "a.png", drawn_digit("1"))
    (tmp_path / "out" / "1").mkdir(parents=True)
    (tmp_path / "out" / "1" / "stale.png").write_bytes(b"old copy")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = run("augment", tmp_path / "src", "--out-dir", tmp_path / "out", "--copies", 1)
    assert result.exit_code == 0, result.output
    assert contents(tmp_path / "out").keys() == {"1/a.png", "1/a_a1.png", "notes.txt"}
    assert temporaries(tmp_path) == []


# ---------------------------------------------------------------- jobs, chunks and stopping


def contents(folder):
    """Every file under ``folder``: relative path -> bytes."""
    folder = pathlib.Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder):
    """Temporary files or staging folders of the atomic writer anywhere under ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in pathlib.Path(folder).rglob(".*.tmp"))


def test_csv_of_10000_rows_on_two_workers_finishes_with_the_bytes_of_one(tmp_path):
    """The old pool hung from 8192 rows of 20x20 with --copies 2 --jobs 2."""
    stack = digit_stack(10, 20)
    pixels = np.tile(stack.reshape(10, -1), (1000, 1))
    write_onehot_csv(tmp_path / "t.csv", pixels, np.arange(10000) % 10, tuple(range(10)))
    for jobs in (1, 2):
        result = run("augment", tmp_path / "t.csv", "--out", tmp_path / f"a{jobs}.csv", "--copies", 2, "--jobs", jobs)
        assert result.exit_code == 0, result.output
        assert "wrote 30000 rows" in result.stderr
    for name in ("{}.csv", "{}.manifest.csv", "{}.build.json"):
        assert (tmp_path / name.format("a1")).read_bytes() == (tmp_path / name.format("a2")).read_bytes()
    out = read_onehot_csv(tmp_path / "a2.csv")[0].reshape(10000, 3, 400)
    assert np.array_equal(out[:, 0], pixels)
    assert not np.array_equal(out[:10, 1], out[10:20, 1])  # same pictures, other rows: other copies
    assert temporaries(tmp_path) == []


def test_a_copy_is_the_same_alone_or_among_2000_rows():
    pixels = np.tile(digit_stack(10, 20).reshape(10, -1), (201, 1))  # 2010 rows
    labels = np.arange(len(pixels)) % 10
    manifest = [[f"d.csv:{i + 1}", str(label)] for i, label in enumerate(labels.tolist())]
    job = augment_data.AugmentJob(AugmentStrengths(noise=0.1), copies=3, seed=8)
    lines, manifest_lines, count = augment_data.augment_rows((0, pixels, labels, manifest, job))
    assert count == 4 * 2010
    everything = lines.splitlines()
    for row in (0, 1234, 2009):
        alone, alone_manifest, _ = augment_data.augment_rows(
            (row, pixels[row : row + 1], labels[row : row + 1], manifest[row : row + 1], job)
        )
        assert alone.splitlines() == everything[4 * row : 4 * row + 4]
        assert alone_manifest.splitlines() == manifest_lines.splitlines()[4 * row : 4 * row + 4]
    assert everything[4 * 1234 + 1] != everything[4 * 1244 + 1]  # same picture, another row


def write_tree(root, n, sizes=(28, 40)):
    """``n`` digit PNGs in label folders, of two sizes, some dark on light."""
    for i in range(n):
        side = sizes[i % len(sizes)]
        image = cv2.resize(digit_stack(1, 28, seed=i)[0], (side, side), interpolation=cv2.INTER_AREA)
        write_image(root / str(i % 10) / f"img{i}.png", 255 - image if i % 3 else image)


def test_tree_one_worker_and_two_workers_give_the_same_files(tmp_path, monkeypatch):
    write_tree(tmp_path / "src", 24)
    monkeypatch.setattr(augment_data, "CHUNK_FILES", 5)  # five tasks
    args = ["--copies", 3, "--seed", 5, "--noise", 0.05]
    two = run("augment", tmp_path / "src", "--out-dir", tmp_path / "two", *args, "--jobs", 2)
    assert two.exit_code == 0, two.output
    assert "wrote 96 PNGs" in two.stderr
    monkeypatch.setattr(augment_data, "PIXEL_BUDGET", 3 * 40 * 40)  # here: one image's copies at a time
    one = run("augment", tmp_path / "src", "--out-dir", tmp_path / "one", *args, "--jobs", 1)
    assert one.exit_code == 0, one.output
    files = contents(tmp_path / "one")
    assert len(files) == 96 and "3/img3_a3.png" in files and "3/img13.png" in files
    assert files == contents(tmp_path / "two")
    assert temporaries(tmp_path) == []


def test_sigterm_stops_a_tree_augment_leaving_the_old_folder_no_temporaries_and_no_processes(tmp_path):
    write_tree(tmp_path / "src", 60, sizes=(28,))
    out = tmp_path / "D"
    write_image(out / "7" / "old.png", drawn_digit("7"))
    before = contents(out)
    command = [sys.executable, "-m", "digitprep", "augment", tmp_path / "src", "--out-dir", out]

    def working():  # a worker has written a PNG into the staging folder
        return any(next(staging.rglob("*.png"), None) for staging in tmp_path.glob(".D.*.tmp"))

    code, stderr, family = terminated_once([*command, "--copies", "500", "--jobs", "2", "-q"], working)
    assert code == 143 and "Traceback" not in stderr, stderr
    assert family, "no worker processes"
    assert contents(out) == before and temporaries(tmp_path) == []
    assert gone_within(family, 30)  # the forkserver notices its parent is gone, then exits


def test_unwritable_outputs_are_one_line_errors_naming_the_file(tmp_path, monkeypatch):
    write_digits_csv(tmp_path / "d.csv", n=3)
    (tmp_path / "somefile").write_text("a file, not a folder")
    result = run("augment", tmp_path / "d.csv", "--out", tmp_path / "somefile" / "x.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {tmp_path / 'somefile' / 'x.csv'}: cannot write")
    assert len(result.output.strip().splitlines()) == 1
    write_image(tmp_path / "src" / "7" / "x.png", drawn_digit("7"))
    result = run("augment", tmp_path / "src", "--out-dir", tmp_path / "somefile" / "d")
    assert result.exit_code == 1 and f"Error: {tmp_path / 'somefile' / 'd'}: cannot write" in result.output
    write_image(tmp_path / "out" / "7" / "old.png", drawn_digit("7"))
    before = contents(tmp_path / "out")
    write_bytes = pathlib.Path.write_bytes

    def full_disk(path, data):
        if path.name.endswith("_a2.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(path, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
    result = run("augment", tmp_path / "src", "--out-dir", tmp_path / "out", "--copies", 3, "--jobs", 1)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == f"Error: {tmp_path / 'out' / '7' / 'x_a2.png'}: cannot write (No space left on device)\n"
    assert contents(tmp_path / "out") == before and temporaries(tmp_path) == []
