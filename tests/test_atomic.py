"""The one atomic writer: outputs appear whole and together, or not at all, and never leave litter."""

import errno
import os
import subprocess
import sys

import pytest

from digitprep.atomic import OutputError, OutputSet, sweep_stale, write_atomic, write_staged


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_nothing_is_visible_before_commit_and_an_abandoned_set_leaves_nothing(tmp_path):
    (tmp_path / "keep.csv").write_bytes(b"previous\n")
    with OutputSet() as outputs:
        outputs.open(tmp_path / "keep.csv").write(b"half a fi")
        assert (tmp_path / "keep.csv").read_bytes() == b"previous\n"
    assert names(tmp_path) == ["keep.csv"] and (tmp_path / "keep.csv").read_bytes() == b"previous\n"
    write_atomic(tmp_path / "keep.csv", b"new\n")
    assert names(tmp_path) == ["keep.csv"] and (tmp_path / "keep.csv").read_bytes() == b"new\n"


def test_committed_files_get_the_usual_permissions(tmp_path):
    write_atomic(tmp_path / "f.csv", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.csv").stat().st_mode & 0o777 == 0o666 & ~mask  # not the temporary file's 0600


def test_a_set_lands_whole_or_not_at_all_and_the_first_file_is_renamed_last(tmp_path, monkeypatch):
    files = ["a.csv", "a.manifest.csv", "a.build.json"]
    for name in files:
        (tmp_path / name).write_bytes(b"previous\n")
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr("os.replace", lambda src, dst: renamed.append(os.path.basename(dst)) or real_replace(src, dst))
    with OutputSet() as outputs:
        for name in files:
            outputs.write(tmp_path / name, b"new\n")
        outputs.commit()
    assert renamed == ["a.build.json", "a.manifest.csv", "a.csv"]
    assert names(tmp_path) == sorted(files) and all((tmp_path / n).read_bytes() == b"new\n" for n in files)

    real_fsync = os.fsync

    def full_disk(fd):  # the disk fills up while the second file is synced
        if "manifest" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OutputError) as caught, OutputSet() as outputs:
        for name in files:
            outputs.write(tmp_path / name, b"newer\n")
        outputs.commit()
    assert str(caught.value) == f"{tmp_path / 'a.manifest.csv'}: cannot write (No space left on device)"
    assert names(tmp_path) == sorted(files) and all((tmp_path / n).read_bytes() == b"new\n" for n in files)


def test_write_errors_name_the_file_and_leave_no_temporary(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(OutputError, match=r"plain/x\.csv: cannot write \(.*plain is a file, not a folder\)"):
        write_atomic(tmp_path / "plain" / "x.csv", b"x")
    assert names(tmp_path) == ["plain"]


def test_a_folder_is_staged_and_its_entries_swapped_in(tmp_path):
    out = tmp_path / "tree"
    (out / "1").mkdir(parents=True)
    (out / "1" / "old.png").write_bytes(b"old")
    (out / "mine.txt").write_text("not ours")
    with OutputSet() as outputs:
        staging = outputs.folder(out)
        (staging / "1").mkdir()
        (staging / "1" / "new.png").write_bytes(b"new")
        assert names(out) == ["1", "mine.txt"] and names(out / "1") == ["old.png"]
        outputs.commit()
    assert names(out) == ["1", "mine.txt"] and names(out / "1") == ["new.png"]
    assert names(tmp_path) == ["tree"]  # no staging folder left
    with OutputSet() as outputs:
        (outputs.folder(out) / "2").mkdir()  # abandoned: nothing changes
    assert names(out) == ["1", "mine.txt"] and names(tmp_path) == ["tree"]


def test_temporaries_of_dead_runs_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".x.csv.{dead_pid}.abc123.tmp").write_bytes(b"left by a killed run")
    (tmp_path / f".tree.{dead_pid}.k9_z.tmp").mkdir()
    (tmp_path / f".x.csv.{os.getppid()}.abc123.tmp").write_bytes(b"a live run's")
    (tmp_path / ".hidden.tmp").write_bytes(b"not ours")
    sweep_stale(tmp_path)
    assert names(tmp_path) == [".hidden.tmp", f".x.csv.{os.getppid()}.abc123.tmp"]


def test_a_staged_folder_also_removes_the_old_entries_it_replaces(tmp_path):
    out = tmp_path / "tree"
    for name in ("3", "7", "mine"):
        (out / name).mkdir(parents=True)
    with OutputSet() as outputs:
        staging = outputs.folder(out, replaces=lambda entry: entry.name.isdigit())
        write_staged(staging, out, "3/new.png", b"new")
        outputs.commit()
    assert names(out) == ["3", "mine"] and names(out / "3") == ["new.png"]  # 7 went with the old tree
    (tmp_path / "file").write_text("a file")
    with pytest.raises(OutputError, match=r"tree/x/y\.png: cannot write"), OutputSet() as outputs:
        write_staged(tmp_path / "file", out, "x/y.png", b"?")
