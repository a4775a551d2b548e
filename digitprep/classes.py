"""The class set: which digits a data set holds and how its one-hot columns are named."""

from __future__ import annotations

import itertools
import re

DIGIT_NAMES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def parse_classes(spec: str) -> tuple[int, ...]:
    """Parse a class set such as ``0-9``, ``1-5`` or ``0,3,7-9`` into sorted unique digits."""
    classes: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d)(?:-(\d))?", part)
        if not match:
            raise ValueError(f"bad class set {spec!r}: use digits and ranges such as 0-9 or 1-5")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"bad class set {spec!r}: range {part} runs backwards")
        classes.update(range(low, high + 1))
    return tuple(sorted(classes))


def format_classes(classes: tuple[int, ...]) -> str:
    """The inverse of parse_classes: ``(1, 2, 3, 4, 5)`` -> ``1-5``, ``(0, 3, 7)`` -> ``0,3,7``."""
    runs = [[c for _, c in run] for _, run in itertools.groupby(enumerate(classes), lambda ic: ic[1] - ic[0])]
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)


def onehot_column_names(classes: tuple[int, ...]) -> list[str]:
    """One-hot column names in the original project's style: ``isZero`` ... ``isNine``."""
    return [f"is{DIGIT_NAMES[c]}" for c in classes]


def classes_from_columns(columns: list[str]) -> tuple[int, ...]:
    """Recover the class set from one-hot column names; raises ValueError on a foreign name."""
    lookup = {f"is{name}": digit for digit, name in enumerate(DIGIT_NAMES)}
    try:
        return tuple(lookup[c] for c in columns)
    except KeyError as exc:
        raise ValueError(f"unknown one-hot column {exc.args[0]!r}") from None
