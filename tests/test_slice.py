"""`digitprep slice`: grid sheets cut into labelled PNGs, the labels from each cell's position."""

import csv

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, write_image

from digitprep.cli import main
from digitprep.csvio import read_dataset
from digitprep.slice import Grid, cut_cells, parse_grid, parse_labels

CELL = 40  # pixels a side of the synthetic cells


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def grid_sheet(digits: list[list[str | None]], cell: int = CELL) -> np.ndarray:
    """A white page of len(digits) x len(digits[0]) cells, each holding its drawn digit (None: left empty);
    every cell drawn differently (the digit's place and stroke move), so a mix-up would show."""
    rows, cols = len(digits), len(digits[0])
    page = np.full((rows * cell, cols * cell), 255, np.uint8)
    for r, row in enumerate(digits):
        for c, text in enumerate(row):
            if text is not None:
                at = (6 + (r + c) % 5, 32 - (r * cols + c) % 4)
                page[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = drawn_digit(
                    text, canvas=cell, at=at, scale=1.0, thickness=2 + (c % 2)
                )
    return page


def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_cut_cells_are_the_page_pixels_in_row_major_order():
    page = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)
    cells = cut_cells(page, 3, 2, "p.png")
    assert cells.shape == (3, 2, 2, 4)
    assert np.array_equal(cells[1, 1], page[2:4, 4:8]) and np.array_equal(cells[2, 0], page[4:6, 0:4])
    with pytest.raises(ValueError, match=r"^p.png: 8 px wide is not 3 columns of whole pixels; check --grid$"):
        cut_cells(page, 2, 3, "p.png")
    with pytest.raises(ValueError, match=r"^p.png: 6 px high is not 4 rows of whole pixels; check --grid$"):
        cut_cells(page, 4, 2, "p.png")


