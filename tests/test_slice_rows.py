"""`digitprep slice --layout rows`: free rows of digits found from the ink, each row labelled in turn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_image
from PIL import ImageFont

from digitprep.cli import main
from digitprep.csvio import read_dataset
from digitprep.fonts import crop_to_ink, default_font_dirs, find_font_files, glyph_mask, list_faces, usable_problem
from digitprep.textlines import (
    PAD_SHARE,
    digit_height,
    drop_specks,
    find_rows,
    group_rows,
    merge_pieces,
    row_slope,
    rows_cutter,
)


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def face():
    """The first face on this machine with ten real digits (matplotlib's DejaVu Sans, usually)."""
    for path in find_font_files(default_font_dirs()):
        for found in list_faces(path)[0]:
            if usable_problem(found) is None:
                return found
    pytest.skip("no font with digit glyphs on this machine")


def glyph(face, digit: str, em: int) -> np.ndarray:
    """uint8 ink mask (255 = ink) of one digit drawn at ``em`` pixels per em, cropped to its ink."""
    font = ImageFont.truetype(face.path, em, index=face.index, layout_engine=ImageFont.Layout.BASIC)
    return glyph_mask(font, digit)


def cut_apart(mask: np.ndarray, start: float, stop: float) -> np.ndarray:
    """The mask with the rows between ``start`` and ``stop`` (shares of its height) cleared, cropped
    to the ink again: a 5's bar lifted off its stem, a 4's stem broken under its bar."""
    out = mask.copy()
    out[int(start * len(mask)) : math.ceil(stop * len(mask))] = 0
    return crop_to_ink(out)


@dataclass
class Placed:
    row: int
    col: int
    digit: str
    x: int
    y: int
    mask: np.ndarray  # uint8, 255 = ink, cropped to the ink


def free_rows_page(
    face, rows: list[str], seed: int, slope_degrees: float = 2.0, specks: int = 0, pitch: int = 72
) -> tuple[np.ndarray, list[Placed]]:
    """A white page of free rows of font digits in black: row i holds rows[i] (one digit repeated),
    each digit at its own size (no two alike in a row, so an order mix-up shows), spaced 8-30 px
    apart, its baseline jittered by up to 4 px, the rows sloping down by ``slope_degrees``. In the
    row of 5s one 5 has its bar drawn apart, in the row of 4s one 4 has its stem broken. ``specks``
    dots of 1-3 px are scattered at least 20 px from every digit's box (further than a digit's
    pieces may stand apart, a quarter of its height)."""
    rng = np.random.default_rng(seed)
    slope = math.tan(math.radians(slope_degrees))
    width = 900
    drift = round(abs(slope) * width)  # the rows' fall across the page
    page = np.full((pitch * len(rows) + 120 + drift, width), 255, np.uint8)
    placed: list[Placed] = []
    for r, text in enumerate(rows):
        x = 30 + int(rng.integers(0, 40))
        baseline = 70 + r * pitch + (drift if slope < 0 else 0)
        ems = rng.choice(np.arange(34, 62), size=len(text), replace=False)
        for c, (digit, em) in enumerate(zip(text, ems.tolist())):
            mask = glyph(face, digit, em)
            if digit == "5" and c == 2:
                mask = cut_apart(mask, 0.13, 0.2)
            if digit == "4" and c == 1:
                mask = cut_apart(mask, 0.78, 0.84)
            h, w = mask.shape
            y = baseline + round(slope * x) - h + int(rng.integers(-4, 5))
            page[y : y + h, x : x + w] = np.minimum(page[y : y + h, x : x + w], 255 - mask)
            placed.append(Placed(r, c, digit, x, y, mask))
            x += w + int(rng.integers(8, 31))
        assert x < width
    near = np.zeros(page.shape, bool)
    for p in placed:
        near[max(p.y - 20, 0) : p.y + p.mask.shape[0] + 20, max(p.x - 20, 0) : p.x + p.mask.shape[1] + 20] = True
    dropped = 0
    while dropped < specks:
        side = int(rng.integers(1, 4))
        y, x = int(rng.integers(0, page.shape[0] - 3)), int(rng.integers(0, width - 3))
        if not near[y : y + side, x : x + side].any():
            page[y : y + side, x : x + side] = 0
            dropped += 1
    return page, placed


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1


def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


# The rules, one at a time


def test_a_digits_pieces_merge_and_neighbours_do_not():
    height = 40.0
    boxes = np.array(
        [
            [100, 100, 124, 106],  # 0: the bar of a 5...
            [101, 109, 126, 140],  # 1: ...over its body, 3 px below
            [140, 100, 166, 140],  # 2: the next digit in the row, 14 px to the right
            [160, 101, 180, 141],  # 3: a leaning neighbour overlapping 2 by 6 px of its 20
            [103, 152, 128, 192],  # 4: the digit under the 5 in the next row, 12 px down
            [110, 145, 114, 149],  # 5: a mark between the rows, nearer the lower digit (3 px vs 5)
            [20, 100, 40, 120],  # 6: a digit's upper half...
            [20, 121, 40, 140],  # 7: ...and its lower half, broken across
            [200, 105, 220, 140],  # 8: the body of a handwritten 5...
            [222, 100, 236, 104],  # 9: ...its bar off to the right, overlapping it nowhere
            [300, 100, 303, 103],  # 10: two specks side by side: parts of no digit,
            [305, 100, 308, 103],  # 11: they do not join each other
        ],
        np.int64,
    )
    merged = sorted(merge_pieces(boxes, height).tolist())
    assert merged == [
        [20, 100, 40, 140],
        [100, 100, 126, 140],
        [103, 145, 128, 192],
        [140, 100, 166, 140],
        [160, 101, 180, 141],
        [200, 100, 236, 140],
        [300, 100, 303, 103],
        [305, 100, 308, 103],
    ]
    # Two digits one above the other merge in no order: together they are two digits tall.
    stacked = np.array([[0, 0, 20, 30], [0, 34, 20, 64]], np.int64)
    assert len(merge_pieces(stacked, 30.0)) == 2


def test_specks_are_judged_against_the_ink_weighted_digit_height():
    # Twelve digits 40 px high and sixty 2-px specks: a plain median piece would be a speck.
    digits = np.array([[30 * i, 0, 30 * i + 20, 40] for i in range(12)], np.int64)
    specks = np.array([[5 * i, 80, 5 * i + 2, 82] for i in range(60)], np.int64)
    boxes = np.concatenate((digits, specks))
    areas = np.r_[np.full(12, 300), np.full(60, 4)]
    height = digit_height(boxes, areas)
    assert height == 40.0
    merged = merge_pieces(boxes, height)
    assert sorted(merged[drop_specks(merged, height)].tolist()) == digits.tolist()
    # A stub of a broken stem (6 px) joins its digit; a dash (a part left alone) is dropped.
    stub = np.array([[0, 0, 20, 32], [12, 34, 16, 40], [40, 20, 60, 24], [80, 0, 100, 40]], np.int64)
    merged = merge_pieces(stub, height)
    assert sorted(merged[drop_specks(merged, height)].tolist()) == [[0, 0, 20, 40], [80, 0, 100, 40]]
    assert drop_specks(np.array([[0, 0, 5, 20], [0, 0, 50, 19]], np.int64), 40.0).tolist() == [True, False]


def test_sloping_rows_are_levelled_and_read_left_to_right():
    rng = np.random.default_rng(3)
    boxes, truth = [], []
    for r in range(6):
        x = 0
        for _ in range(int(rng.integers(5, 13))):
            x += int(rng.integers(30, 70))
            h = int(rng.integers(28, 44))
            y = 60 * r + round(math.tan(math.radians(4)) * x) + int(rng.integers(-4, 5))
            boxes.append([x, y, x + 24, y + h])
            truth.append(r)
    boxes = np.array(boxes, np.int64)
    order = rng.permutation(len(boxes))  # the rows must not come from the order of the boxes
    rows = group_rows(boxes[order])
    assert [np.array(truth)[order][row].tolist() for row in rows] == [[r] * truth.count(r) for r in range(6)]
    assert all((np.diff(boxes[order][row][:, 0]) > 0).all() for row in rows)
    centres = np.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2), axis=1)
    assert row_slope(centres, 36.0) == pytest.approx(math.tan(math.radians(4)), abs=0.01)
    # One digit has no slope to find; no digits make no rows.
    assert row_slope(centres[:1], 36.0) == 0.0 and group_rows(boxes[:0]) == []


