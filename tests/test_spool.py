"""The spool: workers' output text handed to the main process through files."""

import errno
import os

import pytest

from digitprep.spool import Spooled, SpoolReader, SpoolWriter, make_spool, remove_spool


@pytest.fixture
def spool(tmp_path):
    folder = make_spool(tmp_path / "out" / "d.csv")
    yield folder
    remove_spool(folder)


def copy_all(reader, pieces, target):
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"head\n")
        for piece in pieces:
            reader.copy(piece, fd)
        os.write(fd, b"tail\n")
    finally:
        os.close(fd)
    return target.read_bytes()


def test_spool_folder_is_private_hidden_and_beside_the_output(tmp_path, spool):
    assert os.path.dirname(spool) == str(tmp_path / "out")
    assert os.path.basename(spool).startswith(".d.csv.") and spool.endswith(".spool")
    assert os.stat(spool).st_mode & 0o777 == 0o700
    remove_spool(spool)
    assert list((tmp_path / "out").iterdir()) == []


def test_ranges_come_back_exactly_in_any_order(tmp_path, spool):
    writer = SpoolWriter(spool)
    texts = [b"1,2,3\n" * 1000, b"", b"x" * 70001, b"last\n"]
    pieces = [writer.put(text) for text in texts]
    assert [p.offset for p in pieces] == [0, 6000, 6000, 76001] and pieces[1].length == 0
    assert os.listdir(spool) == [f"{os.getpid()}-0.part"]
    reader = SpoolReader(spool)
    order = [3, 0, 2, 1]
    expected = b"head\n" + b"".join(texts[i] for i in order) + b"tail\n"
    assert copy_all(reader, [pieces[i] for i in order], tmp_path / "a") == expected
    reader.kernel_copy = False  # the read-and-write path gives the same bytes
    assert copy_all(reader, [pieces[i] for i in order], tmp_path / "b") == expected
    reader.close()


def test_a_file_system_that_cannot_copy_falls_back_to_read_and_write(tmp_path, spool, monkeypatch):
    writer = SpoolWriter(spool)
    pieces = [writer.put(b"abc" * 100), writer.put(b"defg")]

    def cannot(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cannot, raising=False)
    reader = SpoolReader(spool)
    assert copy_all(reader, pieces, tmp_path / "c") == b"head\n" + b"abc" * 100 + b"defgtail\n"
    assert not reader.kernel_copy
    reader.close()


def test_a_range_past_the_end_of_its_file_is_an_error(tmp_path, spool):
    SpoolWriter(spool).put(b"short")
    reader = SpoolReader(spool)
    with pytest.raises(OSError, match="shorter than expected"):
        copy_all(reader, [Spooled(f"{os.getpid()}-0.part", 2, 10)], tmp_path / "d")
    reader.kernel_copy = False
    with pytest.raises(OSError, match="shorter than expected"):
        copy_all(reader, [Spooled(f"{os.getpid()}-0.part", 2, 10)], tmp_path / "e")
    reader.close()


def test_a_worker_moves_to_a_new_file_and_copied_files_are_deleted(tmp_path, spool):
    writer = SpoolWriter(spool, file_limit=10)
    texts = [b"abcdef", b"ghijkl", b"mn", b"opqrstuvwxyz", b"!"]
    pieces = [writer.put(text) for text in texts]
    pid = os.getpid()
    assert [p.part for p in pieces] == [f"{pid}-{n}.part" for n in (0, 0, 1, 1, 2)]
    assert sorted(os.listdir(spool)) == [f"{pid}-{n}.part" for n in range(3)]
    other = Spooled("1-0.part", 0, 3)  # another worker's file stays until its own next one
    with open(os.path.join(spool, other.part), "wb") as handle:
        handle.write(b"xyz")
    reader = SpoolReader(spool)
    assert copy_all(reader, [*pieces[:2], other], tmp_path / "a") == b"head\nabcdefghijklxyztail\n"
    assert sorted(os.listdir(spool)) == ["1-0.part"] + [f"{pid}-{n}.part" for n in range(3)]
    assert copy_all(reader, pieces[2:], tmp_path / "b") == b"head\nmnopqrstuvwxyz!tail\n"
    assert sorted(os.listdir(spool)) == ["1-0.part", f"{pid}-2.part"]  # 0 and 1 copied whole: gone
    reader.close()
