"""digittrain predict: raw PNGs go through the preprocessing recorded in the model."""

import cv2
import numpy as np
from click.testing import CliRunner
from conftest import write_image

from digitprep.build import BuildConfig, build_dataset
from digitprep.options import NormalizeOptions
from digittrain.cli import main

FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX]


def glyph(digit, font, thickness, canvas=64, ink=255, paper=0, at=(14, 52), scale=1.6):
    image = np.full((canvas, canvas), paper, np.uint8)
    cv2.putText(image, str(digit), at, font, scale, ink, thickness, cv2.LINE_AA)
    return image


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_messy_png_is_predicted_like_its_clean_version(tmp_path):
    for digit in range(10):
        for f, font in enumerate(FONTS):
            for thickness in (2, 3, 4):
                write_image(tmp_path / "raw" / str(digit) / f"{f}_{thickness}.png", glyph(digit, font, thickness))
    config = BuildConfig((20,), tuple(range(10)), NormalizeOptions(deskew=True, center=True))
    build_dataset([tmp_path / "raw"], tmp_path / "train_20.csv", config, "folder", jobs=1)
    result = invoke(
        [
            "--train",
            tmp_path / "train_20.csv",
            "--test",
            tmp_path / "train_20.csv",
            "--hidden",
            "64",
            "--epochs",
            "60",
            "--batch-size",
            "16",
            "--lr",
            "0.003",
            "--results",
            tmp_path / "r.csv",
            "--save",
            tmp_path / "m.npz",
        ],
    )
    assert result.exit_code == 0, result.output
    clean = write_image(tmp_path / "clean.png", glyph(3, FONTS[1], 3))
    # Dark ink on a large, light, slightly noisy canvas, far off-centre.
    messy = np.full((300, 400), 235, np.uint8)
    messy[20:84, 250:314] = 255 - glyph(3, FONTS[1], 3, ink=200)
    messy = (messy.astype(int) + np.random.default_rng(0).integers(-4, 5, messy.shape)).clip(0, 255).astype(np.uint8)
    write_image(tmp_path / "messy.png", messy)
    (tmp_path / "broken.png").write_bytes(b"nope")
    out = invoke(["predict", tmp_path / "m.npz", clean, tmp_path / "messy.png", tmp_path / "broken.png"])
    assert out.exit_code == 1  # one file could not be used
    lines = dict(line.rsplit(": ", 1) for line in out.stdout.splitlines())
    assert lines[str(clean)].split()[0] == "3"
    assert lines[str(tmp_path / "messy.png")].split()[0] == "3"
    assert "broken.png: cannot use: not an image" in out.stderr
