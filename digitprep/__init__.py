"""digitprep: labelled digit images -> clean, MNIST-style one-hot CSV training data.

The data path, one module per step:

    sources    find image files under folders and label them (folder, file name, --pattern)
    decode     bytes -> grey uint8 (size guard first; cv2.imdecode, Pillow where OpenCV cannot)
    normalize  pure steps on image stacks: paper and ink, specks, deskew, fit and centre, resize
    build      files -> chunks -> parallel -> rows in file order -> the data set on disk
    csvio      the data set on disk: one-hot CSV, manifest, errors, build record; reading it back

Beside it: mnist (IDX files, download), tables (Kaggle CSV), split, mix, augment (transforms)
and augment_data (the command), fonts and render, sheet (contact sheets), pngtree (labelled PNG
trees); collecting digits: forms (printable forms, photos of them straightened and cut), slice
(pages cut into labelled PNGs by a layout), textlines (free rows of digits found from the ink);
parallel (the one process pool), atomic (the one atomic writer), options and classes
(what the commands share); cli (the `digitprep` command).

From Python, ``digitprep.load_csv(path)`` reads a built data set (OUT.csv, its manifest and build
record) into a scikit-learn Bunch: uint8 pixels and images, int64 labels (see ``dataset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digitprep.csvio import DatasetFormatError
    from digitprep.dataset import load_csv

__version__ = "0.1.0"
__all__ = ["DatasetFormatError", "__version__", "load_csv"]

# Loaded on first use: `import digitprep` runs before the command line's Ctrl-C guard
# (digitprep.__main__) and must not load NumPy; `digitprep.load_csv` still is the function itself.
_LAZY = {"load_csv": "digitprep.dataset", "DatasetFormatError": "digitprep.csvio"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'digitprep' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
