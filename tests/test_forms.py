"""`digitprep form` and `slice --form`: a printed form of boxes, filled in by pen and photographed by
phone, comes back as labelled digits with no trace of its printed lines."""

import csv
import json
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitprep.cli import main
from digitprep.csvio import read_dataset
from digitprep.decode import decode_grey
from digitprep.forms import (
    FORMAT,
    FormLayout,
    cut_side,
    find_markers,
    layout_from_json,
    plan_form,
    read_form,
    read_layout,
    render_form,
    trimmed,
    write_form,
)
from digitprep.slice import blank_cells

DPI = 200  # the forms the tests print (the command's default)


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def arc(cx, cy, rx, ry, start, stop, n=24):
    """Points along an ellipse's arc, degrees clockwise from 3 o'clock (y down), in unit coordinates."""
    angles = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def line(*points):
    return np.array(points, np.float64)


# Each digit as pen strokes in a unit square (x right, y down): arcs and lines, as a hand draws them.
STROKES = {
    0: [arc(0.5, 0.5, 0.3, 0.45, -90, 275)],
    1: [line((0.3, 0.25), (0.55, 0.05), (0.55, 0.95))],
    2: [np.concatenate([arc(0.5, 0.3, 0.3, 0.25, 200, 380), line((0.75, 0.45), (0.2, 0.95), (0.85, 0.95))])],
    3: [arc(0.5, 0.28, 0.28, 0.23, 200, 450), arc(0.5, 0.73, 0.3, 0.23, -90, 160)],
    4: [line((0.65, 0.95), (0.65, 0.05), (0.15, 0.65), (0.88, 0.65))],
    5: [np.concatenate([line((0.8, 0.05), (0.3, 0.05), (0.26, 0.45)), arc(0.5, 0.68, 0.3, 0.27, -120, 160)])],
    6: [np.concatenate([arc(0.95, 0.7, 0.65, 0.65, 235, 180), arc(0.52, 0.72, 0.23, 0.23, 180, 540)])],
    7: [line((0.15, 0.05), (0.85, 0.05), (0.4, 0.95))],
    8: [arc(0.5, 0.27, 0.22, 0.22, 0, 360), arc(0.5, 0.72, 0.28, 0.25, 0, 360)],
    9: [np.concatenate([arc(0.5, 0.3, 0.26, 0.25, 0, 360), line((0.76, 0.3), (0.66, 0.95))])],
}


def pen_digit(page, digit, box, rng, dpi=DPI):
    """Write ``digit`` into a box (x, y, side in pixels) of a grey page the way a pen does: its own
    size, place, slant, wobble and stroke width (0.4-0.9 mm), dark but not black."""
    x, y, side = box
    height = side * rng.uniform(0.5, 0.7)
    width = height * rng.uniform(0.55, 0.75)
    slant = rng.uniform(-0.3, 0.3)
    left = x + side / 2 - width / 2 + rng.uniform(-0.08, 0.08) * side
    top = y + side / 2 - height / 2 + rng.uniform(-0.08, 0.08) * side
    thickness = max(2, round(rng.uniform(0.4, 0.9) * dpi / 25.4))
    ink = int(rng.integers(20, 70))
    for stroke in STROKES[digit]:
        points = stroke + rng.normal(0, 0.012, stroke.shape)
        px = left + (points[:, 0] - slant * (points[:, 1] - 0.5)) * width
        py = top + points[:, 1] * height
        cv2.polylines(page, [np.round(np.stack([px, py], 1) * 16).astype(np.int32)], False, ink, thickness,
                      cv2.LINE_AA, shift=4)  # fmt: skip


def box_pixels(layout: FormLayout, row: int, col: int, dpi=DPI):
    scale = dpi / 25.4
    x, y = layout.box_origin(row, col) + layout.line_mm
    return x * scale, y * scale, (layout.box_mm - 2 * layout.line_mm) * scale


