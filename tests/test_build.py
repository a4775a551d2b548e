"""`digitprep build` end to end on small messy folders written by the tests."""

import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, png_of_zeros, write_image

import digitprep.build as build_module
from digitprep.build import BuildConfig, Feedback, build_dataset, process_files
from digitprep.cli import main
from digitprep.csvio import read_onehot_csv
from digitprep.normalize import normalize
from digitprep.options import NormalizeOptions
from digitprep.sources import find_candidates


def run(*args):
    return CliRunner().invoke(main, ["build", *map(str, args)])


def good_folder(root):
    """Three usable digits in three flavours."""
    write_image(root / "1" / "a.png", drawn_digit("1"))  # dark ink on white, 8-bit
    light_on_dark = drawn_digit("2", ink=255, paper=0)
    write_image(root / "2" / "b.png", np.dstack([light_on_dark] * 3 + [np.full_like(light_on_dark, 255)]), mode="RGBA")
    write_image(root / "3" / "c.png", drawn_digit("3").astype(np.uint16) * 257)  # 16-bit
    return root


def add_bad_files(root):
    """One of every kind of unusable input, with the reason each must produce."""
    (root / "1" / "empty.png").write_bytes(b"")
    (root / "1" / "trunc.png").write_bytes((root / "1" / "a.png").read_bytes()[:60])
    (root / "2" / "text.png").write_text("not a picture")
    write_image(root / "2" / "blank.png", np.full((50, 50), 255, np.uint8))
    write_image(root / "9" / "nine.png", drawn_digit("9"))
    write_image(root / "misc" / "unlabelled.png", drawn_digit("4"))
    (root / "3" / "bomb.png").write_bytes(png_of_zeros(60000, 60000, rows=10))  # the header claims 3.6 G pixels
    (root / "3" / "folder.png").mkdir()
    os.symlink(root / "nowhere.png", root / "3" / "dangling.png")
    return {
        "1/empty.png": "empty file",
        "1/trunc.png": "truncated",
        "2/text.png": "not an image",
        "2/blank.png": "blank image",
        "9/nine.png": "label 9 is not in the class set",
        "misc/unlabelled.png": "no label",
        "3/bomb.png": "60000x60000",
        "3/folder.png": "is a directory",
        "3/dangling.png": "dangling symbolic link",
    }


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_bad_input_is_reported_and_good_files_still_land(in_tmp):
    src = good_folder(in_tmp / "src")
    expected = add_bad_files(src)
    result = run("src", "--sizes", 20, "--classes", "1-5", "--labels", "folder", "--center", "--out", "out.csv")
    assert result.exit_code == 0, result.output
    pixels, labels, classes = read_onehot_csv(in_tmp / "out.csv")
    assert labels.tolist() == [1, 2, 3] and classes == (1, 2, 3, 4, 5) and pixels.shape == (3, 400)
    errors = (in_tmp / "out.errors.csv").read_text().splitlines()
    assert errors[0] == "path,reason" and len(errors) == 1 + len(expected)
    reasons = dict(line.split(",", 1) for line in errors[1:])
    for name, reason in expected.items():
        assert reason in reasons[f"src/{name}"], name
    # One line per kind of reason (issue 14): the three unreadable files share one, the rest are alone.
    skip_lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert skip_lines[0] == (
        "skipped 3 files: not a readable image (e.g. src/1/empty.png, src/1/trunc.png); "
        "re-save them as PNG or JPEG, or remove them"
    )
    assert len(skip_lines) == len(expected) - 2
    assert "wrote 3 rows" in result.stderr and "skipped 9" in result.stderr
    assert "Traceback" not in result.output


def test_all_three_flavours_come_out_ink_high(in_tmp):
    good_folder(in_tmp / "src")
    assert run("src", "--sizes", 28, "--center", "--out", "o.csv").exit_code == 0
    pixels, _, _ = read_onehot_csv(in_tmp / "o.csv")
    images = pixels.reshape(-1, 28, 28)
    assert (images[:, 0, :] == 0).all() and (images[:, :, 0] == 0).all()  # background 0
    assert (images.max(axis=(1, 2)) == 255).all()  # ink 255


def test_strict_writes_nothing_and_fails(in_tmp):
    src = good_folder(in_tmp / "src")
    (src / "1" / "empty.png").write_bytes(b"")
    (in_tmp / "out.csv").write_text("previous\n")
    result = run("src", "--sizes", 8, "--strict", "--out", "out.csv")
    assert result.exit_code == 1 and "nothing written" in result.output
    assert (in_tmp / "out.csv").read_text() == "previous\n"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["out.csv", "src"]


def test_rerun_is_byte_identical_and_parallel_equals_serial(in_tmp, monkeypatch):
    src = good_folder(in_tmp / "src")
    add_bad_files(src)
    monkeypatch.setattr(build_module, "CHUNK_FILES", 2)  # several chunks over several workers
    outputs = []
    for jobs in (1, 2, 2):
        assert run("src", "--sizes", "20,8", "--deskew", "--center", "--jobs", jobs, "--out", "d.csv").exit_code == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(in_tmp.glob("d_*"))})
    assert sorted(outputs[0]) == [
        "d_20.build.json",
        "d_20.csv",
        "d_20.errors.csv",
        "d_20.manifest.csv",
        "d_8.build.json",
        "d_8.csv",
        "d_8.errors.csv",
        "d_8.manifest.csv",
    ]
    assert outputs[0] == outputs[1] == outputs[2]
    assert not list(in_tmp.glob(".d*"))  # no temporary files left behind