# The command


def test_free_rows_of_font_digits_come_out_in_place_under_their_labels(face, tmp_path):
    rng = np.random.default_rng(15)
    rows = [str(d) * int(rng.integers(6, 13)) for d in range(10)]
    page, placed = free_rows_page(face, rows, seed=15, specks=40)
    two_piece = [p for p in placed if (p.digit, p.col) in (("5", 2), ("4", 1))]
    assert [components(p.mask) for p in two_piece] == [2, 2]  # the page holds what the test means
    write_image(tmp_path / "free.png", page)
    out = tmp_path / "cut"
    result = invoke("slice", tmp_path / "free.png", "--layout", "rows", "--labels", "rows=0123456789", "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {len(placed)} PNGs to {out} from 1 of 1 pages" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f"{p.digit}/free_{p.row}_{p.col}.png" for p in placed)  # no speck cut, none lost
    for p in placed:
        cut = read_png(out / p.digit / f"free_{p.row}_{p.col}.png")
        # The page's own pixels at the glyph's place, padded by a tenth of the row's median height...
        pad = round(PAD_SHARE * np.median([q.mask.shape[0] for q in placed if q.row == p.row]))
        h, w = p.mask.shape
        assert np.array_equal(cut, page[p.y - pad : p.y + h + pad, p.x - pad : p.x + w + pad]), (p.row, p.col)
        # ...holding that glyph, whole, and nothing else.
        assert np.array_equal(crop_to_ink(255 - cut), p.mask)
    built = invoke("build", out, "--labels", "folder", "--sizes", "20", "--out", tmp_path / "d.csv")
    assert built.exit_code == 0, built.output
    data = read_dataset(tmp_path / "d.csv")
    assert np.bincount(data.labels, minlength=10).tolist() == [len(text) for text in rows]
    assert all(path.split("/")[-2] == str(label) for path, label in zip(data.column("path"), data.labels.tolist()))


