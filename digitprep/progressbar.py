"""The progress bar both commands draw on a terminal: tqdm's, reading ``123/400 files, 24.00 files/s``.

Shown on stderr only when it is a terminal (the callers decide, with --quiet); on a pipe or in a log
there is no bar at all, so nothing but the commands' own lines is written there.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

# rate_noinv: "0.50 files/s" reads better than tqdm's inverse "2.00s/ files" for slow work.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit}, {rate_noinv_fmt} [{elapsed}<{remaining}]"


def progress_bar(total: int, label: str, unit: str, leave: bool = True) -> tqdm:
    """A tqdm bar on stderr over ``total`` ``unit`` (a plural noun: "files"), labelled ``label``;
    ``leave``: its last state stays on screen when it is closed (else the line is wiped)."""
    # A pseudo-terminal that gives no size (0x0) would hide the bar: 80x24 then.
    size = os.get_terminal_size(sys.stderr.fileno())
    return tqdm(
        total=total,
        desc=label,
        unit=f" {unit}",  # the space of "24.00 files/s" and "123/400 files"
        bar_format=BAR_FORMAT,
        leave=leave,
        file=sys.stderr,
        ncols=size.columns or 80,
        nrows=size.lines or 24,
    )
