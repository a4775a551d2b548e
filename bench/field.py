"""How an MNIST-trained model reads other people's digits: the field cases beside their controls,
and the embedded data sets (scikit-learn's 8x8 handwritten digits, font digits).

The field cases (``../shared/field``) come first.
Each is a folder of labelled images (``DIR/<label>/<file>``) that failed in people's hands, with
a control holding the same digits without the difficulty. Every folder is built the way the field
README says (``digitprep build DIR --sizes 20 --deskew --center --labels folder``, plus any
``--stroke`` given here) and the model's accuracy is printed over the folder's files: a skipped
file counts as wrong. Then ``data/raw/sklearn`` and ``data/raw/fonts`` (``make data``; labels
from the file names), when present, the same way.

Usage: .venv/bin/python bench/field.py --model MODEL.npz [--stroke keep|auto|N] [--field DIR]

``digitprep`` runs as ``python -m digitprep``, so ``PYTHONPATH=OTHER_CHECKOUT`` run from outside
this checkout measures another version of the pipeline (with a model trained through that version).

The model: an MNIST-trained 20x20 model, for example (a few minutes on two cores)::

    digitprep build data/cache/training --labels folder --sizes 20 --deskew --center --out train_20.csv
    digitprep build data/cache/testing --labels folder --sizes 20 --deskew --center --out test_20.csv
    digittrain --train train_20.csv --test test_20.csv --hidden 800,800 --activation relu \\
        --optimizer adam --lr 0.001 --lr-schedule cosine --l2 5e-5 --label-smoothing 0.1 \\
        --epochs 20 --batch-size 128 --seed 0 --save model.npz
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from digitprep.csvio import read_onehot_csv
from digittrain.modelio import load_model
from digittrain.predict import predict_rows

FIELD = Path(__file__).resolve().parents[2] / "shared" / "field"
CASES = (  # (case, control)
    ("usps-edge/edge", "usps-edge/padded"),
    ("phone-lighting/dim", "phone-lighting/even"),
    ("exif-rotated/exif", "exif-rotated/upright"),
    ("u16-lowrange/bit12", "u16-lowrange/full16"),
    ("u16-lowrange/u8in16", "u16-lowrange/full16"),
    ("thin-pen/pencil", "thin-pen/marker"),
)


ROOT = Path(__file__).resolve().parents[1]
DATA_SETS = (ROOT / "data/raw/sklearn", ROOT / "data/raw/fonts")


def accuracy(model, folder: Path, out: Path, stroke: str, labels: str = "folder") -> tuple[int, int, int]:
    """(image files, rows written, rows read right) for one folder built into ``out``."""
    files = sum(1 for path in folder.rglob("*.*") if path.is_file() and path.suffix in (".png", ".jpg"))
    command = [sys.executable, "-m", "digitprep", "build", folder, "--labels", labels, "--sizes", "20"]
    command += ["--deskew", "--center", *(["--stroke", stroke] if stroke != "keep" else []), "--out", out]
    subprocess.run([*map(str, command), "--quiet"], check=True)
    pixels, labels, _ = read_onehot_csv(out)
    if not len(labels):
        return files, 0, 0
    network, scaler, metadata = model
    classes = metadata.get("classes") or list(range(10))
    predicted = np.array([digit for digit, _ in predict_rows(network, scaler, pixels, classes)])
    return files, len(labels), int((predicted == labels).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="An MNIST-trained 20x20 model (.npz).")
    parser.add_argument("--stroke", default="keep", help="digitprep build's --stroke [default: keep].")
    parser.add_argument("--field", type=Path, default=FIELD, help="The field cases' folder.")
    parser.add_argument("--sheet", type=Path, help="Also write a contact sheet of the hard cases beside their rows.")
    args = parser.parse_args()
    if not args.field.is_dir():
        sys.exit(f"{args.field}: no field cases here (give --field)")
    model = load_model(args.model)
    print(f"| case | files | rows | read | control reads | (--stroke {args.stroke}) |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as work:
        for case, control in CASES:
            results = []
            for name in (case, control):
                out = Path(work) / (name.replace("/", "_") + ".csv")
                results.append(accuracy(model, args.field / name, out, args.stroke))
            (files, rows, right), (c_files, _, c_right) = results
            print(f"| {case} | {files} | {rows} | {right}/{files} | {c_right}/{c_files} ({control}) | |")
        if args.sheet:
            cases = [str(Path(work) / (case.replace("/", "_") + ".csv")) for case, _ in CASES]
            digitprep = [sys.executable, "-m", "digitprep"]
            subprocess.run([*digitprep, "mix", *cases, "--out", str(Path(work) / "all.csv")], check=True)
            show = [*digitprep, "show", str(Path(work) / "all.csv"), "--source", "--per-class", "6"]
            subprocess.run([*show, "--magnify", "3", "--out", str(args.sheet)], check=True)
        print("\n| data set | files | rows | read |\n|---|---:|---:|---:|")
        for folder in DATA_SETS:
            if folder.is_dir():
                files, rows, right = accuracy(model, folder, Path(work) / f"{folder.name}.csv", args.stroke, "auto")
                print(f"| {folder.relative_to(ROOT)} | {files} | {rows} | {right / files:.3f} |")


if __name__ == "__main__":
    main()
