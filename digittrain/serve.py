"""`digittrain serve`: a local page to draw digits on, predicted live by a model, and saved with
their label as training images when collecting.

The page (``digittrain/page/``: plain HTML, JavaScript and CSS, no build step) posts the canvas
as PNG after each stroke. The server decodes it with digitprep's decoder and preprocesses it with
the model's own ``Predictor.preprocess`` (the size, deskew, centring, box and stroke recorded in
the model), so the page shows what the model saw and what it made of it. Saved drawings are
named ``<label>_<tag>_<n>.png``, the original project's layout, which `digitprep build` reads
the label and the tag from; the tag is the drawing's side in pixels unless the page gives one.

Endpoints, all answering JSON (errors: a 4xx and ``{"error": one line}``):
``GET /info``, what the page needs to know; ``POST /predict`` and ``POST /save?label=D[&tag=T]``,
the body an image with an ``image/...`` Content-Type. Requiring that type keeps other web sites
out: a browser sends it cross-site only after a CORS preflight, which this server never grants.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server, select_address_family

from digitprep.decode import UnusableImage, decode_grey
from digitprep.pngtree import encode_png
from digittrain.predict import Predictor

PAGE = Path(__file__).parent / "page"
MAX_BYTES = 2 << 20  # a request body; the page's 280x280 PNGs are a few kilobytes
MAX_PIXELS = 4_000_000  # a decoded image; a larger one is refused before it is decoded
LABEL = re.compile(r"[0-9]")  # not \d: it takes other scripts' digits, which build reads as no label
TAG = re.compile(r"[0-9]{1,6}")
LABEL_RULE = "label must be one digit 0-9"
TAG_RULE = "tag must be 1 to 6 digits 0-9 (the drawing size, as in 3_20_0.png)"
SAVED = re.compile(r"(?P<label>[0-9])_(?P<tag>[0-9]+)_(?P<n>[0-9]+)\.png")


class ServeError(ValueError):
    """A folder to collect into or an address to listen on that cannot be used; one line, naming it."""


class Refused(HTTPException):
    """A request refused with a status and a one-line reason, sent as ``{"error": reason}``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


def collect_folder(path: Path) -> Path:
    """The folder drawings are saved into, created if missing, as an absolute path with links
    resolved. ServeError when it is a file or cannot be created or written."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ServeError(f"{path}: cannot collect into it (a file, not a folder)") from None
    except OSError as exc:
        raise ServeError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ServeError(f"{path}: cannot collect into it (not writable)")
    return folder.resolve()


def drawing(body: bytes) -> np.ndarray:
    """A request body -> the 2-D grey uint8 image it holds, as `digitprep build` decodes files.
    Refused (415) with decode_grey's reason when it is not a usable image."""
    if not body:
        raise Refused(400, "empty body: send the drawing as an image (PNG)")
    try:
        return decode_grey(body, max_pixels=MAX_PIXELS)
    except UnusableImage as exc:
        raise Refused(415, f"cannot use the image: {exc}") from None


def prediction(predictor: Predictor, grey: np.ndarray) -> dict:
    """What /predict answers for one grey image: the digit, one probability per class (in
    ``classes`` order) and the preprocessed image as a PNG data URL, shown as the model saw it
    (ink bright); ``digit`` None and a message when no ink stands out from the paper."""
    (row,) = predictor.preprocess(grey[None])
    classes = list(predictor.classes)
    if not row.any():  # preprocess's mark of an image with no ink
        return {"digit": None, "probabilities": None, "classes": classes, "seen": None, "message": "draw a digit"}
    # One forward pass on a (1, N) array of this request's own: MLP.forward keeps its results in
    # locals, so requests on the server's threads do not share state.
    (probabilities,) = predictor.predict_proba(row[None])
    seen = encode_png(row.reshape(predictor.size, predictor.size))
    return {
        "digit": int(classes[int(probabilities.argmax())]),
        "probabilities": [float(p) for p in probabilities],
        "classes": classes,
        "seen": "data:image/png;base64," + base64.b64encode(seen).decode("ascii"),
    }


def next_number(folder: Path, label: str, tag: str) -> int:
    """One more than the highest n of the ``<label>_<tag>_<n>.png`` files in ``folder`` (0 for
    none): numbers only grow, so a file removed by hand leaves its gap."""
    numbers = [
        int(match["n"])
        for match in map(SAVED.fullmatch, os.listdir(folder))
        if match and match["label"] == label and match["tag"] == tag
    ]
    return max(numbers, default=-1) + 1


