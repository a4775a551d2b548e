"""Label discovery: folders, original names, patterns, and a fixed order."""

import os

from digitprep.sources import find_candidates


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_layout_and_natural_order(tmp_path):
    for name in ["3/10.png", "3/2.png", "1/5.png"]:
        touch(tmp_path / "mnist" / name)
    found = find_candidates([tmp_path / "mnist"], "folder")
    assert [(os.path.basename(c.path), c.label, c.origin) for c in found] == [
        ("5.png", 1, "mnist"),
        ("2.png", 3, "mnist"),
        ("10.png", 3, "mnist"),
    ]


def test_original_file_names_give_label_and_tag(tmp_path):
    touch(tmp_path / "4_20_7.png")
    touch(tmp_path / "2_8_a.png")
    found = find_candidates([tmp_path], "filename")
    assert [(c.label, c.tag) for c in found] == [(2, "8"), (4, "20")]


def test_auto_prefers_digit_folders_then_names(tmp_path):
    touch(tmp_path / "7" / "x.png")
    touch(tmp_path / "misc" / "5_20_1.png")
    touch(tmp_path / "misc" / "nolabel.png")
    found = {os.path.basename(c.path): c for c in find_candidates([tmp_path], "auto")}
    assert found["x.png"].label == 7
    assert (found["5_20_1.png"].label, found["5_20_1.png"].tag) == (5, "20")
    assert found["nolabel.png"].problem.startswith("no label")


def test_pattern_with_named_groups(tmp_path):
    touch(tmp_path / "digit-6-size-12.png")
    (c,) = find_candidates([tmp_path], pattern=r"digit-(?P<label>\d)-size-(?P<tag>\d+)")
    assert (c.label, c.tag, c.problem) == (6, "12", None)


def test_label_outside_classes_and_odd_entries_are_problems(tmp_path):
    touch(tmp_path / "9" / "a.png")
    (tmp_path / "1" / "dir.png").mkdir(parents=True)
    os.symlink(tmp_path / "missing.png", tmp_path / "1" / "dangling.png")
    problems = {os.path.basename(c.path): c.problem for c in find_candidates([tmp_path], "folder", classes=(1, 2))}
    assert problems == {
        "dangling.png": "dangling symbolic link",
        "dir.png": "is a directory, not an image",
        "a.png": "label 9 is not in the class set",
    }