def filled_in(page, layout, empty, rng, dpi=DPI):
    """The printed page with a pen digit in every box but those in ``empty``, each the digit of its label."""
    page = page.copy()
    labels = layout.grid().cell_labels()
    for row in range(layout.rows):
        for col in range(layout.cols):
            if (row, col) not in empty:
                pen_digit(page, int(labels[row, col]), box_pixels(layout, row, col, dpi), rng, dpi)
    return page


def photographed(page, rng, angle, size=(1500, 2000), quality=None, curl=6.0):
    """JPEG bytes of a phone photo of ``page`` (2-D uint8): on a darker, textured table, turned by
    ``angle`` degrees, seen in perspective (each corner moved up to 3% of the photo), curled (up to
    ``curl`` pixels), lit unevenly (a gradient, a vignette and a shadow: 35-100%), warm-tinted,
    blurred, grainy and JPEG-coded (quality 60-75 unless given)."""
    width, height = size
    h, w = page.shape
    fit = 0.72 * min(width, height * w / h) / w  # the page's width in the photo: room to turn it
    turn = cv2.getRotationMatrix2D((0, 0), -angle, fit)[:, :2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    centred = corners - [w / 2, h / 2]
    placed = centred @ turn.T + [width / 2, height / 2] + rng.uniform(-0.03, 0.03, (4, 2)) * [width, height]
    transform = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    lens = cv2.GaussianBlur(page.astype(np.float32), (0, 0), 0.5 / fit)  # no finer than the photo's pixels
    warped = cv2.warpPerspective(lens, transform, size, flags=cv2.INTER_LINEAR)
    on_page = cv2.warpPerspective(np.ones_like(page, np.float32), transform, size, flags=cv2.INTER_LINEAR)
    table = 110 + 25 * cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 6)
    grey = warped * on_page + table * (1 - on_page)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # A page that does not lie flat: the middle bulges by up to ``curl`` pixels, which no
    # transform of the corners straightens.
    bulge = np.sin(np.pi * xx / width) * np.sin(np.pi * yy / height)
    grey = cv2.remap(grey, xx + curl * bulge, yy + 0.6 * curl * bulge, cv2.INTER_LINEAR)
    direction = rng.uniform(0, 2 * np.pi)
    gradient = ((xx - width / 2) * np.cos(direction) + (yy - height / 2) * np.sin(direction)) / max(width, height)
    vignette = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (width**2 + height**2)
    across = (xx - width / 2) * np.cos(direction + 2) + (yy - height / 2) * np.sin(direction + 2)
    shadow = 1 / (1 + np.exp(-(across - 0.2 * width) / 30))  # a hand's or the phone's, soft-edged
    light = np.clip(1.0 + 0.8 * gradient - 0.8 * vignette - 0.3 * shadow, 0.35, 1.0)
    tint = np.array([0.86, 0.95, 1.0], np.float32)  # BGR: warm indoor light
    colour = cv2.GaussianBlur((grey * light)[:, :, None] * tint, (0, 0), 1.0)
    colour += rng.normal(0, 3, colour.shape)
    quality = int(rng.integers(60, 76)) if quality is None else quality
    ok, encoded = cv2.imencode(".jpg", np.clip(colour, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def expected_cut(filled, layout, row, col):
    """Box (row, col)'s inside as printed and written, before any photo: the cut a perfect reading gives."""
    scale, inset = DPI / 25.4, layout.line_mm / 2 + 0.8
    x, y = layout.box_origin(row, col)
    inside = slice(round((y + inset) * scale), round((y + layout.box_mm - inset) * scale))
    across = slice(round((x + inset) * scale), round((x + layout.box_mm - inset) * scale))
    side = cut_side(layout)
    return cv2.resize(filled[inside, across], (side, side), interpolation=cv2.INTER_AREA)


def standardised(images):
    """(n, pixels) float64: each image flattened, centred and scaled to unit length (a dot product of two
    is their correlation)."""
    flat = np.stack([image.ravel() for image in images]).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def longest_border_run(cell, band=3, level=160):
    """The longest run of dark pixels (below ``level``) along any edge band ``band`` pixels deep."""
    dark = cell < level
    longest = 0
    for edge in (dark[:band].any(0), dark[-band:].any(0), dark[:, :band].any(1), dark[:, -band:].any(1)):
        steps = np.diff(np.concatenate([[0], edge.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
        longest = max(longest, int((stops - starts).max()) if len(starts) else 0)
    return longest


def print_form(tmp_path, *options):
    """`digitprep form --out tmp/form.png OPTIONS`: (its page, its layout)."""
    result = invoke("form", "--out", tmp_path / "form.png", *options)
    assert result.exit_code == 0, result.output
    return decode_grey((tmp_path / "form.png").read_bytes()), read_layout(tmp_path / "form.json")


def test_the_default_form_is_ten_rows_of_eight_18_mm_boxes_and_what_does_not_fit_is_refused():
    a4 = plan_form()
    assert (a4.paper, a4.rows, a4.cols, a4.axis, a4.labels, a4.box_mm, a4.gap_mm) == (
        "a4", 10, 8, "rows", "0123456789", 18.0, 4.0
    )  # fmt: skip
    # Centred across the space beside the guide column, clear of the marker bands above and below.
    right = a4.box_origin(9, 7)[0] + a4.box_mm
    assert a4.left_mm - 18 == pytest.approx(202 - right) and a4.top_mm >= 28 and a4.box_origin(9, 0)[1] + 18 <= 269
    letter = plan_form("letter")
    assert (letter.rows, letter.cols, letter.box_mm, letter.page_mm) == (10, 8, 18.0, (215.9, 279.4))
    ten = plan_form("a4", 10, 10, "cols")  # ten columns need smaller boxes: 194 mm for 10 boxes and 9 gaps
    assert ten.box_mm == 15.8 and ten.left_mm == 8.0 and ten.grid().cell_labels()[3].tolist() == list(range(10))
    twelve = plan_form("a4", 12)  # (241 mm + a gap) / 12 rows - a gap; a ninth column then fits
    assert plan_form("a4", 4).box_mm == 18.0 and (twelve.box_mm, twelve.cols) == (16.4, 9)
    with pytest.raises(ValueError, match=r"^30 rows do not fit on A4 paper: their boxes would be 4.1 mm, under 10 mm"):
        plan_form("a4", 30)
    with pytest.raises(ValueError, match=r"^14 columns do not fit on Letter paper: their boxes would be 9.8 mm"):
        plan_form("letter", 5, 14)
    with pytest.raises(ValueError, match="must be digits"):
        plan_form("a4", 10, None, "rows", "0x")


def test_a_layout_comes_back_from_its_json_and_a_bad_one_is_one_line_naming_the_file(tmp_path):
    layout = plan_form("letter", 6, 5, "cols", "2468", 2)
    assert layout_from_json(layout.to_json()) == layout
    data = json.loads(layout.to_json())
    assert data["format"] == FORMAT and data["version"] == 1 and data["box_mm"] == layout.box_mm
    assert data["markers"] == {"dictionary": "DICT_4X4_50", "ids": [0, 1, 2, 3]}
    broken = {
        "cut.json": ("{ not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        "other.json": ('{"rows": 3}', 'not a digitprep form layout (no "format": "digitprep-form")'),
        "later.json": (json.dumps({**data, "version": 2}), "layout version 2; this digitprep reads version 1"),
        "short.json": (json.dumps({k: v for k, v in data.items() if k != "top_mm"}), "no 'top_mm'"),
        "typed.json": (json.dumps({**data, "rows": "6"}), "'rows' is '6', not a int"),
        "off.json": (json.dumps({**data, "left_mm": 150.0}), "the boxes run from 150 to "),
        "tiny.json": (json.dumps({**data, "box_mm": 6}), "box_mm 6 and gap_mm 4 must be at least 10 and 2"),
        "torn.png": (b"\x89PNG\r\n\x1a\n broken", "not a readable PNG"),
        "plain.png": (cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes(), "holds no digitprep form layout"),
        "photo.jpg": (b"\xff\xd8\xff\xe0 not text \xff", "not a form layout (neither JSON nor a form's PNG or PDF)"),
    }
    for name, (text, reason) in broken.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ValueError) as caught:
            read_layout(path)
        assert str(caught.value).startswith(f"{path}: {reason}") and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"missing.json: cannot read \(No such file or directory\)$"):
        read_layout(tmp_path / "missing.json")


@pytest.mark.parametrize("dpi", [200, 150])
def test_markers_are_found_where_they_are_drawn_and_a_covered_one_is_named(dpi):
    layout = plan_form()
    page = render_form(layout, dpi)
    assert page.shape == (round(297 * dpi / 25.4), round(210 * dpi / 25.4))
    # Drawn from the whole pixel nearest each corner's millimetres; OpenCV counts from pixel centres.
    drawn = np.round(layout.marker_corners_mm() * dpi / 25.4) - 0.5
    assert np.abs(find_markers(page) - drawn).max() < 0.5
    page[-300:, -300:] = 255  # marker 2, bottom right, torn off
    with pytest.raises(ValueError) as caught:
        find_markers(page, "scan.png")
    assert str(caught.value) == (
        "scan.png: found markers 0, 1, 3 of 0-3; photograph the whole form, with its four corner squares"
    )


def test_the_form_command_writes_the_form_and_its_layout_and_refuses_other_endings_first(tmp_path):
    result = invoke("form", "--out", tmp_path / "form.pdf")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"wrote {tmp_path / 'form.pdf'} and {tmp_path / 'form.json'} (10x8 boxes, A4); after filling it in:"
        f" digitprep slice PHOTO... --form {tmp_path / 'form.json'} --out-dir DIR\n"
    )
    layout = read_layout(tmp_path / "form.json")
    assert layout == plan_form() and read_layout(tmp_path / "form.pdf") == layout  # the PDF carries it too
    pdf = (tmp_path / "form.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/MediaBox [ 0 0 595.44 842.04 ]" in pdf  # A4: 1654 x 2339 px at 200 dpi
    result = invoke("form", "--out", tmp_path / "letter.png", "--paper", "letter", "--rows", 6, "--cols", 5,
                    "--labels", "cols=2468", "--repeat", 2, "--dpi", 150)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(6x5 boxes, Letter)" in result.output
    png = Image.open(tmp_path / "letter.png")
    assert png.mode == "L" and png.size == (round(215.9 * 150 / 25.4), round(279.4 * 150 / 25.4))
    assert np.round(png.info["dpi"]).tolist() == [150, 150]  # kept as pixels a metre: 5906
    layout = read_layout(tmp_path / "letter.json")
    assert layout_from_json(png.text[FORMAT]) == layout == plan_form("letter", 6, 5, "cols", "2468", 2)
    assert read_layout(tmp_path / "letter.png") == layout  # the form itself serves as its layout
    assert np.array_equal(np.asarray(png), render_form(layout, 150))
    before = sorted(p.name for p in tmp_path.iterdir())
    for name in ("form.jpg", "form"):
        result = invoke("form", "--out", tmp_path / name)
        assert result.exit_code == 2 and "Invalid value for '--out'" in result.output
        assert "a form is written as .pdf or .png" in result.output
    with pytest.raises(ValueError, match=r"form.svg: a form is written as .pdf or .png, not .svg$"):
        write_form(tmp_path / "form.svg", layout)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even the JSON
    result = invoke("form", "--out", tmp_path / "big.pdf", "--rows", 10, "--cols", 20)
    assert result.exit_code == 1 and not (tmp_path / "big.json").exists()
    assert result.output == (
        "Error: 20 columns do not fit on A4 paper: their boxes would be 5.4 mm, under 10 mm; ask for fewer columns\n"
    )


CASES = [(0, -15), (1, -7), (2, 0), (3, 8), (4, 15), (5, 180)]  # (seed, degrees); 180: taken upside down


@pytest.mark.parametrize(("seed", "angle"), CASES)
def test_a_phone_photo_of_a_filled_in_form_comes_back_labelled_without_its_lines(tmp_path, seed, angle):
    page, layout = print_form(tmp_path)
    rng = np.random.default_rng(seed)
    empty = {(r, c) for r in range(layout.rows) for c in range(layout.cols) if rng.random() < 0.15}
    filled = filled_in(page, layout, empty, rng)
    (tmp_path / "photo.jpg").write_bytes(photographed(filled, rng, angle))
    out = tmp_path / "cut"
    result = invoke("slice", tmp_path / "photo.jpg", "--form", tmp_path / "form.json", "--out-dir", out)
    assert result.exit_code == 0, result.output
    boxes = [(r, c) for r in range(10) for c in range(8)]
    assert result.output.endswith(
        f"wrote {80 - len(empty)} PNGs to {out} from 1 of 1 pages; skipped {len(empty)} empty cells"
        f" (see {out / 'slice.skipped.csv'})\n"
    )
    # Every filled box under its row's digit, named by its place; the empty ones listed.
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f"{r}/photo_{r}_{c}.png" for r, c in boxes if (r, c) not in empty)
    with open(out / "slice.skipped.csv", newline="") as handle:
        listed = list(csv.reader(handle))
    assert listed == [["page", "row", "col", "reason"]] + [
        [str(tmp_path / "photo.jpg"), str(r), str(c), "no ink"] for r, c in sorted(empty)
    ]
    side = cut_side(layout)
    written_boxes = [box for box in boxes if box not in empty]
    truth = standardised([255 - expected_cut(filled, layout, r, c).astype(np.float32) for r, c in written_boxes])
    for r, c in boxes:
        if (r, c) in empty:
            continue
        cell = cv2.imread(str(out / str(r) / f"photo_{r}_{c}.png"), cv2.IMREAD_UNCHANGED)
        assert cell.shape == (side, side) and cell.dtype == np.uint8
        # No printed line: no dark run along an edge longer than a fifth of the side...
        assert longest_border_run(cell) < side // 5, (r, c)
        # ...and it is that box's digit: it matches what was written there best of all the boxes.
        match = truth @ standardised([255 - cell.astype(np.float32)])[0]  # correlations with every box written
        best = int(np.argmax(match))
        assert written_boxes[best] == (r, c) and match[best] > 0.7, (r, c, written_boxes[best], match[best])
    # The empty boxes come out as paper: nothing darker than a faint shade.
    cells = read_form(decode_grey((tmp_path / "photo.jpg").read_bytes()), layout)
    assert min(int(cells[r, c].min()) for r, c in empty) > 200
    assert blank_cells(cells)[tuple(np.array(sorted(empty)).T)].all()


def test_a_page_whose_marker_is_covered_fails_alone_and_build_reads_the_other(tmp_path):
    page, layout = print_form(
        tmp_path, "--paper", "letter", "--rows", 4, "--cols", 6, "--labels", "cols=147", "--repeat", 2
    )
    rng = np.random.default_rng(11)
    filled = filled_in(page, layout, {(0, 0), (3, 5)}, rng)
    (tmp_path / "good.jpg").write_bytes(photographed(filled, rng, 4))
    thumb = filled.copy()
    height, width = thumb.shape
    cv2.ellipse(thumb, (width - 60, height - 90), (170, 110), 30, 0, 360, 150, -1)  # a thumb over marker 2
    (tmp_path / "thumb.jpg").write_bytes(photographed(thumb, rng, -4))
    out = tmp_path / "cut"
    result = invoke("slice", tmp_path / "thumb.jpg", tmp_path / "good.jpg", "--form", tmp_path / "form.json",
                    "--out-dir", out, "--sheet", tmp_path / "sheet.png")  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: {tmp_path / 'thumb.jpg'}: found markers 0, 1, 3 of 0-3; photograph the whole form,"
        " with its four corner squares"
    ]
    assert f"wrote 22 PNGs to {out} from 1 of 2 pages; skipped 2 empty cells" in result.output
    # cols=147 --repeat 2: columns 0-1 hold 1s, 2-3 4s, 4-5 7s.
    counts = {label: len(list((out / label).glob("good_*.png"))) for label in ("1", "4", "7")}
    assert counts == {"1": 7, "4": 8, "7": 7} and cv2.imread(str(tmp_path / "sheet.png")) is not None
    built = invoke("build", out, "--labels", "folder", "--sizes", "20", "--out", tmp_path / "d.csv")
    assert built.exit_code == 0, built.output
    data = read_dataset(tmp_path / "d.csv")
    assert np.bincount(data.labels, minlength=10).tolist() == [0, 7, 0, 0, 8, 0, 0, 7, 0, 0]
    paths = data.column("path")
    assert all(path.split("/")[-2] == str(label) for path, label in zip(paths, data.labels.tolist()))
    # Each a digit's worth of ink (MNIST's 20x20 digits cover 10-25% of their box), strong and nothing more.
    assert all(image.max() > 150 and 0.05 < (image > 0).mean() < 0.3 for image in data.pixels.reshape(-1, 20, 20))


def test_a_fine_scan_is_reduced_before_it_is_straightened():
    layout = plan_form("a4", 3, 3)
    page = filled_in(render_form(layout, 450), layout, {(1, 1)}, np.random.default_rng(3), dpi=450)
    cells = read_form(page, layout)
    assert blank_cells(cells).tolist() == [[False] * 3, [False, True, False], [False] * 3]
    assert max(longest_border_run(cell) for cell in cells.reshape(-1, *cells.shape[2:])) < cells.shape[-1] // 5


def test_trimming_drops_edge_rows_that_hold_a_line_and_no_more():
    cut = np.full((40, 40), 250, np.uint8)
    cut[:2] = 60  # a line's remnant along the top
    cut[:, -1] = 90  # and a fainter one down the right
    cut[10:30, 18:22] = 30  # a stroke in the middle
    assert trimmed(cut).shape == (38, 39) and trimmed(cut)[8:28, 18:22].max() == 30
    stroke = np.full((40, 40), 250, np.uint8)
    stroke[0:16, 0:4] = 20  # a digit's own stroke at the edge, along under half the side: kept
    assert trimmed(stroke).shape == (40, 40)
    full = np.zeros((40, 40), np.uint8)  # all ink: trimmed TRIM_MM (6 px) a side at most
    assert trimmed(full).shape == (28, 28)


@pytest.mark.parametrize("other", [("letter", 10), ("a4", 10, 7), ("a4", 12)])
def test_the_layout_of_another_form_is_refused_rather_than_cut_wrong(other):
    layout = plan_form()
    page = filled_in(render_form(layout), layout, set(), np.random.default_rng(5))
    assert read_form(page, layout).shape == (10, 8, 128, 128)
    wrong = plan_form(*other)  # every form has the same four markers: only the boxes tell them apart
    with pytest.raises(ValueError) as caught:
        read_form(page, wrong, "scan.png")
    assert re.fullmatch(
        rf"scan.png: only \d+% of the box lines are where the layout has them; is this the form that layout"
        rf" \({wrong.rows}x{wrong.cols} boxes, {wrong.paper_name}\) was written with\?",
        str(caught.value),
    )


def near_line_strokes(page, layout, gap_mm):
    """Box (0, c)'s digit written ``gap_mm`` inside one of its lines (c = 0: a bar under the top
    line, 1: a foot over the bottom one, 2: a stem beside the left one, 3: beside the right one),
    0.6 mm thick and along 70% of the side, as a 7's bar or a 2's foot written large; (the page,
    which side of each box holds the stroke)."""
    page, scale = page.copy(), DPI / 25.4
    sides = ["top", "bottom", "left", "right"]
    width = 0.6
    for col, side in enumerate(sides):
        x, y = layout.box_origin(0, col)
        inner = layout.line_mm / 2 + gap_mm + width / 2  # from the line's centre to the stroke's
        low, high = 0.15 * layout.box_mm, 0.85 * layout.box_mm
        if side in ("top", "bottom"):
            at = y + (inner if side == "top" else layout.box_mm - inner)
            ends = (x + low, at), (x + high, at)
        else:
            at = x + (inner if side == "left" else layout.box_mm - inner)
            ends = (at, y + low), (at, y + high)
        (x0, y0), (x1, y1) = ends
        points = np.round(np.array([[x0, y0], [x1, y1]]) * scale * 16).astype(np.int32)
        cv2.polylines(page, [points], False, 30, max(1, round(width * scale)), cv2.LINE_AA, shift=4)
    return page, sides


@pytest.mark.parametrize("gap_mm", [0.8, 1.5])
@pytest.mark.parametrize("photo", [False, True])
def test_a_long_stroke_written_close_inside_a_line_is_kept_and_the_line_is_not(tmp_path, gap_mm, photo):
    page, layout = print_form(tmp_path)
    written, sides = near_line_strokes(page, layout, gap_mm)
    rng = np.random.default_rng(7)
    if photo:
        (tmp_path / "p.jpg").write_bytes(photographed(written, rng, angle=8, quality=75))
    else:
        assert cv2.imwrite(str(tmp_path / "p.jpg"), written)  # a flat scan
    cells = read_form(decode_grey((tmp_path / "p.jpg").read_bytes()), layout)
    side = cut_side(layout)
    for col, where in enumerate(sides):
        dark = cells[0, col] < 128
        # The stroke: a run along 60% or more of the side, within the quarter of the cut next to its line.
        band = {"top": dark[: side // 4], "bottom": dark[-side // 4 :], "left": dark[:, : side // 4].T,
                "right": dark[:, -side // 4 :].T}[where]  # fmt: skip
        assert band.mean(axis=1).max() >= 0.6, (where, band.mean(axis=1).max())
        # The printed lines: none left along the other three edges (which hold paper only).
        edges = {"top": dark[:3], "bottom": dark[-3:], "left": dark[:, :3].T, "right": dark[:, -3:].T}
        assert all(not edge.any() for name, edge in edges.items() if name != where), where


def test_empty_boxes_in_a_deep_shadow_are_empty_and_the_digits_beside_them_are_cut(tmp_path):
    page, layout = print_form(tmp_path)
    empty = {(9, 0), (9, 1), (8, 0), (7, 0), (6, 1), (0, 7)}
    rng = np.random.default_rng(0)
    photo = decode_grey(photographed(filled_in(page, layout, empty, rng), rng, angle=-6, size=(1200, 1600)))
    # A hard shadow over the left half, down to a quarter of the light, blurred and coded coarsely again:
    # the paper test alone took the JPEG blocks of box (9, 1) for ink.
    x = np.arange(photo.shape[1], dtype=np.float32)[None, :]
    shade = 0.25 + 0.75 / (1 + np.exp(-(x - 0.45 * photo.shape[1]) / 15))
    dark = cv2.GaussianBlur(photo * shade, (0, 0), 1.5).astype(np.uint8)
    (tmp_path / "dark.jpg").write_bytes(cv2.imencode(".jpg", dark, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes())
    out = tmp_path / "cut"
    result = invoke("slice", tmp_path / "dark.jpg", "--form", tmp_path / "form.json", "--out-dir", out)
    assert result.exit_code == 0, result.output
    with open(out / "slice.skipped.csv", newline="") as handle:
        listed = {(int(row[1]), int(row[2])) for row in list(csv.reader(handle))[1:]}
    assert listed == empty
    assert len(list(out.rglob("*.png"))) == 80 - len(empty)


def test_a_form_too_short_for_its_labels_says_which_digits_have_no_box(tmp_path):
    result = invoke("form", "--out", tmp_path / "f.png", "--rows", 12, "--repeat", 2)
    assert result.exit_code == 0
    assert "note: digits 6 7 8 9 have no box: 10 digits x --repeat 2 need 20 rows" in result.output
    full = invoke("form", "--out", tmp_path / "g.png", "--rows", 10, "--labels", "rows=01234", "--repeat", 2)
    assert full.exit_code == 0 and "note:" not in full.output
    one = invoke("form", "--out", tmp_path / "h.png", "--rows", 9)
    assert "note: digit 9 has no box: 10 digits x --repeat 1 need 10 rows" in one.output
    # One column per digit by default when the digits run along the columns, as rows do along rows.
    columns = invoke("form", "--out", tmp_path / "c.png", "--labels", "cols=0123456789")
    assert columns.exit_code == 0 and "(10x10 boxes, A4)" in columns.output and "note:" not in columns.output
