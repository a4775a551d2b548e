"""A built data set as Python data: ``load_csv`` reads OUT.csv and its sidecars into a scikit-learn
``Bunch``, in the manner of ``sklearn.datasets.load_digits``."""

from __future__ import annotations

from pathlib import Path

from digitprep.csvio import read_dataset, sidecar_path

LABEL_COLUMN = "label"  # the target's name in ``frame`` and as a Series


def load_csv(path, as_frame: bool = False, return_X_y: bool = False):
    """Load a one-hot CSV that `digitprep` wrote (build, mnist, split, augment, mix), with the
    OUT.manifest.csv and OUT.build.json beside it when they exist.

    Parameters
    ----------
    path : str or Path
        The CSV: header ``pixel1..pixelN`` then the one-hot columns ``isZero..isNine`` (or a subset).
    as_frame : bool, default False
        ``data`` becomes a DataFrame of uint8 pixel columns ``pixel1..pixelN``, ``target`` an int64
        Series named ``label``, and ``frame`` holds both (the pixel columns, then ``label``).
    return_X_y : bool, default False
        Return ``(data, target)`` instead of the Bunch.

    Returns
    -------
    data : sklearn.utils.Bunch
        data : uint8 ndarray (n_samples, N), pixel values 0-255 row by row, ink bright on black,
            exactly as in the file; a DataFrame with ``as_frame``.
        images : uint8 ndarray (n_samples, side, side), the same pixels as images (a view of
            ``data`` when it is an array); None when N is not a square.
        target : int64 ndarray (n_samples,), each row's digit (the digit itself, 0-9, not its
            position among the classes); an int64 Series with ``as_frame``.
        target_names, classes : tuple of int, the digits of the one-hot columns, in column order.
        feature_names : list of str, ``pixel1..pixelN``.
        frame : DataFrame (n_samples, N + 1) with ``as_frame``, else None.
        manifest : DataFrame of strings, one row per data row (``path``, ``label``, ``origin``,
            ``sha256``... as written by the command that made the data), or None without one.
        build : dict, OUT.build.json (the options the pixels were made with), or None without one.
        filename : str, the CSV's path.
    (data, target) : tuple with ``return_X_y``.

    Raises
    ------
    DatasetFormatError
        (a ValueError) in one line naming the file and the reason: a file that cannot be read, a
        header that is not pixel1..pixelN then isZero..isNine, a value outside 0-255, a row whose
        one-hot columns do not hold exactly one 1, a manifest that does not follow the rows.

    Examples
    --------
    >>> from digitprep import load_csv
    >>> digits = load_csv("data/processed/train_20.csv")
    >>> digits.data.shape, digits.images.shape, digits.target[:3]  # doctest: +SKIP
    ((12000, 400), (12000, 20, 20), array([0, 0, 0]))
    """
    path = Path(path)
    # Seen before reading: read_dataset makes up ``path,label`` rows when there is no manifest,
    # and gives {} when there is no build record; here their absence is None.
    has_manifest = sidecar_path(path, "manifest").exists()
    has_build = sidecar_path(path, "build").exists()
    stored = read_dataset(path)

    import pandas as pd  # imported here, as in csvio: 0.4 s that `import digitprep` should not cost
    from sklearn.utils import Bunch

    pixels, labels = stored.pixels, stored.labels
    side = stored.side
    images = pixels.reshape(len(pixels), side, side) if side is not None else None
    feature_names = [f"pixel{i}" for i in range(1, pixels.shape[1] + 1)]
    data, target, frame = pixels, labels, None
    if as_frame:
        data = pd.DataFrame(pixels, columns=feature_names, copy=False)
        target = pd.Series(labels, name=LABEL_COLUMN)
        frame = pd.concat([data, target], axis=1)
    if return_X_y:
        return data, target
    manifest = pd.DataFrame(stored.manifest_rows, columns=stored.manifest_header, dtype=str) if has_manifest else None
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=stored.classes,
        classes=stored.classes,
        feature_names=feature_names,
        frame=frame,
        manifest=manifest,
        build=stored.record if has_build else None,
        filename=str(path),
    )