def test_labels_follow_rows_or_columns_with_repeat_and_cycle():
    assert Grid(4, 2, "rows", "01").cell_labels().tolist() == [[0, 0], [1, 1], [0, 0], [1, 1]]
    assert Grid(1, 7, "cols", "357", 2).cell_labels().tolist() == [[3, 3, 5, 5, 7, 7, 3]]
    digits_png = Grid(50, 100, "rows", "0123456789", 5).cell_labels()
    assert digits_png[:, 0].tolist() == [i // 5 for i in range(50)] and (digits_png == digits_png[:, :1]).all()
    assert parse_grid(" 50x100") == (50, 100) and parse_labels("cols=21") == ("cols", "21")
    for bad in ("50", "0x3", "5x"):
        with pytest.raises(ValueError, match="is not ROWSxCOLS"):
            parse_grid(bad)
    with pytest.raises(ValueError, match="is not rows=DIGITS"):
        parse_labels("row=012")
    with pytest.raises(ValueError, match="must be digits"):
        Grid(2, 2, "rows", "ab")


def test_every_filled_cell_lands_under_its_label_with_its_pixels_and_empty_cells_are_listed(tmp_path):
    layout = [["0", "0", None, "0"], ["1", "1", "1", "1"], ["2", None, "2", "2"]]
    page = grid_sheet(layout)
    write_image(tmp_path / "sheet.png", page)
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "sheet.png", "--out-dir", out, "--grid", "3x4", "--labels", "rows=012", "--sheet",
        tmp_path / "cut.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote 10 PNGs to {out} from 1 of 1 pages; skipped 2 empty cells" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = [f"{r}/sheet_{r}_{c}.png" for r in range(3) for c in range(4) if layout[r][c] is not None]
    assert written == sorted(expected)
    for r in range(3):
        for c in range(4):
            if layout[r][c] is not None:
                cell = page[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
                assert np.array_equal(read_png(out / str(r) / f"sheet_{r}_{c}.png"), cell)
    with open(out / "slice.skipped.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["page", "row", "col", "reason"], [str(tmp_path / "sheet.png"), "0", "2", "no ink"],
                    [str(tmp_path / "sheet.png"), "2", "1", "no ink"]]  # fmt: skip
    sheet = read_png(tmp_path / "cut.png")
    assert sheet.ndim == 2 and sheet.shape[0] > 3 * CELL  # one row per label, cells magnified at least once
    # What slice writes is what build reads with folder labels.
    built = invoke("build", out, "--labels", "folder", "--sizes", "20", "--out", tmp_path / "d.csv")
    assert built.exit_code == 0, built.output
    data = read_dataset(tmp_path / "d.csv")
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]


def test_a_page_that_does_not_fit_is_one_line_and_the_other_pages_are_still_cut(tmp_path):
    page = grid_sheet([["5", "6"], ["5", "6"]])
    write_image(tmp_path / "good.png", page)
    write_image(tmp_path / "wide.png", np.pad(page, ((0, 0), (0, 1)), constant_values=255))
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "cut"
    pages = [tmp_path / "wide.png", tmp_path / "broken.png", tmp_path / "good.png"]
    result = invoke("slice", *pages, "--out-dir", out, "--grid", "2x2", "--labels", "cols=56")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors[0] == f"Error: {tmp_path / 'wide.png'}: 81 px wide is not 2 columns of whole pixels; check --grid"
    assert errors[1].startswith(f"Error: {tmp_path / 'broken.png'}: ") and len(errors) == 2
    assert f"wrote 4 PNGs to {out} from 1 of 3 pages" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["5/good_0_0.png", "5/good_1_0.png", "6/good_0_1.png", "6/good_1_1.png"]
    assert np.array_equal(read_png(out / "6" / "good_1_1.png"), page[CELL:, CELL:])


def test_no_page_cut_writes_nothing_and_fails(tmp_path):
    write_image(tmp_path / "odd.png", grid_sheet([["1", "2", "3"]]))
    result = invoke(
        "slice", tmp_path / "odd.png", "--out-dir", tmp_path / "cut", "--grid", "1x7", "--labels", "cols=12"
    )
    assert result.exit_code == 1 and "120 px wide is not 7 columns" in result.output
    assert not (tmp_path / "cut").exists()


def test_pages_cut_a_batch_at_a_time_add_up_and_a_page_cut_again_replaces_its_own_cuts(tmp_path):
    out = tmp_path / "cut"
    write_image(tmp_path / "p.png", grid_sheet([["4", "9"]]))
    write_image(tmp_path / "q.png", grid_sheet([["4", None]]))
    write_image(out / "4" / "mine.png", drawn_digit("4"))  # a person's own files stay where they are
    write_image(out / "notes" / "keep.png", drawn_digit("1"))
    first = invoke(
        "slice", tmp_path / "p.png", tmp_path / "q.png", "--out-dir", out, "--grid", "1x2", "--labels", "cols=49"
    )
    assert first.exit_code == 0, first.output
    assert "wrote 3 PNGs to" in first.output and "skipped 1 empty cell (see" in first.output
    assert "kept 1 PNG of other pages already there" in first.output
    # p again, its labels the other way round: its old cuts go (9/p_0_1 too), q's and the rest stay.
    again = invoke("slice", tmp_path / "p.png", "--out-dir", out, "--grid", "1x2", "--labels", "cols=94")
    assert again.exit_code == 0, again.output
    assert (
        f"wrote 2 PNGs to {out} from 1 of 1 pages; kept 2 PNGs of other pages already there; replaced 2 PNGs an"
        " earlier run cut from pages of these names"
    ) in again.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "4/mine.png", "4/p_0_1.png", "4/q_0_0.png", "9/p_0_0.png", "notes/keep.png"
    ]  # fmt: skip
    with open(out / "slice.skipped.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["page", "row", "col", "reason"],
            [str(tmp_path / "q.png"), "0", "1", "no ink"],
        ]
    # A page that now fails keeps its earlier cuts; a run that cuts nothing changes nothing.
    (tmp_path / "q.png").write_bytes(b"not an image")
    failed = invoke("slice", tmp_path / "q.png", "--out-dir", out, "--grid", "1x2", "--labels", "cols=49")
    assert failed.exit_code == 1 and (out / "4" / "q_0_0.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_two_pages_of_one_name_are_refused_before_anything_is_written(tmp_path):
    for folder in "ab":
        write_image(tmp_path / folder / "p.png", grid_sheet([["1"]]))
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "a/p.png", tmp_path / "b/p.png", "--out-dir", out, "--grid", "1x1", "--labels", "rows=1"
    )
    assert result.exit_code == 1 and not out.exists()
    assert f"Error: {tmp_path / 'b/p.png'}: has the same name as {tmp_path / 'a/p.png'}" in result.output


