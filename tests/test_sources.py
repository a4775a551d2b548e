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


def test_natural_order_puts_numbers_in_order_and_ties_in_text_order():
    from digitprep.sources import natural_key

    assert sorted(["10.txt", "9.txt", "100.txt", "0.txt", "11.txt"], key=natural_key) == [
        "0.txt", "9.txt", "10.txt", "11.txt", "100.txt",
    ]  # fmt: skip
    assert sorted(["b10.png", "7.png", "a.png", "07.png", "b9.png"], key=natural_key) == [
        "07.png", "7.png", "a.png", "b9.png", "b10.png",
    ]  # fmt: skip


def test_symlinked_class_folders_are_followed_and_loops_reported(tmp_path):
    touch(tmp_path / "real" / "7" / "a.png")
    touch(tmp_path / "src" / "1" / "b.png")
    os.symlink("../real/7", tmp_path / "src" / "7")
    os.symlink("..", tmp_path / "src" / "1" / "up")  # a loop back to src
    os.symlink("1", tmp_path / "src" / "7x")  # the same folder twice
    found = find_candidates([tmp_path / "src"], "auto")
    rows = [(c.display.rsplit("src/", 1)[1], c.label, c.problem) for c in found]
    assert rows == [
        ("1/b.png", 1, None),
        ("1/up", None, "folder reached again through a symbolic link: not walked"),
        ("7/a.png", 7, None),
        ("7x", None, "folder reached again through a symbolic link: not walked"),
    ]


def test_names_that_are_not_utf8_are_kept_and_shown_escaped(tmp_path):
    (tmp_path / "3").mkdir()
    with open(os.path.join(os.fsencode(tmp_path), b"3", b"caf\xe9.png"), "wb") as handle:
        handle.write(b"x")
    (c,) = find_candidates([tmp_path], "folder")
    assert c.display.endswith("3/caf\\xe9.png") and c.label == 3 and c.problem is None
    assert open(c.path, "rb").read() == b"x"  # the path itself still opens the file
    c.display.encode("utf-8")  # and what is shown can be written anywhere


def test_deep_folders_are_walked_without_recursion(tmp_path):
    deep = str(tmp_path)
    for _ in range(990):  # os.makedirs would itself recurse
        deep += "/d"
        os.mkdir(deep)
    with open(os.path.join(deep, "5_20_1.png"), "wb") as handle:
        handle.write(b"x")
    try:
        (c,) = find_candidates([tmp_path], "auto")
        assert (c.label, c.tag, c.problem) == (5, "20", None)
    finally:  # bottom up: shutil.rmtree, and pytest's clean-up of old folders, would recurse
        os.remove(os.path.join(deep, "5_20_1.png"))
        while deep != str(tmp_path):
            os.rmdir(deep)
            deep = os.path.dirname(deep)
