"""`digitprep mix`: one-hot data sets of the same image size and classes -> one data set.

Every row keeps where it came from in the manifest's ``origin`` column (the input manifest's
origin, or the input file's stem when it has none), so accuracy can be reported per origin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitprep.classes import format_classes
from digitprep.csvio import StoredDataset, read_dataset, write_datasets


def _size_text(dataset: StoredDataset) -> str:
    side = dataset.side
    return f"{dataset.pixels.shape[1]} pixels per row" + (f" ({side}x{side})" if side else "")


def check_compatible(datasets: list[StoredDataset], paths: list[Path]) -> None:
    """ValueError naming the first input whose image size or class set differs from the first's."""
    first, first_path = datasets[0], paths[0]
    for dataset, path in zip(datasets[1:], paths[1:]):
        if dataset.pixels.shape[1] != first.pixels.shape[1]:
            raise ValueError(
                f"{path}: {_size_text(dataset)}, but {first_path} has {_size_text(first)}; mix needs one image size"
            )
        if dataset.classes != first.classes:
            raise ValueError(
                f"{path}: classes {format_classes(dataset.classes)}, but {first_path} has "
                f"{format_classes(first.classes)}; mix needs one class set"
            )


def mix_datasets(datasets: list[StoredDataset], names: list[str]) -> StoredDataset:
    """Concatenate compatible data sets; rows without an ``origin`` get their input's ``names`` entry.
    The manifest has every input's columns (and ``origin``) in order of first appearance, empty where missing."""
    header = list(dict.fromkeys(c for d in datasets for c in [*d.manifest_header, "origin"]))
    rows = []
    for dataset, name in zip(datasets, names):
        for row in dataset.manifest_rows:
            values = dict(zip(dataset.manifest_header, row))
            values["origin"] = values.get("origin") or name
            rows.append([values.get(c, "") for c in header])
    return StoredDataset(
        np.concatenate([d.pixels for d in datasets]),
        np.concatenate([d.labels for d in datasets]),
        datasets[0].classes,
        header,
        rows,
    )


NO_TAG = "none"  # how a person names "rows without a tag" in --drawing-size


def rows_with_tags(dataset: StoredDataset, tags: tuple[str, ...]) -> StoredDataset:
    """The rows whose manifest ``tag`` is one of ``tags`` (``none``: rows without a tag). Used to
    gather the original project's per-drawing-size sets (tag 8, tag 20) from a mixed source."""
    row_tags = dataset.column("tag") if "tag" in dataset.manifest_header else [""] * len(dataset.labels)
    wanted = {"" if tag == NO_TAG else tag for tag in tags}
    return dataset.subset(np.flatnonzero([tag in wanted for tag in row_tags]))


def mixed_record(records: list[dict], paths: list[Path]) -> dict:
    """The build record of a mix: every setting the inputs agree on, and each input's own record.
    A setting they disagree on (deskew, centre...) is left out rather than guessed."""
    shared = dict(records[0])
    for record in records[1:]:
        shared = {key: value for key, value in shared.items() if record.get(key) == value}
    shared.pop("rows", None)
    shared["mix"] = [{"from": Path(path).name, **record} for path, record in zip(paths, records)]
    return shared


def mix_files(paths: list[Path], out: Path, shuffle: bool = False, seed: int = 0, tags: tuple[str, ...] = ()) -> int:
    """Mix data sets on disk into ``out`` (keeping only rows of ``tags``, if given); returns the row count.
    DatasetFormatError / ValueError name the offending file."""
    paths = [Path(p) for p in paths]
    if Path(out).resolve() in {p.resolve() for p in paths}:
        raise ValueError(f"{out}: the output must not be one of the inputs")
    datasets = [read_dataset(path) for path in paths]
    check_compatible(datasets, paths)
    mixed = mix_datasets(datasets, [path.stem for path in paths])
    if tags:
        mixed = rows_with_tags(mixed, tags)
    if shuffle:
        mixed = mixed.subset(np.random.default_rng(seed).permutation(len(mixed.labels)))
    settings = {"shuffle": shuffle, "seed": seed if shuffle else None, "tags": list(tags) or None}
    write_datasets([(out, mixed, {**mixed_record([d.record for d in datasets], paths), **settings})])
    return len(mixed.labels)
