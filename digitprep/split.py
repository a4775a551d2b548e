"""`digitprep split`: a one-hot data set -> a stratified, seeded train part and test part.

Split before augmenting: augmented copies of a test image in the training set would let the model
see its test images. The manifest rows follow their data rows, and ``by`` keeps every row that
shares a manifest value (one source file, one image's augmented copies) on the same side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitprep.csvio import read_dataset, write_datasets


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows), sorted: each class split in the same proportion, shuffled with
    ``seed``. A class with 2 or more units has at least one on each side. With ``groups``, the
    units are groups of rows (each group with one label), and whole groups go to one side."""
    labels = np.asarray(labels)
    if groups is None:
        unit_labels, unit_of_row = labels, None
    else:
        names, first, unit_of_row = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
        unit_labels = labels[first]
        mixed = np.flatnonzero(unit_labels[unit_of_row] != labels)
        if len(mixed):
            raise ValueError(f"group {str(names[unit_of_row[mixed[0]]])!r} holds rows of different labels")
    rng = np.random.default_rng(seed)
    train, test = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for label in np.unique(unit_labels):
        units = rng.permutation(np.flatnonzero(unit_labels == label))
        cut = round(len(units) * test_fraction)
        if len(units) >= 2 and 0 < test_fraction < 1:
            cut = min(max(cut, 1), len(units) - 1)
        test.append(units[:cut])
        train.append(units[cut:])
    train_units, test_units = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    if unit_of_row is None:
        return train_units, test_units
    in_test = np.isin(unit_of_row, test_units)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def split_file(
    csv_path: Path,
    test_fraction: float,
    seed: int,
    by: str | None = None,
    train_out: Path | None = None,
    test_out: Path | None = None,
) -> tuple[tuple[Path, int], tuple[Path, int]]:
    """Split a data set on disk into NAME_train.csv and NAME_test.csv (or the given paths), rows in their
    original order; returns each output's path and row count. DatasetFormatError / ValueError name what is wrong."""
    csv_path = Path(csv_path)
    train_out = Path(train_out or csv_path.with_name(f"{csv_path.stem}_train.csv"))
    test_out = Path(test_out or csv_path.with_name(f"{csv_path.stem}_test.csv"))
    if len({csv_path.resolve(), train_out.resolve(), test_out.resolve()}) < 3:
        raise ValueError(f"{csv_path}: the train and test outputs must be two other files")
    dataset = read_dataset(csv_path)
    if by is not None and by not in dataset.manifest_header:
        raise ValueError(f"{csv_path}: no manifest column {by!r} (it has: {', '.join(dataset.manifest_header)})")
    groups = None if by is None else np.array(dataset.column(by))
    try:
        rows = stratified_split(dataset.labels, test_fraction, seed, groups)
    except ValueError as exc:
        raise ValueError(f"{csv_path}: {exc}") from None
    parts = []
    for side, path, part_rows in (("train", train_out, rows[0]), ("test", test_out, rows[1])):
        step = {"split": {"from": csv_path.name, "side": side, "test": test_fraction, "seed": seed, "by": by}}
        parts.append(
            (path, dataset.subset(part_rows), {**dataset.record, "steps": [*dataset.record.get("steps", []), step]})
        )
    write_datasets(parts)  # both sides, or neither
    return (train_out, len(rows[0])), (test_out, len(rows[1]))
