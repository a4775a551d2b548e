"""Progress people can read: counted file by file from the workers, as tqdm's bar on a terminal
(``N/TOTAL files, R files/s``), lines printed during the work on their own lines, nothing on a pipe."""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import drawn_digit, write_image

import digitprep.build as build_module
from digitprep.build import BuildConfig, build_dataset
from digitprep.parallel import Feedback, advance, parallel_map
from digitprep.sources import find_candidates

DIGITPREP = [sys.executable, "-m", "digitprep"]
DIGITTRAIN = [sys.executable, "-c", "from digittrain.cli import main; main()"]


def counted_items(n: int) -> int:
    """A task of ``n`` items, each told to ``advance`` as it is done."""
    for _ in range(n):
        advance()
    return n


def held_until_counted(flag: str) -> str:
    """A task that counts one item, then waits (up to 30 s) until the main process has seen that
    count and made ``flag``; so it only ends "released" if counts arrive while a task still runs."""
    advance()
    deadline = time.monotonic() + 30
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            return "the count never arrived while the task ran"
        time.sleep(0.01)
    advance()
    return "released"


def digit_folder(root: Path, per_class: int = 4) -> Path:
    for digit in range(3):
        for n in range(per_class):
            write_image(root / str(digit) / f"{n}.png", drawn_digit(str(digit), at=(20 + n, 70)))
    return root


@pytest.mark.parametrize("jobs", [1, 2])
def test_parallel_map_passes_every_count_on_once(jobs):
    counts = []
    with parallel_map(counted_items, [3, 0, 5, 1, 4], jobs, counts.append) as results:
        assert list(results) == [3, 0, 5, 1, 4]
    assert counts == [1] * 13


@pytest.mark.parametrize("jobs", [1, 2])
def test_counts_arrive_while_the_tasks_still_run(tmp_path, jobs):
    flag = tmp_path / "seen"
    counts = []

    def seen(n):
        counts.append(n)
        flag.touch()

    with parallel_map(held_until_counted, [str(flag), str(flag)], jobs, seen) as results:
        assert list(results) == ["released", "released"]
    assert sum(counts) == 4


def test_without_on_progress_advance_goes_nowhere():
    with parallel_map(counted_items, [2, 2], 2) as results:
        assert list(results) == [2, 2]


@pytest.mark.parametrize("jobs", [1, 2])
def test_build_counts_every_file_exactly_once(tmp_path, monkeypatch, jobs):
    src = digit_folder(tmp_path / "src")
    (src / "1" / "bad.png").write_text("not a picture")
    (src / "misc").mkdir()
    write_image(src / "misc" / "unlabelled.png", drawn_digit("4"))
    monkeypatch.setattr(build_module, "CHUNK_FILES", 3)
    totals, counts, skipped = [], [], []
    feedback = Feedback(lambda path, reason: skipped.append(path), totals.append, counts.append)
    summary = build_dataset(
        [src], tmp_path / "x.csv", BuildConfig((8,), tuple(range(10))), jobs=jobs, feedback=feedback
    )
    assert totals == [len(find_candidates([src]))] == [14]
    assert counts == [1] * 14  # file by file, not chunk by chunk
    assert (summary.written, summary.skipped, len(skipped)) == (12, 2, 2)


