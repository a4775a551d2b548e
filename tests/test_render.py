"""`digitprep render`: finding fonts, rejecting those without real digits, drawing digits, the tree."""

import csv
import shutil
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import terminated_once

from digitprep.cli import main
from digitprep.csvio import read_onehot_csv
from digitprep.fonts import (
    DIGITS,
    MISSING_CHARACTER,
    check_file,
    digit_masks,
    drop_duplicates,
    find_font_files,
    glyph_mask,
    is_box,
    list_faces,
    open_font,
    render_problem,
    usable_problem,
)
from digitprep.options import RenderConfig
from digitprep.render import (
    GRID,
    Variation,
    change_stroke,
    place,
    render_digit,
    render_font_digits,
    rotate_to_fit,
)

MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
REPO = Path(__file__).resolve().parents[1]


def face(name):
    faces, problem = list_faces(MPL_FONTS / name)
    assert problem is None
    return faces[0]


def ink_box(image):
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def font_dir(tmp_path, *names):
    folder = tmp_path / "fonts"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(MPL_FONTS / name, folder / name)
    return folder


# Finding fonts


def test_font_files_are_found_once_in_sorted_order(tmp_path):
    folder = font_dir(tmp_path, "DejaVuSerif.ttf", "DejaVuSans.ttf")
    (folder / "sub").mkdir()
    shutil.copy(MPL_FONTS / "cmr10.ttf", folder / "sub" / "CMR10.TTF")
    (folder / "link.ttf").symlink_to(folder / "DejaVuSans.ttf")
    (folder / "readme.txt").write_text("not a font")
    found = find_font_files([folder, folder / "DejaVuSans.ttf", tmp_path / "absent"])
    assert [p.relative_to(folder).as_posix() for p in found] == ["DejaVuSans.ttf", "DejaVuSerif.ttf", "sub/CMR10.TTF"]


def test_a_file_that_is_not_a_font_is_reported(tmp_path):
    bogus = tmp_path / "bogus.ttf"
    bogus.write_text("not a font")
    faces, problem = list_faces(bogus)
    assert faces == [] and "cannot be opened as a font" in problem
    [check] = check_file(str(bogus))
    assert (check.face, check.label) == (None, str(bogus)) and "cannot be opened as a font" in check.problem


def test_faces_carry_names_and_a_content_id():
    sans = face("DejaVuSans.ttf")
    assert (sans.family, sans.style, sans.index) == ("DejaVu Sans", "Book", 0)
    assert sans.content_id != face("DejaVuSerif.ttf").content_id


# Which fonts are usable


@pytest.mark.parametrize("name", ["DejaVuSans.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf", "cmr10.ttf"])
def test_text_fonts_are_usable(name):
    assert usable_problem(face(name)) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cmex10.ttf", "digit 0 maps to glyph 'parenlefttp', not a digit (a symbol font)"),
        ("cmsy10.ttf", "digit 0 maps to glyph 'prime', not a digit (a symbol font)"),
        ("LastResortHE-Regular.ttf", "every digit maps to the same glyph"),
        ("STIXSizOneSymReg.ttf", "no digits in its character map"),
        ("DejaVuSansDisplay.ttf", "no digits in its character map"),
    ],
)
def test_symbol_fallback_and_digitless_fonts_are_rejected(name, reason):
    assert reason in usable_problem(face(name))


def test_a_second_copy_of_a_face_is_skipped_as_a_duplicate(tmp_path):
    copy = font_dir(tmp_path, "DejaVuSans.ttf") / "DejaVuSans.ttf"
    checks = drop_duplicates(check_file(str(MPL_FONTS / "DejaVuSans.ttf")) + check_file(str(copy)))
    assert [check.problem for check in checks] == [None, f"duplicate of {MPL_FONTS / 'DejaVuSans.ttf'}"]


