"""The `digitprep` command and `python -m digitprep`."""


def run_cli(module: str = "digitprep.cli") -> None:
    """The ``main`` command of ``module``; Ctrl-C while NumPy and OpenCV are still loading ends it
    quietly with 130 (nothing started). `digittrain` starts through it too."""
    import importlib

    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    main()


def run() -> None:
    """The `digitprep` command."""
    run_cli("digitprep.cli")


if __name__ == "__main__":
    run()