def test_large_images_are_decoded_a_few_at_a_time_with_the_same_result(in_tmp, monkeypatch):
    src = good_folder(in_tmp / "src")
    add_bad_files(src)
    candidates = find_candidates([src], "auto")
    config = BuildConfig((20, 8), tuple(range(10)), NormalizeOptions(deskew=True, center=True))
    whole = process_files((candidates, config))
    monkeypatch.setattr(build_module, "PIXEL_BUDGET", 1)  # every decoded image normalised on its own
    assert process_files((candidates, config)) == whole
    assert whole.written == 4 and len(whole.errors) == len(candidates) - 4  # the three good ones and nine.png


def test_the_progress_total_counts_every_file_found(in_tmp, monkeypatch):
    src = good_folder(in_tmp / "src")
    add_bad_files(src)
    monkeypatch.setattr(build_module, "CHUNK_FILES", 2)
    totals, done = [], []
    config = BuildConfig((8,), tuple(range(10)))
    feedback = Feedback(on_start=totals.append, on_progress=done.append)
    summary = build_dataset([src], in_tmp / "t.csv", config, jobs=2, feedback=feedback)
    assert totals == [len(find_candidates([src]))] == [summary.written + summary.skipped]
    assert done == [1] * totals[0]  # a step per file, from the workers


def test_manifest_describes_each_row(in_tmp):
    good_folder(in_tmp / "src")
    run("src", "--sizes", 8, "--out", "m.csv")
    lines = (in_tmp / "m.manifest.csv").read_text().splitlines()
    assert lines[0] == "path,label,tag,origin,width,height,sha256,orientation,inverted,paper,lines,stroke"
    path, label, _tag, origin, width, height, digest, *decisions = lines[1].split(",")
    import hashlib

    assert (path, label, origin, width, height) == ("src/1/a.png", "1", "src", "120", "120")
    assert digest == hashlib.sha256((in_tmp / "src/1/a.png").read_bytes()).hexdigest()
    # Dark ink on flat white paper: turned round, the paper at 0 once turned, no lines, upright.
    assert decisions == ["1", "1", "0", "", ""]
    assert lines[2].split(",")[7:] == ["1", "0", "0", "", ""]  # light ink on black: as it is


def test_labelrow_pngs(in_tmp):
    image = np.zeros((21, 20), np.uint8)
    image[0, 0], image[0, 1] = 4, 20
    image[1:, :] = 255
    image[5:18, 8:12] = 0
    write_image(in_tmp / "raw" / "anything.png", image)
    assert (
        run("raw", "--labels", "labelrow", "--sizes", 20, "--no-deskew", "--no-center", "--out", "l.csv").exit_code == 0
    )
    pixels, labels, _ = read_onehot_csv(in_tmp / "l.csv")
    assert labels.tolist() == [4]
    assert (in_tmp / "l.manifest.csv").read_text().splitlines()[1].split(",")[1:3] == ["4", "20"]
    block = pixels.reshape(20, 20)
    assert block[4:17, 8:12].min() == 255 and block[:, :7].max() == 0