def test_repeat_and_cols_label_runs_of_columns(tmp_path):
    labels = "3", "3", "8", "8", "3", "3"  # cols=38 --repeat 2 over six columns: 3 3 8 8 3 3
    page = grid_sheet([list(labels), list(labels)])
    write_image(tmp_path / "runs.png", page)
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "runs.png", "--out-dir", out, "--grid", "2x6", "--labels", "cols=38", "--repeat", 2
    )
    assert result.exit_code == 0, result.output
    for r in range(2):
        for c in range(6):
            cell = page[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
            assert np.array_equal(read_png(out / labels[c] / f"runs_{r}_{c}.png"), cell)
    assert sorted(p.name for p in out.iterdir()) == ["3", "8", "slice.skipped.csv"]


def test_a_bad_grid_or_labels_option_is_one_line_naming_it(tmp_path):
    write_image(tmp_path / "p.png", grid_sheet([["1"]]))
    result = invoke("slice", tmp_path / "p.png", "--out-dir", tmp_path / "o", "--grid", "3by4", "--labels", "rows=1")
    assert result.exit_code != 0 and "--grid" in result.output and "is not ROWSxCOLS" in result.output
    result = invoke("slice", tmp_path / "p.png", "--out-dir", tmp_path / "o", "--grid", "1x1", "--labels", "rows=ab")
    assert result.exit_code == 1 and "must be digits" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_a_digits_png_layout_of_mnist_comes_back_with_its_labels(t10k, tmp_path):
    images, labels = t10k
    # digits.png's layout: 50 rows of 100 digits of 20x20, five rows per digit 0-9.
    order = np.concatenate([np.flatnonzero(labels == d)[:500] for d in range(10)])
    small = np.stack([cv2.resize(images[i], (20, 20), interpolation=cv2.INTER_AREA) for i in order])
    page = small.reshape(50, 100, 20, 20).transpose(0, 2, 1, 3).reshape(1000, 2000)
    write_image(tmp_path / "digits.png", page)
    out = tmp_path / "cut"
    result = invoke(
        "slice", tmp_path / "digits.png", "--out-dir", out, "--grid", "50x100", "--labels", "rows=0123456789",
        "--repeat", 5,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote 5000 PNGs to {out} from 1 of 1 pages" in result.output
    assert np.array_equal(read_png(out / "7" / "digits_36_42.png"), small[36 * 100 + 42])
    built = invoke("build", out, "--labels", "folder", "--sizes", "20", "--out", tmp_path / "d.csv")
    assert built.exit_code == 0, built.output
    data = read_dataset(tmp_path / "d.csv")
    assert np.bincount(data.labels, minlength=10).tolist() == [500] * 10
    paths = data.column("path")
    assert all(path.split("/")[-2] == str(label) for path, label in zip(paths, data.labels.tolist()))


def test_one_layout_is_asked_for_and_a_grid_needs_its_labels(tmp_path):
    write_image(tmp_path / "p.png", grid_sheet([["1"]]))
    base = ["slice", tmp_path / "p.png", "--out-dir", tmp_path / "o"]
    for extra, message in (
        ([], "give exactly one of --grid ROWSxCOLS, --layout rows or --form FORM.json"),
        (["--grid", "1x1", "--layout", "rows", "--labels", "rows=1"], "give exactly one of --grid"),
        (["--grid", "1x1"], "--grid needs --labels rows=DIGITS or cols=DIGITS"),
    ):
        result = invoke(*base, *extra)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "o").exists()
