"""The `digittrain` command and `python -m digittrain`."""


def run() -> None:
    """The CLI; Ctrl-C while NumPy and the modules are still loading ends it quietly (nothing started)."""
    try:
        from digittrain.cli import main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