def test_a_slow_chunk_is_counted_file_by_file_before_it_ends(tmp_path, monkeypatch):
    src = digit_folder(tmp_path / "src", per_class=2)
    events = []
    decode, process = build_module.decode_file, build_module.process_files

    def slow_decode(*args):
        time.sleep(0.05)
        return decode(*args)

    def chunk(task):
        result = process(task)
        events.append(("chunk done", len(task[0])))
        return result

    monkeypatch.setattr(build_module, "decode_file", slow_decode)
    monkeypatch.setattr(build_module, "process_files", chunk)
    monkeypatch.setattr(build_module, "chunk_size", lambda items, jobs: items)
    feedback = Feedback(on_progress=lambda n: events.append(("counted", n)))
    build_dataset([src], tmp_path / "x.csv", BuildConfig((8,), tuple(range(10))), jobs=1, feedback=feedback)
    assert events == [("counted", 1)] * 6 + [("chunk done", 6)]  # one chunk of six files


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return goes back to the start of the line,
    and what follows is written over what was there."""
    lines, line, column = [], [], 0
    for char in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw):
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        else:
            line[column : column + 1] = [char]
            column += 1
    return [*lines, "".join(line).rstrip()] if line else lines


def test_screen_keeps_what_a_shorter_line_does_not_cover():
    assert screen("abcdef\rXY\n\r      \rok\r\n") == ["XYcdef", "ok"]


def on_terminal(command: list, timeout: float = 120) -> str:
    """Everything ``command`` writes to a pseudo-terminal of 100x24 (its stdin, stdout and stderr)."""
    main, other = os.openpty()
    fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(command, stdin=other, stdout=other, stderr=other)
    os.close(other)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the other side closed: the command has ended
                    break
                if not chunk:
                    break
                output += chunk
        assert process.wait(timeout=10) == 0, output.decode(errors="replace")
    finally:
        process.kill()
        os.close(main)
    return output.decode()


def test_build_on_a_terminal_shows_files_done_and_their_rate_then_the_skips(tmp_path):
    src = digit_folder(tmp_path / "src")
    (src / "1" / "bad.png").write_text("not a picture")
    raw = on_terminal([*DIGITPREP, "build", src, "--sizes", "8", "--jobs", "2", "--out", tmp_path / "x.csv"])
    lines = screen(raw)
    assert "0/13 files, ? files/s" in raw  # drawn before the first file is done
    bar = [line for line in lines if "13/13 files," in line]
    assert len(bar) == 1 and re.search(r"decoding: 100%\|.*\| 13/13 files, +[0-9.]+ files/s \[", bar[0])
    skips = [line for line in lines if "bad.png" in line]
    assert len(skips) == 1 and skips[0].startswith("skipped ") and "files/s" not in skips[0]
    assert lines[-1] == f"wrote 12 rows to {tmp_path / 'x.csv'}; skipped 1 (see {tmp_path / 'x.errors.csv'})"


def test_a_skip_line_printed_during_the_work_is_a_line_of_its_own(tmp_path):
    src = digit_folder(tmp_path / "src")
    (src / "1" / "bad.png").write_text("not a picture")
    raw = on_terminal([*DIGITPREP, "augment", src, "--out-dir", tmp_path / "aug", "--jobs", "1"])
    lines = screen(raw)
    assert f"skipped {os.path.relpath(src / '1' / 'bad.png')}: not an image (unknown file signature)" in lines
    assert any(re.search(r"augmenting: 100%\|.*\| 13/13 files, +[0-9.]+ files/s", line) for line in lines)
    assert lines[-1] == f"wrote 24 PNGs to {tmp_path / 'aug'} from 13 images; skipped 1"


def test_on_a_pipe_there_is_no_bar_only_the_lines(tmp_path):
    src = digit_folder(tmp_path / "src")
    (src / "1" / "bad.png").write_text("not a picture")
    command = [*DIGITPREP, "augment", src, "--out-dir", tmp_path / "aug", "--jobs", "2"]
    run = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 0 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"skipped {os.path.relpath(src / '1' / 'bad.png')}: not an image (unknown file signature)",
        f"wrote 24 PNGs to {tmp_path / 'aug'} from 13 images; skipped 1",
    ]
    run = subprocess.run([*DIGITPREP, "build", src, "--sizes", "8", "--out", tmp_path / "x.csv"], capture_output=True)
    assert run.returncode == 0 and b"\r" not in run.stderr and b"files/s" not in run.stderr
    assert run.stderr.decode().splitlines()[-1].startswith("wrote 12 rows to ")


def test_training_on_a_terminal_shows_each_epoch_bar_then_wipes_it_for_the_report(tmp_path):
    src = digit_folder(tmp_path / "src", per_class=10)
    subprocess.run(
        [*DIGITPREP, "build", src, "--sizes", "8", "--out", tmp_path / "x.csv"], check=True, capture_output=True
    )
    command = [*DIGITTRAIN, "--train", tmp_path / "x.csv", "--epochs", "2", "--hidden", "8", "--batch-size", "4"]
    raw = on_terminal(command)
    lines = screen(raw)
    assert re.search(r"epoch 1: +[0-9]+%\|.*\| [0-9]+/24 rows, +([0-9.]+|\?) rows/s", raw)
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["Epoch 1", "Epoch 2"]
    assert not any("rows/s" in line for line in lines)  # each bar wiped before its report line
    piped = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert piped.returncode == 0 and "rows/s" not in piped.stderr + piped.stdout and "\r" not in piped.stderr


def test_a_warning_during_the_work_goes_above_the_bar():
    code = (
        "import warnings\n"
        "from digitprep.cli import Progress\n"
        "with Progress(False, 'decoding') as progress:\n"
        "    progress.start(3)\n"
        "    progress.advance(1)\n"
        "    warnings.warn('careful')\n"
        "    progress.advance(2)\n"
    )
    lines = screen(on_terminal([sys.executable, "-c", code]))
    assert "<string>:6: UserWarning: careful" in lines
    assert any(re.search(r"decoding: 100%\|.*\| 3/3 files, ", line) for line in lines)
