"""The README's printed-form example: a phone photo of a filled-in `digitprep form` and what
`digitprep slice --form` cut from it.

The form is the default one (`digitprep form --out form.png`: A4, rows 0-9, 8 boxes a row); the
digits are pen strokes and the photo a simulated phone photo (turned, in perspective, a page that
does not lie flat, uneven light and a shadow, blur, grain, JPEG), both made by the helpers of
tests/test_forms.py, whose test cuts the same kind of photo. The photo is written small enough for
the README (1050 x 1400, JPEG quality 70) and that very file is cut, with
``python -m digitprep slice docs/form-photo.jpg --form FORM.json --out-dir DIR --sheet docs/form-cut.png``.
Every run writes the same two files (seeded).

Usage: .venv/bin/python bench/form_example.py [--out-dir docs] [--seed 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_forms import filled_in, photographed  # noqa: E402  (the test's pen and phone)

from digitprep.forms import plan_form, render_form, write_form  # noqa: E402

PHOTO_SIZE = (1050, 1400)  # width, height: about 5 pixels a millimetre of paper, as a phone at arm's length
QUALITY = 70
ANGLE = -8  # degrees


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs", help="Where form-photo.jpg and form-cut.png go.")
    parser.add_argument("--seed", type=int, default=2, help="Seed of the pen and the photo.")
    args = parser.parse_args()
    layout = plan_form()
    rng = np.random.default_rng(args.seed)
    empty = {(r, c) for r in range(layout.rows) for c in range(layout.cols) if rng.random() < 0.1}
    filled = filled_in(render_form(layout), layout, empty, rng)
    photo = args.out_dir / "form-photo.jpg"
    photo.write_bytes(photographed(filled, rng, ANGLE, size=PHOTO_SIZE, quality=QUALITY))
    with tempfile.TemporaryDirectory() as scratch:
        form = Path(scratch) / "form.pdf"
        write_form(form, layout)  # only its JSON is used here; the PDF is what a user prints
        command = [sys.executable, "-m", "digitprep", "slice", str(photo), "--form", str(form.with_suffix(".json"))]
        command += ["--out-dir", str(Path(scratch) / "my_digits"), "--sheet", str(args.out_dir / "form-cut.png")]
        done = subprocess.run(command, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    print(f"{photo}: {photo.stat().st_size // 1024} KB, {len(empty)} boxes left empty")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
