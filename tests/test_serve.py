"""`digittrain serve`: /predict answers with the model's own preprocessing, /save writes the
original project's <label>_<tag>_<n>.png names that `digitprep build` reads, and every refusal is a
4xx with a one-line reason that leaves the collect folder as it was. The model is a small one
trained here on scikit-learn's handwritten digits (`digitprep digits`), through the commands."""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import drawn_digit, png_bytes, png_of_zeros
from PIL import Image, PngImagePlugin

import digitprep
import digittrain
from digitprep.cli import main as digitprep_main
from digitprep.decode import decode_grey
from digittrain import serve
from digittrain.cli import main as digittrain_main
from digittrain.serve import create_app, save_drawing

DIGITTRAIN = [sys.executable, "-c", "from digittrain.__main__ import run; run()"]
SIZE = 20
BUILD = ["--sizes", str(SIZE), "--deskew", "--center"]  # the model's preprocessing, for `digitprep build`


def invoke(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


TRAINED = {}  # the model's path, once trained: test_serve_browser imports these fixtures, a second definition


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A 400-64-10 model trained for a few seconds on scikit-learn's 1797 digits, built at 20x20
    with deskew and centring (recorded in the model, as `make train` does); trained once a session."""
    if "model" in TRAINED:
        return TRAINED["model"]
    folder = tmp_path_factory.mktemp("serve_model")
    invoke(digitprep_main, ["digits", "--out-dir", folder / "raw"])
    invoke(digitprep_main, ["build", folder / "raw", *BUILD, "--labels", "name", "-q", "--out", folder / "d.csv"])
    model = folder / "model.npz"
    training = ["--hidden", "64", "--epochs", "15", "--batch-size", "32", "--lr", "0.003"]
    invoke(digittrain_main, ["--train", folder / "d.csv", *training, "--save", model, "--results", folder / "r.csv"])
    TRAINED["model"] = model
    return model


@pytest.fixture(scope="session")
def predictor(model_path):
    return digittrain.load_model(model_path)


def drawing_png(text="7", side=280) -> bytes:
    """Black ink on white paper, as the page's canvas sends it."""
    return png_bytes(drawn_digit(text, canvas=side, at=(side // 4, side * 3 // 4), scale=side / 40, thickness=18))


def post(client, url, data, content_type="image/png"):
    return client.post(url, data=data, content_type=content_type)


def listing(folder):
    return sorted((path.name, path.read_bytes()) for path in folder.iterdir())


def test_predict_answers_as_the_model_predicts_its_own_preprocessed_rows(predictor):
    client = create_app(predictor).test_client()
    data = drawing_png("7")
    answer = post(client, "/predict", data)
    assert answer.status_code == 200
    body = answer.get_json()
    row = predictor.preprocess(decode_grey(data)[None])
    expected = predictor.predict_proba(row)[0]
    assert body["classes"] == list(range(10))
    assert np.array_equal(np.asarray(body["probabilities"], np.float32), expected)
    assert body["digit"] == int(expected.argmax()) == int(predictor.predict(row)[0])
    assert sum(body["probabilities"]) == pytest.approx(1, abs=1e-5)
    header, encoded = body["seen"].split(",", 1)
    assert header == "data:image/png;base64"
    seen = decode_grey(base64.b64decode(encoded))
    assert seen.shape == (SIZE, SIZE)
    assert np.array_equal(seen.reshape(-1), row[0])  # exactly the row the model was given


def test_blank_canvas_asks_for_a_digit_and_is_not_saved(predictor, tmp_path):
    client = create_app(predictor, tmp_path).test_client()
    blank = png_bytes(np.full((280, 280), 255, np.uint8))
    answer = post(client, "/predict", blank)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "digit": None,
        "probabilities": None,
        "classes": list(range(10)),
        "seen": None,
        "message": "draw a digit",
    }
    refused = post(client, "/save?label=3", blank)
    assert refused.status_code == 400
    assert refused.get_json() == {"error": "nothing drawn: a blank drawing is not saved"}
    assert listing(tmp_path) == []


def test_saves_are_numbered_tagged_and_read_by_build_as_the_model_saw_them(predictor, tmp_path):
    collect = tmp_path / "mine"
    collect.mkdir()
    reported = []
    client = create_app(predictor, collect, report=reported.append).test_client()
    # A client's PNG with a text chunk of its own: the server writes pixels, not the client's bytes.
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "from the client")
    buffer = io.BytesIO()
    Image.fromarray(drawn_digit("3", canvas=280, at=(70, 210), scale=7, thickness=18)).save(buffer, "PNG", pnginfo=info)
    three = buffer.getvalue()
    names = [post(client, "/save?label=3", three).get_json()["saved"] for _ in range(2)]
    names.append(post(client, "/save?label=3&tag=20", three).get_json()["saved"])
    five = drawing_png("5")
    answer = post(client, "/save?label=5", five)
    assert answer.status_code == 200
    assert answer.get_json() == {"saved": "5_280_0.png", "path": str(collect / "5_280_0.png"), "label": 5}
    assert names == ["3_280_0.png", "3_280_1.png", "3_20_0.png"]
    assert reported == [f"saved {collect / name}" for name in [*names, "5_280_0.png"]]
    assert sorted(os.listdir(collect)) == sorted([*names, "5_280_0.png"])
    stored = (collect / "3_280_0.png").read_bytes()
    assert b"from the client" in three and b"from the client" not in stored
    assert np.array_equal(decode_grey(stored), decode_grey(three))  # the same pixels, losslessly
    assert np.array_equal(decode_grey((collect / "5_280_0.png").read_bytes()), decode_grey(five))

    invoke(digitprep_main, ["build", collect, *BUILD, "-q", "--out", tmp_path / "mine.csv"])
    built = digitprep.load_csv(tmp_path / "mine.csv")
    by_name = {os.path.basename(path): i for i, path in enumerate(built.manifest["path"])}
    assert sorted(by_name) == sorted([*names, "5_280_0.png"])
    assert [int(built.target[by_name[name]]) for name in names] == [3, 3, 3]
    assert int(built.target[by_name["5_280_0.png"]]) == 5
    assert [built.manifest["tag"][by_name[name]] for name in names] == ["280", "280", "20"]
    # What build makes of the saved file is what the model saw when the page asked for a prediction.
    seen = post(client, "/predict", five).get_json()["seen"].split(",", 1)[1]
    assert np.array_equal(built.data[by_name["5_280_0.png"]], decode_grey(base64.b64decode(seen)).reshape(-1))


def test_a_save_without_collect_is_refused(predictor):
    answer = post(create_app(predictor).test_client(), "/save?label=3", drawing_png("3"))
    assert answer.status_code == 403
    assert answer.get_json() == {"error": "not collecting: start the server with --collect DIR to save drawings"}


@pytest.mark.parametrize(
    ("url", "body", "content_type", "status", "reason"),
    [
        (
            "/save?label=3",
            b"GIF? no, text",
            "image/png",
            415,
            "cannot use the image: not an image (unknown file signature)",
        ),
        (
            "/save?label=3",
            b"\x89PNG\r\n\x1a\nbroken",
            "image/png",
            415,
            "cannot use the image: truncated or corrupt PNG",
        ),
        ("/save?label=3", b"", "image/png", 400, "empty body: send the drawing as an image (PNG)"),
        ("/save?label=3", None, "text/plain", 415, "send the drawing with Content-Type image/png, not 'text/plain'"),
        ("/save?label=3", "big", "image/png", 413, "image over the limit of 8000 bytes"),
        ("/save", None, "image/png", 400, "label must be one digit 0-9"),
        ("/save?label=../x", None, "image/png", 400, "label must be one digit 0-9"),
        ("/save?label=a/b", None, "image/png", 400, "label must be one digit 0-9"),
        ("/save?label=12", None, "image/png", 400, "label must be one digit 0-9"),
        ("/save?label=%D9%A3", None, "image/png", 400, "label must be one digit 0-9"),  # Arabic-Indic three
        ("/save?label=3&tag=../x", None, "image/png", 400, "tag must be 1 to 6 digits 0-9"),
        ("/save?label=3&tag=a/b", None, "image/png", 400, "tag must be 1 to 6 digits 0-9"),
        ("/save?label=3&tag=", None, "image/png", 400, "tag must be 1 to 6 digits 0-9"),
        ("/save?label=3&tag=1234567", None, "image/png", 400, "tag must be 1 to 6 digits 0-9"),
        ("/predict", b"not an image", "image/png", 415, "cannot use the image: not an image (unknown file signature)"),
        ("/predict", "big", "image/png", 413, "image over the limit of 8000 bytes"),
        ("/predict", "bomb", "image/png", 415, "cannot use the image: refused: 3000x2000 pixels exceeds the limit"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(predictor, tmp_path, url, body, content_type, status, reason):
    (tmp_path / "3_280_0.png").write_bytes(b"kept as it is")
    before = listing(tmp_path)
    noise = np.random.default_rng(0).integers(0, 256, (100, 100), dtype=np.uint8)
    # "big": 10 kB of noise; "bomb": 6 megapixels in 2 kB, over serve.MAX_PIXELS
    body = {None: drawing_png("3"), "big": png_bytes(noise), "bomb": png_of_zeros(3000, 2000)}.get(body, body)
    answer = post(create_app(predictor, tmp_path, max_bytes=8000).test_client(), url, body, content_type)
    assert answer.status_code == status
    error = answer.get_json()["error"]
    assert error.startswith(reason) and "\n" not in error
    assert listing(tmp_path) == before


def test_unknown_paths_and_methods_answer_json(predictor):
    client = create_app(predictor).test_client()
    assert client.get("/nothing").status_code == 404
    assert client.get("/nothing").get_json()["error"].startswith("The requested URL was not found")
    assert client.get("/predict").status_code == 405
    assert "error" in client.get("/predict").get_json()


def test_the_page_and_its_files_are_served(predictor, tmp_path):
    client = create_app(predictor, tmp_path, name="m.npz").test_client()
    page = client.get("/").get_data(as_text=True)
    assert '<canvas id="canvas" width="280" height="280"' in page
    assert 'src="page/draw.js"' in page and 'href="page/style.css"' in page
    script = client.get("/page/draw.js")
    assert script.status_code == 200 and "text/javascript" in script.content_type
    assert 'post("predict"' in script.get_data(as_text=True)
    style = client.get("/page/style.css").get_data(as_text=True)
    assert "touch-action: none" in style and "image-rendering: pixelated" in style
    info = client.get("/info").get_json()
    assert info == {
        "model": "m.npz",
        "classes": list(range(10)),
        "size": SIZE,
        "collect": True,
        "collect_dir": str(tmp_path.resolve()),
        "max_bytes": serve.MAX_BYTES,
    }
    assert create_app(predictor).test_client().get("/info").get_json()["collect"] is False


def test_a_taken_number_is_skipped_never_overwritten(tmp_path, monkeypatch):
    grey = drawn_digit("4")
    (tmp_path / "4_120_7.png").write_bytes(b"someone else's")
    assert save_drawing(tmp_path, grey, "4", "120").name == "4_120_8.png"  # after the highest, gaps kept
    # Another process took the number between the listing and the create: the next one is used.
    monkeypatch.setattr(serve, "next_number", lambda folder, label, tag: 7)
    assert save_drawing(tmp_path, grey, "4", "120").name == "4_120_9.png"
    assert (tmp_path / "4_120_7.png").read_bytes() == b"someone else's"
    with pytest.raises(ValueError, match="label must be one digit 0-9"):
        save_drawing(tmp_path, grey, "../4", "120")
    with pytest.raises(ValueError, match="tag must be"):
        save_drawing(tmp_path, grey, "4", "1/2")


def test_saves_at_the_same_time_each_get_their_own_file(tmp_path):
    grey = drawn_digit("2")
    names, errors = [], []

    def saver():
        try:
            for _ in range(5):
                names.append(save_drawing(tmp_path, grey, "2", "20").name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=saver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(names) == sorted(f"2_20_{n}.png" for n in range(40))
    assert all(np.array_equal(decode_grey(path.read_bytes()), grey) for path in tmp_path.iterdir())


def test_collect_folder_is_created_and_a_file_refused(tmp_path):
    assert serve.collect_folder(tmp_path / "new" / "dir") == (tmp_path / "new" / "dir").resolve()
    assert (tmp_path / "new" / "dir").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(serve.ServeError, match=r"file: cannot collect into it \(a file, not a folder\)"):
        serve.collect_folder(tmp_path / "file")


def test_serve_command_errors_are_one_line(model_path, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    result = CliRunner().invoke(digittrain_main, ["serve", str(bad)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {bad}: not a readable .npz model file (File is not a zip file)"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(digittrain_main, ["serve", str(model_path), "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: 127.0.0.1:{port}: cannot listen (Address already in use)"]
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(digittrain_main, ["serve", str(model_path), "--collect", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_serve_command_serves_saves_and_stops_on_ctrl_c(model_path, tmp_path):
    """The real command: its one line, a prediction and a save over HTTP, then SIGINT: exit 130."""
    collect = tmp_path / "drawings"
    process = subprocess.Popen(
        [*DIGITTRAIN, "serve", str(model_path), "--port", "0", "--collect", str(collect)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert line == f"serving {model_path} on {url} (Ctrl-C stops); saving drawings into {collect}\n"
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")

        def ask(path, data):
            request = urllib.request.Request(url + path, data, {"Content-Type": "image/png"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)

        assert ask("predict", drawing_png("1"))["digit"] in range(10)
        assert ask("save?label=1", drawing_png("1"))["saved"] == "1_280_0.png"
        assert process.stdout.readline() == f"saved {collect.resolve() / '1_280_0.png'}\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert (out, err) == ("", "interrupted\n")
    assert os.listdir(collect) == ["1_280_0.png"]


def test_the_page_ships_with_the_package():
    """Every file of digittrain/page is package data in pyproject.toml, so an installed package
    (not only this checkout) serves the page."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((serve.PAGE.parents[1] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["digittrain"]
    files = sorted(path.relative_to(serve.PAGE.parent).as_posix() for path in serve.PAGE.rglob("*") if path.is_file())
    assert files == ["page/draw.js", "page/index.html", "page/style.css"]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)