def test_repeat_labels_runs_of_rows(face, tmp_path):
    rows = ["3333333", "333333", "77777777", "7777777", "33333333", "333333", "7777777", "77777777"]
    page, placed = free_rows_page(face, rows, seed=8, slope_degrees=-1.5)
    write_image(tmp_path / "runs.png", page)
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "runs.png", "--layout", "rows", "--labels", "rows=37", "--repeat", 2, "--out-dir", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        f"{p.digit}/runs_{p.row}_{p.col}.png" for p in placed
    )


def test_light_ink_on_grainy_dark_paper(face, tmp_path):
    rows = ["0000000", "11111111", "222222", "333333333"]
    page, placed = free_rows_page(face, rows, seed=4, slope_degrees=1.0)
    grain = np.random.default_rng(4).normal(0, 4, page.shape)
    dark = np.clip(40 + (255 - page.astype(np.float64)) * 170 / 255 + grain, 0, 255).round().astype(np.uint8)
    write_image(tmp_path / "night.png", dark)
    out = tmp_path / "cut"
    result = invoke("slice", tmp_path / "night.png", "--layout", "rows", "--labels", "rows=0123", "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        f"{p.digit}/night_{p.row}_{p.col}.png" for p in placed
    )
    for p in placed:
        cut = read_png(out / p.digit / f"night_{p.row}_{p.col}.png")
        # The glyph is found in the cut where the padding puts it, nearly perfectly correlated (the
        # grain aside), and the cut is the glyph with a few pixels of paper round it.
        fit = cv2.matchTemplate(cut.astype(np.float32), p.mask.astype(np.float32), cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(fit)
        assert best > 0.99 and 2 <= x <= 4 and 2 <= y <= 4, (p.row, p.col, best, x, y)
        assert all(4 <= extra <= 8 for extra in np.subtract(cut.shape, p.mask.shape)), (p.row, p.col)
        assert np.median(cut[0]) < 60  # the page's own dark paper, not turned round


def test_a_page_whose_rows_do_not_fit_the_labels_fails_alone(face, tmp_path):
    nine, _ = free_rows_page(face, [str(d) * 6 for d in range(9)], seed=1)
    ten, placed = free_rows_page(face, [str(d) * 6 for d in range(10)], seed=2)
    write_image(tmp_path / "nine.png", nine)
    write_image(tmp_path / "ten.png", ten)
    out = tmp_path / "cut"
    pages = [tmp_path / "nine.png", tmp_path / "ten.png"]
    result = invoke("slice", *pages, "--layout", "rows", "--labels", "rows=0123456789", "--out-dir", out)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: {tmp_path / 'nine.png'}: found 9 rows of digits, not a multiple of 10"
        " (labels rows=0123456789, --repeat 1); check --labels"
    ]
    assert f"wrote {len(placed)} PNGs to {out} from 1 of 2 pages" in result.output
    assert {p.parent.name for p in out.rglob("*.png")} == set("0123456789")
    assert not list(out.rglob("nine_*.png"))
    # Ten rows are not whole cycles of 5 labels x --repeat 3 either: the cycle is named.
    result = invoke("slice", pages[1], "--layout", "rows", "--labels", "rows=01234", "--repeat", 3, "--out-dir", out)
    assert result.exit_code == 1
    assert "ten.png: found 10 rows of digits, not a multiple of 15 (labels rows=01234, --repeat 3)" in result.output