def test_interrupted_build_leaves_previous_csv_untouched(in_tmp, monkeypatch):
    src = good_folder(in_tmp / "src")
    run("src", "--sizes", 8, "--out", "keep.csv")
    before = {p.name: p.read_bytes() for p in in_tmp.glob("keep*")}
    chunks = []

    def interrupted(task):  # Ctrl-C while the second chunk is being worked on
        chunks.append(task)
        if len(chunks) == 2:
            raise KeyboardInterrupt
        return process_files(task)

    monkeypatch.setattr(build_module, "CHUNK_FILES", 1)
    monkeypatch.setattr(build_module, "process_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_dataset([src], in_tmp / "keep.csv", BuildConfig((8,), tuple(range(10))), jobs=1)
    assert {p.name: p.read_bytes() for p in in_tmp.glob("keep*")} == before
    assert not list(in_tmp.glob(".keep*"))  # no temporary files left behind


def test_deskew_of_many_tall_images_of_one_size_gives_each_image_its_own_rows(in_tmp):
    # 260 images 130 px tall: more rows than cv2.remap takes at once (it used to crash the build).
    rows = np.arange(10, 120)
    for i in range(260):
        image = np.full((130, 40), 255, np.uint8)
        for dx in range(4):
            image[rows, 16 + i % 5 + ((0.1 + 0.05 * (i % 3)) * (rows - 65)).astype(int) + dx] = 0
        write_image(in_tmp / "src" / str(i % 10) / f"{i:03}.png", image)
    result = run("src", "--sizes", 20, "--deskew", "--center", "--labels", "folder", "--jobs", 1, "--out", "t.csv")
    assert result.exit_code == 0, result.output
    pixels, labels, _ = read_onehot_csv(in_tmp / "t.csv")
    assert len(labels) == 260
    paths = [line.split(",")[0] for line in (in_tmp / "t.manifest.csv").read_text().splitlines()[1:]]
    options = NormalizeOptions(deskew=True, center=True)
    for path, row in zip(paths, pixels):
        grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(row, normalize(grey, (20,), options)[0].ravel()), path


def test_an_image_too_tall_to_deskew_is_an_error_row(in_tmp):
    good_folder(in_tmp / "src")
    tall = np.zeros((33000, 8), np.uint8)
    tall[100:32000, 2:5] = 255
    tall[20000:32000, 5:7] = 255
    write_image(in_tmp / "src" / "4" / "tall.png", tall)
    result = run("src", "--sizes", 20, "--deskew", "--center", "--out", "t.csv")
    assert result.exit_code == 0, result.output
    assert "wrote 3 rows" in result.stderr and "Traceback" not in result.output
    errors = (in_tmp / "t.errors.csv").read_text().splitlines()
    assert errors[1].startswith("src/4/tall.png,too large to deskew: 8x33000 px (")


def test_bad_options_are_one_line_errors(in_tmp):
    good_folder(in_tmp / "src")
    result = run("src", "--classes", "9-1", "--out", "x.csv")
    assert result.exit_code == 2 and "runs backwards" in result.output
    result = run("src", "--pattern", "(?P<digit>\\d)", "--out", "x.csv")  # checked by click: exit 2
    assert result.exit_code == 2 and "Invalid value for '--pattern'" in result.output
    assert "has no named group 'label'" in result.output


def test_show_writes_a_contact_sheet(in_tmp):
    good_folder(in_tmp / "src")
    run("src", "--sizes", 20, "--center", "--out", "s.csv")
    result = CliRunner().invoke(main, ["show", "s.csv", "--out", "sheet.png", "--per-class", "2", "--magnify", "2"])
    assert result.exit_code == 0
    import cv2

    sheet = cv2.imread(str(in_tmp / "sheet.png"), cv2.IMREAD_GRAYSCALE)
    assert sheet.shape == (10 * 42 + 2, 40 + 2 * 42 + 2)  # 10 classes x (label + 2 tiles) of 40 px + gaps
    pixels, _, _ = read_onehot_csv(in_tmp / "s.csv")
    first_one = np.kron(pixels[0].reshape(20, 20), np.ones((2, 2), np.uint8))
    assert np.array_equal(sheet[44:84, 42:82], first_one)  # row of class 1, first tile


def test_show_source_draws_each_raw_input_beside_its_row_with_its_decisions(in_tmp):
    good_folder(in_tmp / "src")
    run("src", "--sizes", 20, "--center", "--out", "s.csv")
    (in_tmp / "src" / "3" / "c.png").unlink()  # a source gone since the build: a dark tile, said once
    args = ["show", "s.csv", "--source", "--out", "why.png", "--per-class", "1", "--magnify", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "3 rows shown beside their sources; 1 source(s) could not be read" in result.output
    sheet = cv2.imread(str(in_tmp / "why.png"), cv2.IMREAD_GRAYSCALE)
    caption = max(10, 40 // 4)
    assert sheet.shape == (10 * (40 + caption + 2) + 2, 40 + 2 + (2 * 40 + 2) + 2)
    top = 2 + 1 * (40 + caption + 2)  # class 1's row
    raw, row = sheet[top : top + 40, 42:82], sheet[top : top + 40, 84:124]
    pixels, _, _ = read_onehot_csv(in_tmp / "s.csv")
    assert np.array_equal(row, np.kron(pixels[0].reshape(20, 20), np.ones((2, 2), np.uint8)))
    assert np.array_equal(raw, cv2.resize(drawn_digit("1"), (40, 40), interpolation=cv2.INTER_AREA))
    assert sheet[top + 40 : top + 40 + caption, 42:124].max() > 200  # "inv" written under the pair
    top3 = 2 + 3 * (40 + caption + 2)
    assert (sheet[top3 : top3 + 40, 42:82] == 40).all()  # the missing source


def test_an_output_that_cannot_be_written_is_a_one_line_error(in_tmp, monkeypatch):
    from digitprep.atomic import OutputFile

    good_folder(in_tmp / "src")
    real_init = OutputFile.__init__

    class FullDisk:  # the disk fills up when the CSV's rows come
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            if data.startswith(b"0,"):
                raise OSError(28, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def init(output, path):
        real_init(output, path)
        if output.path.name == "w.csv":
            output.handle = FullDisk(output.handle)

    monkeypatch.setattr(OutputFile, "__init__", init)
    result = run("src", "--sizes", 8, "--jobs", 1, "--quiet", "--out", "w.csv")  # no 'Found' line
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: w.csv: cannot write (No space left on device)"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["src"]
    (in_tmp / "here").write_text("a file")
    result = run("src", "--sizes", 8, "--quiet", "--out", "here/w.csv")
    assert (
        result.exit_code == 1
        and result.output.strip() == "Error: here/w.csv: cannot write (here is a file, not a folder)"
    )
