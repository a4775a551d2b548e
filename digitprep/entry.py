"""The `digitprep` console command: starts `build`'s worker server, then hands over to the CLI.

Every multi-process build waits for its worker server (a forkserver that imports NumPy and OpenCV,
a quarter of a second) before any image is decoded. Started here, before click and the commands
are imported, it loads while this process parses the options and walks the folders, and it
imports only this small module as its ``__main__`` instead of the whole CLI.
"""

from __future__ import annotations

import sys


def wants_workers(arguments: list[str]) -> bool:
    """Whether the command line runs `digitprep build` on more than one process."""
    if not arguments or arguments[0] != "build" or "-h" in arguments or "--help" in arguments:
        return False
    for position, argument in enumerate(arguments):
        if argument == "--jobs" and arguments[position + 1 : position + 2] == ["1"]:
            return False
        if argument == "--jobs=1":
            return False
    return True


def main() -> None:
    if wants_workers(sys.argv[1:]):
        from digitprep.workers import start_worker_server

        start_worker_server()
    from digitprep.cli import main as cli

    cli()