def test_a_blank_page_is_one_line(tmp_path):
    write_image(tmp_path / "blank.png", np.full((200, 300), 250, np.uint8))
    result = invoke("slice", tmp_path / "blank.png", "--layout", "rows", "--labels", "rows=0", "--out-dir", tmp_path)
    assert result.exit_code == 1
    assert (
        result.output.strip() == f"Error: {tmp_path / 'blank.png'}: no digits found (no ink stands out from the paper)"
    )


def test_column_labels_are_refused_in_one_line(face, tmp_path):
    page, _ = free_rows_page(face, ["0123"], seed=0)
    write_image(tmp_path / "p.png", page)
    result = invoke(
        "slice", tmp_path / "p.png", "--layout", "rows", "--labels", "cols=0123", "--out-dir", tmp_path / "o"
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: --layout rows labels rows, not columns: use --labels rows=0123"]
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="must be digits"):
        rows_cutter("rows", "0a")


def test_find_rows_gives_boxes_of_whole_digits(face):
    page, placed = free_rows_page(face, ["55555", "44444"], seed=6, specks=10)
    rows = find_rows(page)
    assert [len(row) for row in rows] == [5, 5]
    expected = [
        [[p.x, p.y, p.x + p.mask.shape[1], p.y + p.mask.shape[0]] for p in placed if p.row == r] for r in (0, 1)
    ]
    assert [row.tolist() for row in rows] == expected


def test_a_photo_of_a_page_turned_by_three_degrees(face, tmp_path):
    rng = np.random.default_rng(21)
    rows = [str(d) * int(rng.integers(6, 13)) for d in range(10)]
    page, placed = free_rows_page(face, rows, seed=21, slope_degrees=0)
    height, width = page.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 3, 1.0)  # glyphs and rows turned alike
    turned = cv2.warpAffine(page, turn, (width, height), flags=cv2.INTER_LINEAR, borderValue=255)
    # As a phone takes it: a little blur, light falling off to one side, sensor noise.
    light = np.linspace(0.75, 1.0, width)[None, :]
    noise = np.random.default_rng(21).normal(0, 3, page.shape)
    photo = np.clip(cv2.GaussianBlur(turned.astype(np.float64), (0, 0), 0.8) * light + noise, 0, 255)
    write_image(tmp_path / "photo.png", photo.round().astype(np.uint8))
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "photo.png", "--layout", "rows", "--labels", "rows=0123456789", "--out-dir", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        f"{p.digit}/photo_{p.row}_{p.col}.png" for p in placed
    )


def test_a_page_of_mnist_handwriting_in_rows_comes_back_digit_by_digit(t10k, tmp_path):
    images, labels = t10k
    # Ten rows of 100 handwritten digits, row i all i's, each in its 28-px MNIST frame: no lines
    # between them, a few pixels apart, some in pieces.
    pick = np.stack([np.flatnonzero(labels == d)[:100] for d in range(10)])
    page = images[pick].transpose(0, 2, 1, 3).reshape(280, 2800)
    write_image(tmp_path / "mnist.png", page)
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "mnist.png", "--layout", "rows", "--labels", "rows=0123456789", "--out-dir", out
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 1000 PNGs to {out} from 1 of 1 pages" in result.output
    for r in range(10):
        for c in range(100):
            cut = read_png(out / str(r) / f"mnist_{r}_{c}.png").astype(np.float32)
            digit = crop_to_ink(images[pick[r, c]]).astype(np.float32)
            # The whole handwritten digit lies in its cut, pixel for pixel.
            assert cut.shape[0] >= digit.shape[0] and cut.shape[1] >= digit.shape[1], (r, c)
            assert cv2.matchTemplate(cut, digit, cv2.TM_SQDIFF).min() < 0.5, (r, c)