def save_drawing(folder: Path, grey: np.ndarray, label: str, tag: str) -> Path:
    """Write the 2-D uint8 image ``grey`` as ``folder/<label>_<tag>_<n>.png`` (``folder`` absolute,
    links resolved, as ``collect_folder`` gives it), n the next free number. Each file is created
    exclusively, so two saves at once never overwrite each other: the one that loses a number takes
    the next. ValueError when ``label`` is not one digit 0-9 or ``tag`` not 1-6 digits; OSError
    when the file cannot be written."""
    if not LABEL.fullmatch(label):
        raise ValueError(LABEL_RULE)
    if not TAG.fullmatch(tag):
        raise ValueError(TAG_RULE)
    data = encode_png(grey)  # re-encoded from the decoded pixels, never the client's bytes
    n = next_number(folder, label, tag)
    while True:
        path = folder / f"{label}_{tag}_{n}.png"
        if path.resolve().parent != folder:  # built from digits alone, so never; checked all the same
            raise ValueError(f"{path}: not a file inside {folder}")
        try:
            with open(path, "xb") as handle:
                try:
                    handle.write(data)
                except BaseException:
                    path.unlink(missing_ok=True)  # no half-written drawing left for build to trip on
                    raise
            return path
        except FileExistsError:
            n += 1


def create_app(
    predictor: Predictor,
    collect_dir: Path | None = None,
    max_bytes: int = MAX_BYTES,
    report: Callable[[str], None] | None = None,
    name: str = "model",
) -> Flask:
    """The Flask app of `digittrain serve`: the drawing page at ``/``, ``POST /predict`` with the
    model's preprocessing, and ``POST /save`` into ``collect_dir`` (a folder that exists; None:
    saving refused with 403), each save told to ``report`` in one line; the page names the model
    ``name``. Request bodies over ``max_bytes`` are refused with 413."""
    app = Flask(__name__, static_folder=str(PAGE), static_url_path="/page")
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    folder = Path(collect_dir).resolve() if collect_dir is not None else None
    saving = threading.Lock()  # one save at a time in this process; "xb" guards against other processes

    def body() -> bytes:
        """The request's image bytes; an image/... Content-Type is required (see the module's note)."""
        if request.mimetype.partition("/")[0] != "image":
            raise Refused(415, f"send the drawing with Content-Type image/png, not {request.mimetype or 'none'!r}")
        return request.get_data(cache=False)

    @app.errorhandler(HTTPException)
    def refused(exc: HTTPException):
        if exc.code == 413:
            reason = f"image over the limit of {max_bytes} bytes"
        else:
            reason = str(exc.description or exc.name).splitlines()[0]
        return jsonify(error=reason), exc.code

    @app.get("/")
    def page():
        return send_from_directory(PAGE, "index.html")

    @app.get("/info")
    def info():
        return jsonify(
            model=name,
            classes=list(predictor.classes),
            size=predictor.size,
            collect=folder is not None,
            collect_dir=str(folder) if folder else None,
            max_bytes=max_bytes,
        )

    @app.post("/predict")
    def predict():
        return jsonify(prediction(predictor, drawing(body())))

    @app.post("/save")
    def save():
        if folder is None:
            raise Refused(403, "not collecting: start the server with --collect DIR to save drawings")
        label, tag = request.args.get("label", ""), request.args.get("tag")
        if not LABEL.fullmatch(label):  # checked before the body is read: a bad request costs nothing
            raise Refused(400, LABEL_RULE)
        if tag is not None and not TAG.fullmatch(tag):
            raise Refused(400, TAG_RULE)
        grey = drawing(body())
        (row,) = predictor.preprocess(grey[None])
        if not row.any():
            raise Refused(400, "nothing drawn: a blank drawing is not saved")
        try:
            with saving:
                path = save_drawing(folder, grey, label, tag or str(max(grey.shape)))
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
        except OSError as exc:
            raise Refused(500, f"cannot save into {folder} ({exc.strerror or exc})") from None
        if report is not None:
            report(f"saved {path}")
        return jsonify(saved=path.name, path=str(path), label=int(label))

    return app


def listening_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """A threaded werkzeug server for ``app`` bound to ``host``:``port`` (0: a free port, see
    ``server.port``). ServeError (one line) when the address cannot be used, such as a port in use;
    werkzeug's own bind would print two lines and exit."""
    # One line per request would bury the lines that matter (saves, errors); werkzeug's errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # first: create_server's error loses the reason
        listener = socket.create_server((host, port), family=select_address_family(host, port))
    except socket.gaierror as exc:  # a host name that does not resolve
        raise ServeError(f"{host}:{port}: cannot listen ({exc.strerror})") from None
    except OSError as exc:  # its message adds "(while attempting to bind on address ...)": the errno says it
        raise ServeError(f"{host}:{port}: cannot listen ({os.strerror(exc.errno) if exc.errno else exc})") from None
    with listener:  # werkzeug serves on a duplicate of it
        return make_server(host, port, app, threaded=True, fd=listener.fileno())


def serve_until_interrupted(server: BaseWSGIServer) -> None:
    """Answer requests until Ctrl-C, which ends it as a KeyboardInterrupt, as Ctrl-C ends every
    command (exit 130); the socket is closed either way."""
    try:
        socketserver.BaseServer.serve_forever(server)  # werkzeug's own swallows the KeyboardInterrupt
    finally:
        server.server_close()


def url_of(host: str, port: int) -> str:
    """The address to open in a browser: ``http://HOST:PORT/``, an IPv6 host in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
