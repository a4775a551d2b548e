"""Accuracy of an MNIST-trained 20x20 model on MNIST test digits "photographed" the way people's files look.

Each kind below turns a 28x28 MNIST test digit (white ink on black) into the file a person might have:
dark ink on paper, a large JPEG, off centre, slanted, ink only in an alpha channel, a 16-bit or palette
PNG, blurred, noisy, unevenly lit, dim paper, form lines around it, cropped tight to the ink, 1-pixel or
marker strokes, rotated pixels with an EXIF orientation, or a mix of these. The files of each kind go
through ``digitprep build --labels folder --sizes 20 --deskew --center`` and the model reads the rows;
a file digitprep skips counts as wrong, so accuracy is correct / files. ``clean`` is the control.

Each file depends only on (seed, kind, index): ``numpy.random.default_rng([seed, kind, index])``.

Usage: .venv/bin/python bench/messy.py --model MODEL.npz [--count 2000] [--seed 0] [--out DIR] [--jobs N]
       [--keep] [--kinds a,b] [--write-only]

A model (MNIST training set at 20x20, as the benchmark's files are built):
    .venv/bin/digitprep build data/cache/training --labels folder --sizes 20 --deskew --center --out train_20.csv
    .venv/bin/digitprep build data/cache/testing --labels folder --sizes 20 --deskew --center --out test_20.csv
    .venv/bin/digittrain --train train_20.csv --test test_20.csv --hidden 800,800 --activation relu \\
        --optimizer adam --lr 0.001 --lr-schedule cosine --l2 5e-5 --label-smoothing 0.1 --epochs 20 \\
        --batch-size 128 --seed 0 --save model.npz
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.morphology import skeletonize

SIZE = 20
HOW_TO_MODEL = (
    "no --model: make one with `digitprep build data/cache/training --labels folder --sizes 20 --deskew --center "
    "--out train_20.csv` then `digittrain --train train_20.csv --save model.npz ...` (see bench/messy.py's docstring)"
)


# ---- building blocks: ink coverage (float 0..1, ink-high) -> shape -> paper and ink levels -> page
def _cover(digit: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """The digit's ink coverage upscaled by a random factor in [lo, hi), and the factor."""
    f = rng.uniform(lo, hi)
    cover = cv2.resize(digit.astype(np.float32) / 255, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return cover.clip(0, 1), f


def _pad(cover: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Paper around the digit: each side gets a random share in [lo, hi) of the digit's side."""
    top, bottom, left, right = (rng.uniform(lo, hi, 4) * cover.shape[0]).astype(int)
    return np.pad(cover, ((top, bottom), (left, right)))


def _off_centre(cover, f, rng):
    """Place the digit on a canvas 2-4 times its size, in the outer quarter of the free room on each axis."""
    h, w = cover.shape
    k = rng.uniform(2, 4)
    canvas = np.zeros((int(k * h), int(k * w)), np.float32)
    share = np.where(rng.random(2) < 0.5, rng.uniform(0, 0.25, 2), rng.uniform(0.75, 1, 2))
    y, x = ((np.array(canvas.shape) - (h, w)) * share).astype(int)
    canvas[y : y + h, x : x + w] = cover
    return canvas


def _shear(cover, f, rng):
    """Slant by 15-30 degrees either way, widening the canvas so nothing is cut."""
    t = np.tan(np.radians(rng.uniform(15, 30) * rng.choice([-1, 1])))
    h, w = cover.shape
    pad = int(abs(t) * h / 2) + 1
    matrix = np.float32([[1, t, pad - t * h / 2], [0, 1, 0]])
    return cv2.warpAffine(cover, matrix, (w + 2 * pad, h), flags=cv2.INTER_LINEAR)


def _fatten(cover, f, rng):
    """Marker strokes: dilate by 0.6-1.1 source pixels, so MNIST's 2-3 pixel strokes become 3-5 wide
    (more closes the loops of 8s and 0s)."""
    r = round(rng.uniform(0.6, 1.1) * f)
    return cv2.dilate(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def _crop(cover, f, rng):
    """Crop to the ink's bounding box (where strokes are half dark), so strokes touch every edge."""
    ys, xs = np.nonzero(cover > 0.5)
    return cover[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _thin(cover, f, rng):
    """Strokes thinned to one pixel."""
    return skeletonize(cover > 0.5).astype(np.float32)


def _plain(shape, rng):
    """(paper, ink) of an ordinary scan or photo: light paper, dark ink."""
    return rng.uniform(200, 250), rng.uniform(10, 60)


def _dim(shape, rng):
    """Paper darker than mid grey, as in a photo taken in poor light."""
    return rng.uniform(100, 110), rng.uniform(25, 35)


def _uneven(shape, rng):
    """Illumination falling from ~230 to ~90 across the page, linearly or away from a point; ink
    reflects 10-20 % of it, so the paper varies more across the page than ink and paper differ on
    its dark side."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        t = np.hypot(yy - rng.uniform(0, shape[0]), xx - rng.uniform(0, shape[1]))
    t = (t - t.min()) / (t.max() - t.min())
    bright, dark = rng.uniform(220, 240), rng.uniform(80, 100)
    light = bright + (dark - bright) * t
    return light, light * rng.uniform(0.1, 0.2)


def _blur(page, f, rng):
    """Out of focus: sigma 0.75-1.5 source pixels (f times that at the upscaled size: 1-2 upscaled
    pixels vanish in the reduction to 20x20, 2 source pixels leave an 8 unreadable)."""
    return cv2.GaussianBlur(page.astype(np.float32), (0, 0), rng.uniform(0.75, 1.5) * f)


def _noise(page, f, rng):
    """Sensor noise plus salt-and-pepper specks on 0.2-1 % of the pixels."""
    page = page + rng.normal(0, rng.uniform(8, 20), page.shape)
    specks = rng.random(page.shape) < rng.uniform(0.002, 0.01)
    page[specks] = rng.choice([0.0, 255.0], int(specks.sum()))
    return page


def _page(digit, rng, scale=(4, 8), shape=(), levels=_plain, page=()) -> np.ndarray:
    """Upscale, reshape the ink, put it on paper, then degrade the page; float grey values."""
    cover, f = _cover(digit, rng, *scale)
    for op in shape:
        cover = op(cover, f, rng)
    paper, ink = levels(cover.shape, rng)
    grey = paper + (ink - paper) * cover
    for op in page:
        grey = op(grey, f, rng)
    return grey


def _u8(grey: np.ndarray) -> np.ndarray:
    """Float grey values as 8-bit pixels."""
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _save(image: Image.Image, ext: str, rng: np.random.Generator, **save) -> tuple[bytes, str]:
    """Encode with Pillow; JPEGs at a random quality of 75-95, as cameras and scanners vary."""
    buffer = io.BytesIO()
    if ext == "jpg":
        image.save(buffer, "JPEG", quality=int(rng.integers(75, 96)), **save)
    else:
        image.save(buffer, "PNG", **save)
    return buffer.getvalue(), ext


# ---- the kinds: (digit uint8 28x28 ink-high, rng) -> (file bytes, extension)
def _photo(ext: str, scale=(4, 8), shape=(), levels=_plain, page=()):
    """A kind that puts the upscaled digit on paper through the given steps and saves it as ``ext``."""

    def kind(digit, rng):
        return _save(Image.fromarray(_u8(_page(digit, rng, scale, shape, levels, page))), ext, rng)

    return kind


large_canvas = _photo("jpg", (5, 12), [lambda c, f, r: _pad(c, r, 0.2, 1.0)])  # wide paper margins
off_centre = _photo("png", (2, 4), [_off_centre])
slanted = _photo("png", (3, 5), [_shear])
blur = _photo("jpg", page=[_blur])
noise = _photo("png", page=[_noise])
uneven_light = _photo("jpg", levels=_uneven)
dim_paper = _photo("jpg", levels=_dim)
tight_crop = _photo("png", (1.5, 3), [_crop])  # "upscaled a little"
thin_stroke = _photo("png", (8, 12), [_thin])  # 224-336 px canvases, one-pixel strokes
fat_stroke = _photo("jpg", shape=[_fatten])


def clean(digit, rng):
    """The MNIST PNG as it is: the control."""
    return _save(Image.fromarray(digit), "png", rng)


def dark_on_light(digit, rng):
    """Inverted: dark ink on white paper, still 28x28."""
    return _save(Image.fromarray(255 - digit), "png", rng)


def rgba_alpha(digit, rng):
    """One colour everywhere; the ink is only in the alpha channel (transparent paper)."""
    cover, _ = _cover(digit, rng, 2, 4)
    colour = np.broadcast_to(rng.integers(0, 160, 3).astype(np.uint8), (*cover.shape, 3))
    return _save(Image.fromarray(np.dstack([colour, _u8(cover * 255)])), "png", rng)


def sixteen_bit(digit, rng):
    """16-bit grey PNG holding 12-bit values: dark ink ~300-600 on paper ~3400-3900."""
    cover, _ = _cover(digit, rng, 2, 4)
    paper, ink = rng.uniform(3400, 3900), rng.uniform(300, 600)
    return cv2.imencode(".png", np.rint(paper + (ink - paper) * cover).astype(np.uint16))[1].tobytes(), "png"


def palette(digit, rng):
    """A coloured pen on off-white paper, quantised to a 4-16 colour palette ('P' mode)."""
    cover, _ = _cover(digit, rng, 2, 4)
    paper, ink = rng.uniform(225, 255, 3), rng.uniform(0, 90, 3)
    rgb = Image.fromarray(_u8(paper + (ink - paper) * cover[..., None]))
    return _save(rgb.quantize(colors=int(rng.integers(4, 17))), "png", rng)


def form_lines(digit, rng):
    """Box lines 1-3 px thick, 0-3 px in from two to four edges, with paper between them and the digit."""
    page = _page(digit, rng, (3, 5), [lambda c, f, r: _pad(c, r, 0.05, 0.3)])
    for edge in rng.permutation(4)[: rng.integers(2, 5)]:
        at, thick = int(rng.integers(0, 4)), int(rng.integers(1, 4))
        band = slice(at, at + thick) if edge % 2 == 0 else slice(-at - thick, -at or None)
        page[(band, slice(None)) if edge < 2 else (slice(None), band)] = rng.uniform(20, 80)
    return _save(Image.fromarray(_u8(page)), "jpg", rng)


def exif_rotated(digit, rng):
    """Pixels stored turned 90 degrees; EXIF Orientation 6 (show turned clockwise) or 8 says how to
    show them upright, as phones write."""
    tag = int(rng.choice([6, 8]))
    stored = np.rot90(_u8(_page(digit, rng, (3, 6))), 1 if tag == 6 else -1)
    exif = Image.Exif()
    exif[0x0112] = tag
    return _save(Image.fromarray(np.ascontiguousarray(stored)), "jpg", rng, exif=exif)


# Ingredients of `mixed`, applied shape first, then light (at most one), then the page's defects.
SHAPES = {"fat_stroke": _fatten, "slanted": _shear, "off_centre": _off_centre}
LIGHTS = {"uneven_light": _uneven, "dim_paper": _dim}
PAGES = {"blur": _blur, "noise": _noise}


def mixed_recipe(rng: np.random.Generator) -> list[str]:
    """2-3 ingredient names, never two kinds of light."""
    chosen, wanted = [], int(rng.integers(2, 4))
    for name in rng.permutation([*SHAPES, *LIGHTS, *PAGES]):
        if name not in LIGHTS or not LIGHTS.keys() & chosen:
            chosen.append(str(name))
        if len(chosen) == wanted:
            break
    return chosen


def mixed(digit, rng):
    """A random 2-3 of the ingredients above on one page, saved as a JPEG."""
    chosen = mixed_recipe(rng)
    light = next((LIGHTS[n] for n in chosen if n in LIGHTS), _plain)
    shapes, pages = [op for n, op in SHAPES.items() if n in chosen], [op for n, op in PAGES.items() if n in chosen]
    return _save(Image.fromarray(_u8(_page(digit, rng, shape=shapes, levels=light, page=pages))), "jpg", rng)


KINDS = {
    name: globals()[name]
    for name in """clean dark_on_light large_canvas off_centre slanted rgba_alpha sixteen_bit palette blur noise
                   uneven_light dim_paper form_lines tight_crop thin_stroke fat_stroke exif_rotated mixed""".split()
}


# ---- the benchmark
def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, help="MNIST-trained 20x20 model (.npz); see the docstring to make one")
    parser.add_argument("--count", type=int, default=2000, help="files in all, spread over the kinds [2000]")
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and every random choice [0]")
    parser.add_argument("--out", type=Path, help="write DIR/<kind>/<label>/<index>.<ext> here and keep it [temporary]")
    parser.add_argument("--jobs", type=int, default=0, help="passed to digitprep build --jobs [0 = all cores]")
    parser.add_argument("--stroke", default="keep", help="passed to digitprep build --stroke [keep]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print where it is")
    parser.add_argument("--kinds", help=f"comma-separated subset of: {', '.join(KINDS)}")
    parser.add_argument("--write-only", action="store_true", help="only write the files (implies keeping them)")
    args = parser.parse_args()
    args.kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    if unknown := [k for k in args.kinds if k not in KINDS]:
        parser.error(f"unknown kinds {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return args


def mnist_test_files() -> list[Path] | None:
    """MNIST's test PNGs in a fixed order, extracted from ../shared/data if needed; None without them."""
    sys.path.insert(0, str(Path(__file__).parent))  # prep.py is a sibling script: bench/ is not a package
    from prep import CACHE, TARBALL, ensure_extracted

    if not (CACHE / "testing").is_dir():
        if not TARBALL.exists():
            return None
        ensure_extracted(TARBALL, CACHE)
    return sorted(CACHE.glob("testing/*/*.png"), key=lambda p: (int(p.parent.name), int(p.stem)))


def write_kind(out: Path, kind: str, sources: list[Path], seed: int) -> None:
    """Write ``kind``'s files as out/<kind>/<label>/<index>.<ext>, replacing an earlier run's."""
    shutil.rmtree(out / kind, ignore_errors=True)
    kind_index = list(KINDS).index(kind)  # the position in the full list, so --kinds changes no file
    for index, source in enumerate(sources):
        digit = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        data, ext = KINDS[kind](digit, np.random.default_rng([seed, kind_index, index]))
        path = out / kind / source.parent.name / f"{index}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def build_and_score(out: Path, kind: str, jobs: int, loaded, stroke: str = "keep") -> tuple[int, int, str]:
    """digitprep build on out/<kind>; (rows written, rows read correctly, most common skip reason)."""
    from digittrain.data import load_dataset

    csv_path = out / f"{kind}.csv"
    command = [sys.executable, "-m", "digitprep", "build", str(out / kind), "--labels", "folder"]
    command += ["--sizes", str(SIZE), "--deskew", "--center", "--out", str(csv_path), "--jobs", str(jobs), "--quiet"]
    command += ["--stroke", stroke] if stroke != "keep" else []  # an older digitprep has no --stroke
    done = subprocess.run(command, capture_output=True, text=True)
    errors = csv_path.with_suffix(".errors.csv")
    reasons = Counter(row["reason"] for row in csv.DictReader(errors.open())) if errors.exists() else Counter()
    reason = reasons.most_common(1)[0][0] if reasons else ""
    if done.returncode != 0 or not csv_path.exists():
        return 0, 0, reason or f"digitprep exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    # The model is applied here rather than through `digittrain evaluate`, which would also write a
    # confusion-matrix PNG beside the model file.
    model, scaler, classes = loaded
    data = load_dataset(csv_path)
    if not len(data.labels):  # every file skipped
        return 0, 0, reason
    predicted = np.asarray(classes)[model.predict(scaler.transform(data.pixels))]
    return len(data.labels), int((predicted == data.labels).sum()), reason


def main() -> int:
    """Pick digits, write each kind's files, build and score them, print the table; 0 whatever the accuracy."""
    args = parse_args()
    if args.model is None and not args.write_only:
        print(HOW_TO_MODEL)
        return 0
    loaded = None
    if not args.write_only:
        from digittrain.modelio import load_model

        model, scaler, metadata = load_model(args.model)
        if model.sizes[0] != SIZE * SIZE:
            print(f"{args.model} takes {model.sizes[0]} inputs, not {SIZE}x{SIZE}: train it on a --sizes {SIZE} CSV")
            return 1
        loaded = (model, scaler, metadata.get("classes") or list(range(model.sizes[-1])))
    files = mnist_test_files()
    if files is None:
        print("MNIST test PNGs not found in data/cache and no tarball in ../shared/data; nothing to measure.")
        return 0
    per_kind = max(1, args.count // len(args.kinds))
    order = np.random.default_rng(args.seed).permutation(len(files))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-messy-"))
    print(f"{per_kind} MNIST test digits per kind, {len(args.kinds)} kinds, seed {args.seed}, into {out}", flush=True)
    rows = []
    for kind in args.kinds:
        k = list(KINDS).index(kind)  # disjoint digits per kind while kinds x per_kind <= 10 000
        picked = np.take(order, range(k * per_kind, (k + 1) * per_kind), mode="wrap")
        write_kind(out, kind, [files[i] for i in picked], args.seed)
        if not args.write_only:
            rows.append((kind, per_kind, *build_and_score(out, kind, args.jobs, loaded, args.stroke)))
            print(f"  {kind}: {rows[-1][3] / per_kind:.3f}", flush=True)
    if rows:
        print(f"\n{'kind':<14}{'files':>7}{'rows':>7}{'skipped':>9}{'accuracy':>10}  most common skip reason")
        for kind, n, written, correct, reason in rows:
            print(f"{kind:<14}{n:>7}{written:>7}{n - written:>9}{correct / n:>10.3f}  {reason[:60]}")
        n, written, correct = (sum(r[i] for r in rows) for i in (1, 2, 3))
        print(f"{'all':<14}{n:>7}{written:>7}{n - written:>9}{correct / n:>10.3f}")
    if args.out is None and not (args.keep or args.write_only):
        shutil.rmtree(out)
    else:
        print(f"files kept in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
