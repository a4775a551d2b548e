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


def test_numbered_folders_are_recognised_whole_and_keep_natural_order(tmp_path):
    from digitprep.sources import natural_key, natural_sorted, plain_extension

    assert plain_extension(["10.png", "2.png", "0.png"]) == "png"
    assert plain_extension(["10.png", "2.PNG"]) is None  # two extensions
    assert plain_extension(["10.png", "02.png"]) is None  # a leading zero
    assert plain_extension(["10.png", "a2.png"]) is None
    assert plain_extension(["1.png\n2.png"]) is None  # a line break in a name is no separator
    assert plain_extension([]) is None
    names = ["10.txt", "9.txt", "100.txt", "0.txt", "11.txt"]
    assert natural_sorted(names) == ["0.txt", "9.txt", "10.txt", "11.txt", "100.txt"]
    mixed = ["b10.png", "b9.png", "07.png", "7.png", "a.png"]
    assert natural_sorted(mixed) == sorted(sorted(mixed), key=natural_key)
    assert natural_sorted(mixed) == ["07.png", "7.png", "a.png", "b9.png", "b10.png"]


def test_a_numbered_folder_of_other_files_gives_no_images(tmp_path):
    for name in ["1.txt", "2.txt", "3.TXT"]:
        touch(tmp_path / "5" / name)
    for name in ["2.JPG", "10.JPG"]:
        touch(tmp_path / "6" / name)
    found = find_candidates([tmp_path], "folder")
    assert [os.path.relpath(c.path, tmp_path) for c in found] == ["6/2.JPG", "6/10.JPG"]
