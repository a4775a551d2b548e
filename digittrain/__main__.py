"""The `digittrain` command and `python -m digittrain`."""

from digitprep.__main__ import run_cli


def run() -> None:
    """The `digittrain` command, started as `digitprep` is (Ctrl-C while loading: exit 130)."""
    run_cli("digittrain.cli")


if __name__ == "__main__":
    run()
