"""digitprep: labelled digit images -> clean, MNIST-style one-hot CSV training data.

The data path, one module per step:

    sources    find image files under folders and label them (folder, file name, --pattern)
    decode     bytes -> grey uint8 (size guard first; cv2.imdecode, Pillow where OpenCV cannot)
    normalize  pure steps on image stacks: paper and ink, specks, deskew, fit and centre, resize
    build      files -> chunks -> parallel -> rows in file order -> the data set on disk
    csvio      the data set on disk: one-hot CSV, manifest, errors, build record; reading it back

Beside it: mnist (IDX files, download), tables (Kaggle CSV), split, mix, augment (transforms)
and augment_data (the command), fonts and render, sheet (contact sheets), pngtree (labelled PNG
trees); parallel (the one process pool), atomic (the one atomic writer), options and classes
(what the commands share); cli (the `digitprep` command).
"""

__version__ = "0.1.0"
