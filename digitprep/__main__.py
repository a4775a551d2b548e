"""The `digitprep` command and `python -m digitprep`."""


def run() -> None:
    """The CLI; Ctrl-C while NumPy and OpenCV are still loading ends it quietly (nothing started)."""
    try:
        from digitprep.cli import main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