def rendered(name):
    font = open_font(str(MPL_FONTS / name))
    return [glyph_mask(font, digit) for digit in DIGITS], glyph_mask(font, MISSING_CHARACTER)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cmex10.ttf", "digit heights differ 3.0-fold"),
        ("cmsy10.ttf", "digit heights differ 2.5-fold"),
        ("LastResortHE-Regular.ttf", "digits 0 and 1 draw the same glyph"),
        ("STIXSizOneSymReg.ttf", "digit 0 draws no ink"),
    ],
)
def test_drawings_alone_reject_the_same_fonts(name, reason):
    """Without glyph names (fonts that carry none), the rendered shapes still give them away."""
    masks, missing = rendered(name)
    assert reason in render_problem(masks, missing)


def test_digits_drawn_as_the_missing_character_box_are_rejected():
    masks, missing = rendered("DejaVuSans.ttf")
    assert render_problem(masks, missing) is None
    assert is_box(missing) and not any(is_box(mask) for mask in masks)
    masks[4] = missing.copy()
    assert render_problem(masks, missing) == "digit 4 draws the missing-character glyph"


def test_fonts_drawing_every_digit_as_a_different_box_are_rejected():
    frames = []
    for digit in range(10):
        frame = np.zeros((50, 40), np.uint8)
        cv2.rectangle(frame, (0, 0), (39, 49), 255, 3)
        cv2.putText(frame, str(digit), (12, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
        frames.append(frame)
    assert render_problem(frames, np.zeros((0, 0), np.uint8)) == "every digit is drawn as a box (a fallback font)"
    lastresort, _ = rendered("LastResortHE-Regular.ttf")
    assert is_box(lastresort[0])


# Drawing one digit


def block(height, width, pad=0):
    return np.pad(np.full((height, width), 255, np.uint8), pad)


def test_place_scales_and_centres_exactly():
    # 40x20 block into a 10x10 image with its longer side 4: drawn 10x larger, then shrunk.
    image = place(block(40, 20), 10, 4, 0, 0, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[3:7, 4:6] = 255
    assert np.array_equal(image, expected)
    shifted = place(block(40, 20), 10, 4, 2, -1, 10)
    assert np.array_equal(shifted, np.roll(expected, (-1, 2), axis=(0, 1)))


def test_place_never_pushes_ink_off_the_image():
    image = place(block(40, 20), 10, 4, 100, 100, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[6:10, 8:10] = 255
    assert np.array_equal(image, expected)


def test_no_variation_is_the_plain_glyph():
    mask = digit_masks(face("DejaVuSans.ttf"))[7]
    assert change_stroke(mask, 0.0) is mask and rotate_to_fit(mask, 0.0) is mask
    image = render_digit(mask, Variation(), "20", 28)
    top, bottom, left, right = ink_box(image > 0)
    assert (top, bottom) == (4, 23)  # the longer side fills MNIST's 20-pixel box, centred
    assert abs((left + right) / 2 - 13.5) <= 0.5
    # Against the glyph padded to MNIST's layout and block-averaged: a 140-row glyph centred on a
    # 196-pixel square (140/196 = 20/28) shrinks by exactly 7 with INTER_AREA.
    glyph = cv2.resize(mask, (2 * round(mask.shape[1] * 70 / mask.shape[0]), 140), interpolation=cv2.INTER_AREA)
    pad_x = (196 - glyph.shape[1]) // 2
    reference = cv2.resize(np.pad(glyph, ((28, 28), (pad_x, pad_x))), (28, 28), interpolation=cv2.INTER_AREA)
    drawn = render_digit(glyph, Variation(), "20", 28)
    assert np.corrcoef(drawn.ravel(), reference.ravel())[0, 1] > 0.98
    assert np.abs(drawn.astype(int) - reference).mean() < 6


def test_stroke_thickens_and_thins_without_erasing():
    bar = block(60, 12, pad=5)
    thick = change_stroke(bar, 0.05)  # 0.05 x 70 rows = 4 pixels each side
    assert thick.shape == (78, 30) and (thick == 255).sum() > (bar == 255).sum()
    thin = change_stroke(bar, -0.5)  # asks for 35 pixels; stops at half the half-width
    assert 0 < (thin == 255).sum() < (bar == 255).sum()
    assert (thin == 255).any(axis=1).sum() >= 50


def test_rotation_turns_a_bar_upright():
    bar = block(10, 60)
    upright = rotate_to_fit(bar, 90)
    top, bottom, left, right = ink_box(upright >= 128)
    assert bottom - top + 1 == 60 and right - left + 1 == 10


@pytest.mark.parametrize("seed", range(6))
def test_varied_digits_stay_centred_within_the_jitter(seed):
    rng = np.random.default_rng(seed)
    mask = digit_masks(face("DejaVuSerif.ttf"))[seed]
    variation = Variation(0.9, 0.02, rng.uniform(-10, 10), rng.uniform(-2, 2), rng.uniform(-2, 2))
    image = render_digit(mask, variation, "20", 28)
    top, bottom, left, right = ink_box(image >= 32)
    assert abs((left + right + 1) / 2 - (14 + variation.dx)) <= 1.0
    assert abs((top + bottom + 1) / 2 - (14 + variation.dy)) <= 1.0


def test_tag_8_is_an_8x8_drawing_in_square_blocks():
    mask = digit_masks(face("DejaVuSans.ttf"))[3]
    image = render_digit(mask, Variation(), "8", 28)
    cell = 28 // GRID  # 3-pixel cells, 24 pixels centred with a 2-pixel margin
    assert not image[:2].any() and not image[-2:].any() and not image[:, :2].any() and not image[:, -2:].any()
    coarse = image[2:26, 2:26].reshape(GRID, cell, GRID, cell)
    assert (coarse == coarse[:, :1, :, :1]).all()
    levels = np.unique(image)
    assert np.array_equal(levels, np.round(np.round(levels.astype(int) * 16 / 255) * 255 / 16))
    assert image.max() > 200 and len(levels) > 4


def test_light_fonts_get_a_pen_a_cell_wide_on_the_grid():
    light = change_stroke(digit_masks(face("DejaVuSans.ttf"))[1], -0.03)
    thin = render_digit(light, Variation(), "8", 8)
    regular = render_digit(digit_masks(face("DejaVuSans.ttf"))[1], Variation(), "8", 8)
    assert thin.max() >= 0.8 * regular.max()


# The tree


@pytest.fixture
def no_fsync(monkeypatch):
    """Thousands of tiny files: flushing each to disk costs seconds and tests nothing here."""
    import digitprep.atomic

    monkeypatch.setattr(digitprep.atomic.os, "fsync", lambda fd: None)


def names_in(folder):
    return sorted(p.name for p in folder.iterdir())


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def temporaries(folder):
    """Every temporary file or folder an atomic write may leave (``.NAME.PID.XXXX.tmp``)."""
    return sorted(str(p) for p in folder.rglob(".*.tmp"))


def render_args(out, fonts, *more):
    return ["render", "--out-dir", str(out), "--fonts", str(fonts), *more]


def test_render_writes_the_tree_manifest_and_font_list(tmp_path, no_fsync):
    fonts = font_dir(tmp_path, "DejaVuSans.ttf", "cmex10.ttf", "DejaVuSerif.ttf")
    result = CliRunner().invoke(
        main, ["render", "--out-dir", str(tmp_path / "out"), "--fonts", str(fonts), "--variants", "2", "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    expected = {f"{d}_{t}_{n}.png" for d in range(10) for t in (20, 8) for n in range(4)}
    assert set(names_in(tmp_path / "out")) == expected | {"render.manifest.csv", "render.fonts.csv"}
    assert "wrote 80 PNGs" in result.stderr and "from 2 fonts; skipped 1" in result.stderr
    assert "cmex10.ttf: digit 0 maps to glyph 'parenlefttp'" in result.stderr
    with open(tmp_path / "out" / "render.fonts.csv", newline="") as handle:
        fonts_rows = list(csv.DictReader(handle))
    assert [(Path(r["font"]).name, r["status"]) for r in fonts_rows] == [
        ("DejaVuSans.ttf", "used"),
        ("DejaVuSerif.ttf", "used"),
        ("cmex10.ttf", "skipped"),
    ]
    with open(tmp_path / "out" / "render.manifest.csv", newline="") as handle:
        manifest = {row["file"]: row for row in csv.DictReader(handle)}
    assert set(manifest) == expected
    # n counts within label and tag in font order: the first font owns 0-1, the second 2-3.
    assert Path(manifest["7_8_1.png"]["font"]).name == "DejaVuSans.ttf"
    assert Path(manifest["7_8_2.png"]["font"]).name == "DejaVuSerif.ttf"
    # A manifest row reproduces its image exactly.
    row = manifest["5_20_3.png"]
    variation = Variation(*(float(row[k]) for k in ("scale", "stroke", "rotation", "dx", "dy")))
    again = render_digit(digit_masks(face("DejaVuSerif.ttf"))[5], variation, "20", 28)
    assert np.array_equal(cv2.imread(str(tmp_path / "out" / "5_20_3.png"), cv2.IMREAD_UNCHANGED), again)

    built = CliRunner().invoke(
        main, ["build", str(tmp_path / "out"), "--labels", "name", "--sizes", "20", "--out", str(tmp_path / "f.csv")]
    )
    assert built.exit_code == 0, built.output
    assert "wrote 80 rows" in built.stderr and "skipped" not in built.stderr
    pixels, labels, _ = read_onehot_csv(tmp_path / "f.csv")
    assert pixels.shape == (80, 400) and np.bincount(labels).tolist() == [8] * 10
    with open(tmp_path / "f.manifest.csv", newline="") as handle:
        tags = [row["tag"] for row in csv.DictReader(handle)]
    assert sorted(tags) == ["20"] * 40 + ["8"] * 40


def test_same_seed_same_bytes_for_any_jobs_and_another_seed_differs(tmp_path):
    fonts = font_dir(tmp_path, "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf", "cmex10.ttf")
    outputs = {}
    for name, jobs, seed in (("a", "1", "0"), ("b", "2", "0"), ("c", "1", "1")):
        args = render_args(tmp_path / name, fonts, "--variants", "1", "--jobs", jobs, "--seed", seed, "-q")
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "wrote 60 PNGs" in result.stderr and "skipped 1" in result.stderr
        outputs[name] = contents(tmp_path / name)
    expected = {f"{d}_{t}_{n}.png" for d in range(10) for t in (20, 8) for n in range(3)}
    assert set(outputs["a"]) == expected | {"render.manifest.csv", "render.fonts.csv"}
    assert outputs["a"] == outputs["b"]  # every PNG and both CSVs, byte for byte
    changed = [n for n in expected if outputs["a"][n] != outputs["c"][n]]
    assert len(changed) == 60 and outputs["a"]["render.fonts.csv"] == outputs["c"]["render.fonts.csv"]
    assert temporaries(tmp_path) == []


def test_a_rerun_removes_only_its_own_stale_images(tmp_path):
    fonts = font_dir(tmp_path, "DejaVuSans.ttf")
    out = tmp_path / "out"
    render_font_digits([fonts], out, RenderConfig(variants=3, tags=("8",)), 1)
    (out / "mine.png").write_bytes(b"keep me")
    render_font_digits([fonts], out, RenderConfig(variants=1, tags=("8",)), 1)
    expected = [f"{d}_8_0.png" for d in range(10)] + ["mine.png", "render.fonts.csv", "render.manifest.csv"]
    assert names_in(out) == sorted(expected)


def test_no_usable_font_is_an_error_that_leaves_the_folder_alone(tmp_path):
    out = tmp_path / "out"
    render_font_digits([MPL_FONTS / "DejaVuSans.ttf"], out, RenderConfig(variants=1, tags=("8",)), 1)
    before = contents(out)
    fonts = font_dir(tmp_path, "cmex10.ttf", "STIXSizOneSymReg.ttf")
    result = CliRunner().invoke(main, render_args(out, fonts))
    assert result.exit_code == 1 and "no usable font" in result.output and "Traceback" not in result.output
    assert "skipped" in result.stderr and "cmex10.ttf: digit 0 maps to glyph 'parenlefttp'" in result.stderr
    assert contents(out) == before


def test_a_failing_render_leaves_the_earlier_output_and_no_temporaries(tmp_path, monkeypatch):
    import digitprep.render

    fonts = font_dir(tmp_path, "DejaVuSans.ttf", "DejaVuSerif.ttf")
    out = tmp_path / "out"
    render_font_digits([fonts], out, RenderConfig(variants=1), 1)
    before = contents(out)
    calls = []

    def encode_then_fail(image):
        calls.append(1)
        if len(calls) == 50:  # the second face, after the first face's images are staged
            raise OSError(28, "No space left on device")
        return encode_png(image)

    encode_png = digitprep.render.encode_png
    monkeypatch.setattr(digitprep.render, "encode_png", encode_then_fail)
    with pytest.raises(OSError, match="No space left"):
        render_font_digits([fonts], out, RenderConfig(variants=2, seed=1), 1)
    assert len(calls) == 50
    assert contents(out) == before and temporaries(tmp_path) == []


def test_sigterm_stops_a_render_leaving_the_earlier_output_and_no_temporaries(tmp_path):
    fonts = font_dir(tmp_path, "DejaVuSans.ttf", "DejaVuSerif.ttf", "cmr10.ttf")
    out = tmp_path / "out"
    render_font_digits([fonts], out, RenderConfig(variants=1, tags=("8",)), 1)
    before = contents(out)
    command = [sys.executable, "-m", "digitprep", *render_args(out, fonts, "--variants", "1000", "--jobs", "2", "-q")]

    def working():  # its staging folder exists: fonts checked, images being drawn
        return bool(list(tmp_path.glob(".out.*.tmp")))

    code, stderr, _ = terminated_once(command, working)
    assert code == 143, stderr
    assert contents(out) == before and temporaries(tmp_path) == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--drawing-sizes", "20,9", "'9' is not one of '20', '8' (in '20,9')"),
        ("--stroke", "0.1", "LOW,HIGH"),
        ("--glyph-size", "0.9,0.5", "LOW <= HIGH"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, option, value, message):
    result = CliRunner().invoke(main, ["render", "--out-dir", str(tmp_path), option, value])
    assert result.exit_code == 2 and message in result.output


def test_sklearn_digits_export_builds_by_file_name(tmp_path, no_fsync):
    from sklearn.datasets import load_digits

    result = CliRunner().invoke(main, ["digits", "--out-dir", str(tmp_path / "sk")])
    assert result.exit_code == 0, result.output
    names = names_in(tmp_path / "sk")
    target = load_digits().target
    assert len(names) == 1797 and names[0] == "0_8_0.png" and f"{target[-1]}_8_1796.png" in names
    built = CliRunner().invoke(
        main, ["build", str(tmp_path / "sk"), "--labels", "name", "--sizes", "8", "--out", str(tmp_path / "sk.csv")]
    )
    assert built.exit_code == 0, built.output
    assert "wrote 1797 rows" in built.stderr and "skipped" not in built.stderr
    _, labels, _ = read_onehot_csv(tmp_path / "sk.csv")
    assert np.bincount(labels).tolist() == np.bincount(target).tolist()
    with open(tmp_path / "sk.manifest.csv", newline="") as handle:
        assert {row["tag"] for row in csv.DictReader(handle)} == {"8"}
