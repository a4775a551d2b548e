"""How well `digitprep slice --form` reads phone photos of a filled-in form, and how fast.

Many simulated phone photos (the pen and phone of tests/test_forms.py: turned by up to 15 degrees,
perspective, a page that does not lie flat, uneven light and a shadow, blur, grain, JPEG 60-75)
of the default form, each with its own digits and its own empty boxes, are cut with the form's
layout. Counted per box: filled boxes whose cut holds that box's own digit (it correlates best with
what was written in that box, of all the boxes; "twin" when another box's digit of the same label
correlates better), filled boxes under another label's digit, empty boxes listed as empty,
filled boxes taken for empty (lost), empty boxes cut (a line or shadow taken for ink), and cuts
whose border still holds a run of printed line. Also the seconds a photo takes to read and cut.

Usage: .venv/bin/python bench/form_photos.py [--photos 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_forms import (  # noqa: E402  (the test's pen and phone, and its reading of a cut)
    expected_cut,
    filled_in,
    longest_border_run,
    photographed,
    standardised,
)

from digitprep.decode import decode_grey  # noqa: E402
from digitprep.forms import form_cutter, plan_form, render_form  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="Photos to make and cut.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the first photo; photo k uses seed + k.")
    args = parser.parse_args()
    layout = plan_form()
    page, cut = render_form(layout), form_cutter(layout)
    labels = layout.grid().cell_labels()
    counts = dict(own_digit=0, twin=0, other_digit=0, lost=0, empty_listed=0, empty_cut=0, lined=0, failed=0)
    seconds = []
    for k in range(args.photos):
        rng = np.random.default_rng(args.seed + k)
        angle = float(rng.uniform(-15, 15))
        empty = {(r, c) for r in range(layout.rows) for c in range(layout.cols) if rng.random() < 0.15}
        written = filled_in(page, layout, empty, rng)
        photo = photographed(written, rng, angle)
        start = time.perf_counter()
        try:
            result = cut(decode_grey(photo), f"photo {k}")
        except ValueError as exc:
            counts["failed"] += 1
            print(exc)
            continue
        seconds.append(time.perf_counter() - start)
        filled = [(r, c) for r in range(layout.rows) for c in range(layout.cols) if (r, c) not in empty]
        truth = standardised([255 - expected_cut(written, layout, r, c).astype(np.float32) for r, c in filled])
        for row, col, label, image in result.cells:
            if (row, col) in empty:
                counts["empty_cut"] += 1
            else:
                best = filled[int(np.argmax(truth @ standardised([255 - image.astype(np.float32)])[0]))]
                if best == (row, col):
                    counts["own_digit"] += 1
                else:  # like another box's digit more: a near twin of the same digit, or a mix-up
                    counts["twin" if labels[best] == label else "other_digit"] += 1
            counts["lined"] += longest_border_run(image) >= image.shape[0] // 5
        listed = set(result.empty)
        counts["empty_listed"] += len(listed & empty)
        counts["lost"] += len(listed - empty)
    filled = counts["own_digit"] + counts["twin"] + counts["other_digit"] + counts["lost"]
    print(f"{args.photos} photos, {filled} filled boxes, {counts['empty_listed'] + counts['empty_cut']} empty boxes")
    for key, value in counts.items():
        print(f"  {key:13s}{value}")
    if seconds:
        print(f"seconds a photo (1500x2000 JPEG, decoded): median {np.median(seconds):.2f}, max {max(seconds):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
