"""`digitprep form`: a printable page of boxes to write digits in, and photos of it cut into labelled digits.

The form (A4 or Letter) holds ROWS x COLS square boxes with thin printed outlines, the digit each
row (or column) is for printed small and grey at its start, a few lines of instructions, and an
ArUco marker (OpenCV's DICT_4X4_50, ids 0-3 clockwise from the top left) in each corner. Its
layout, every position in millimetres, is written as JSON beside it and inside the PNG or PDF.

A photo (or scan) of the filled-in form is cut in four steps:

1. **Markers**: ``cv2.aruco.ArucoDetector`` finds the four markers. Each one's outer corner is a
   known point of the paper; it is taken by the marker's id, so a photo taken upside down is still
   read the right way up.
2. **Straightening**: the perspective transform taking those corners to their millimetre
   positions warps the photo onto the form's own coordinates, PX_PER_MM pixels a millimetre.
3. **Even light**: the form is divided by its paper (a grey closing wider than any stroke, on a
   reduced copy, smoothed): the paper comes out white from corner to corner, shadows gone.
4. **Boxes**: no photo straightens exactly (paper curls, lenses bend), so each printed line is
   found again within SEARCH_MM of where the layout puts it: the outermost place of a profile across
   it that is dark all along (a pen stroke is dark only where it was drawn; only gap paper lies
   outside a box, while a long stroke may run close inside its line), measured on each half
   of the side apart, so a line that still leans is caught at both ends. The box is cut INSET_MM
   inside the innermost of them, edge rows that still hold a run of line are trimmed off, and the
   inside is resized to a square. A page where most lines are not where the layout has them is
   refused: every form has the same markers, and the JSON may be another form's.

A cut with no ink standing out from its paper (``paper.paper_and_ink``, the test `build` uses), or
with nothing INK_DARKNESS darker than the evened paper (a box in deep shadow: grain and JPEG blocks
only), is an empty box.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from digitprep.atomic import OutputSet
from digitprep.paper import odd
from digitprep.slice import Cutter, Grid, PageCut, blank_cells, labelled_cells

FORMAT, VERSION = "digitprep-form", 1
PAPERS = {"a4": ("A4", 210.0, 297.0), "letter": ("Letter", 215.9, 279.4)}  # name, width, height (mm)
SUFFIXES = (".pdf", ".png")
DEFAULT_DPI = 200  # a printed form's pixels per inch: its 0.4 mm lines are 3 pixels wide

# The page, in millimetres.
MARGIN_MM = 8.0  # paper edge to the markers' outer edges: inside any printer's unprintable border
MARKER_MM = 16.0  # a marker's side: 6 modules of 2.7 mm, read from a phone photo of the whole page
QUIET_MM = 4.0  # white kept around each marker; the detector needs its outline against paper
GUIDE_MM = 10.0  # the column (or row) of grey guide digits
BOX_MM = 18.0  # the largest box: room for a digit at handwriting size, and no more
MIN_BOX_MM = 10.0  # smaller boxes would be written over their lines
GAP_MM = 4.0  # between boxes: twice SEARCH_MM, so a box never finds its neighbour's line
LINE_MM = 0.4  # box outlines: thin enough to stay out of the cut, dark enough to be found again
GUIDE_GREY = 120  # guide digits and instructions print grey: models, not digits to be read

# Markers: DICT_4X4_50's first four, clockwise from the page's top-left corner. A marker's corners
# come back clockwise from its own top-left, so marker k's outer corner is its corner k.
DICTIONARY = "DICT_4X4_50"
MARKER_IDS = (0, 1, 2, 3)
MARKERS = {"dictionary": DICTIONARY, "ids": list(MARKER_IDS)}  # as the layout JSON records them
DETECT_SIDE = 1600  # a photo whose markers are not all found at full size is tried this size too

# Cutting, in the straightened form.
PX_PER_MM = 8.0  # an 18 mm box is 144 pixels; its inside comes out 128 a side
PAPER_MM = 4.0  # the paper's light is a grey closing this wide: wider than any pen stroke
SEARCH_MM = 2.0  # a printed line is looked for this far either side of where the layout puts it
LINE_DARKNESS = 40  # a line's profile stands at least this far (levels) above the paper's
LINE_COVER = 0.9  # and is dark along this share of its length
INSET_MM = 0.8  # a cut starts this far inside the line's edge: a photo blurs a line wider
TRIM_MM = 0.8  # edge rows holding a line's run are trimmed off, this far at most
RUN_SHARE = 0.9  # an edge row dark along this share of its length holds a line (a stroke rarely spans it)
DARK_LEVEL = 96  # darkness (255 - level, paper at 0) from which an edge pixel is ink or line
LINES_FOUND = 0.8  # a page where fewer of the box lines are found is not the layout's form
INK_DARKNESS = 64  # a box with nothing this much darker than its evened paper (255) is empty


@dataclass(frozen=True)
class FormLayout:
    """Where everything of a printed form is, in millimetres from the paper's top-left corner:
    ``rows`` x ``cols`` boxes of ``box_mm`` (between line centres) ``gap_mm`` apart, box (0, 0)'s
    top-left at (``left_mm``, ``top_mm``); labels as ``slice.Grid`` (``axis``, ``labels``,
    ``repeat``); markers ``marker_mm`` a side, ``margin_mm`` from the paper's edges.
    ValueError when a value is out of range (boxes under MIN_BOX_MM, or under SEARCH_MM apart) or a
    box runs off the paper or into a marker."""

    paper: str
    rows: int
    cols: int
    axis: str
    labels: str
    repeat: int
    box_mm: float
    gap_mm: float
    left_mm: float
    top_mm: float
    line_mm: float = LINE_MM
    marker_mm: float = MARKER_MM
    margin_mm: float = MARGIN_MM

    def __post_init__(self):
        if self.paper not in PAPERS:
            raise ValueError(f"paper {self.paper!r} is not one of {', '.join(PAPERS)}")
        self.grid()  # the grid's own checks: rows, cols, axis, labels, repeat
        if self.box_mm < MIN_BOX_MM or self.gap_mm < SEARCH_MM:
            raise ValueError(
                f"box_mm {self.box_mm:g} and gap_mm {self.gap_mm:g} must be at least {MIN_BOX_MM:g} and {SEARCH_MM:g}"
            )
        if not 0 < self.line_mm < min(self.box_mm / 4, self.gap_mm):
            raise ValueError(f"line_mm {self.line_mm} must be above 0 and under a quarter box and the gap")
        if self.margin_mm < 0 or self.marker_mm <= 0:
            raise ValueError("margin_mm and marker_mm must be positive")
        width, height = self.page_mm
        clear = self.margin_mm + self.marker_mm  # boxes stay out of the bands the markers stand in
        right, bottom = self.box_origin(self.rows - 1, self.cols - 1) + self.box_mm
        slack = 1e-6  # tenths of a millimetre added up in floating point
        if self.left_mm < self.margin_mm - slack or right > width - self.margin_mm + slack:
            raise ValueError(f"the boxes run from {self.left_mm:g} to {right:g} mm across a {width:g} mm page")
        if self.top_mm < clear - slack or bottom > height - clear + slack:
            raise ValueError(f"the boxes run from {self.top_mm:g} to {bottom:g} mm down a {height:g} mm page")

    @property
    def page_mm(self) -> tuple[float, float]:
        """(width, height) of the paper in mm."""
        return PAPERS[self.paper][1:]

    @property
    def paper_name(self) -> str:
        return PAPERS[self.paper][0]

    @property
    def pitch_mm(self) -> float:
        return self.box_mm + self.gap_mm

    def grid(self) -> Grid:
        """The boxes as a ``slice.Grid``: its ``cell_labels()`` are the boxes' labels."""
        return Grid(self.rows, self.cols, self.axis, self.labels, self.repeat)

    def box_origin(self, row: int, col: int) -> np.ndarray:
        """(2,) float64 (x, y) mm: the top-left line centre of box (row, col)."""
        return np.array([self.left_mm + col * self.pitch_mm, self.top_mm + row * self.pitch_mm])

    def marker_corners_mm(self) -> np.ndarray:
        """(4, 2) float64 (x, y) mm: the outer corners of markers 0-3 (top-left, top-right,
        bottom-right, bottom-left of the paper)."""
        (width, height), m = self.page_mm, self.margin_mm
        return np.array([[m, m], [width - m, m], [width - m, height - m], [m, height - m]])

    def to_json(self) -> str:
        """The layout as JSON, with its format and version."""
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self), "markers": MARKERS}, indent=2)


def plan_form(
    paper: str = "a4", rows: int = 10, cols: int | None = None, axis: str = "rows", labels: str = "0123456789",
    repeat: int = 1,
) -> FormLayout:  # fmt: skip
    """The layout of ``rows`` x ``cols`` boxes (``cols`` None: as many as fit) centred on ``paper``,
    each as large as fits up to BOX_MM. ValueError (one line) when the boxes would be under
    MIN_BOX_MM, or for labels ``slice.Grid`` refuses."""
    if paper not in PAPERS:
        raise ValueError(f"paper {paper!r} is not one of {', '.join(PAPERS)}")
    name, width, height = PAPERS[paper]
    band = MARGIN_MM + MARKER_MM + QUIET_MM  # above and below the boxes: markers and instructions
    across = width - 2 * MARGIN_MM - (GUIDE_MM if axis == "rows" else 0)
    down = height - 2 * band - (GUIDE_MM if axis == "cols" else 0)
    box = min(BOX_MM, (down + GAP_MM) / max(rows, 1) - GAP_MM)
    if box < MIN_BOX_MM:
        raise ValueError(
            f"{rows} rows do not fit on {name} paper: their boxes would be {math.floor(10 * max(box, 0)) / 10:g} mm,"
            f" under {MIN_BOX_MM:g} mm; ask for fewer rows"
        )
    if cols is None:
        cols = max(1, int((across + GAP_MM) // (box + GAP_MM)))
    box = math.floor(10 * min(box, (across + GAP_MM) / cols - GAP_MM)) / 10  # whole tenths of a mm
    if box < MIN_BOX_MM:
        raise ValueError(
            f"{cols} columns do not fit on {name} paper: their boxes would be {max(box, 0):g} mm,"
            f" under {MIN_BOX_MM:g} mm; ask for fewer columns"
        )
    grid_width, grid_height = cols * box + (cols - 1) * GAP_MM, rows * box + (rows - 1) * GAP_MM
    left = MARGIN_MM + (GUIDE_MM if axis == "rows" else 0) + (across - grid_width) / 2
    top = band + (GUIDE_MM if axis == "cols" else 0) + (down - grid_height) / 2
    return FormLayout(paper, rows, cols, axis, labels, repeat, box, GAP_MM, round(left, 2), round(top, 2))


def layout_from_json(text: str) -> FormLayout:
    """A FormLayout from ``to_json``'s text; ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f'not a digitprep form layout (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise ValueError(f"layout version {data.get('version')!r}; this digitprep reads version {VERSION}")
    if data.get("markers") != MARKERS:
        raise ValueError(f"markers {data.get('markers')!r}; this digitprep prints and reads {MARKERS}")
    values = {}
    for item in fields(FormLayout):
        if item.name not in data:
            raise ValueError(f"no {item.name!r}")
        value, kind = data[item.name], {"int": int, "float": (int, float), "str": str}[item.type]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{item.name!r} is {value!r}, not a {item.type}")
        values[item.name] = float(value) if item.type == "float" else value
    return FormLayout(**values)


def read_layout(path: Path) -> FormLayout:
    """The layout a form was printed from: its JSON, or the form's own PNG or PDF (which carry the
    JSON too). ValueError (one line naming the file) when it cannot be read or is no layout."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return layout_from_json(embedded_layout(data))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def embedded_layout(data: bytes) -> str:
    """The layout JSON text in a form's bytes: a PNG's text chunk, a PDF's Subject, or the bytes
    themselves (UTF-8). ValueError when a PNG or PDF carries none."""
    from PIL import Image, PdfParser

    if data.startswith(b"\x89PNG"):
        try:
            text = Image.open(io.BytesIO(data)).text.get(FORMAT)
        except (OSError, SyntaxError, ValueError):  # Pillow's ways of saying a PNG is broken
            raise ValueError("not a readable PNG") from None
    elif data.startswith(b"%PDF"):
        try:
            subject = PdfParser.PdfParser(buf=data).info.get(PdfParser.PdfName("Subject"))
            text = None if subject is None else PdfParser.decode_text(subject)
        except Exception:  # Pillow reads the PDFs it writes; another maker's may defeat it
            text = None
    else:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not a form layout (neither JSON nor a form's PNG or PDF)") from None
    if text is None:
        raise ValueError("holds no digitprep form layout; give the .json written beside the form")
    return text


def px(mm: float, scale: float) -> int:
    """The pixel edge nearest ``mm`` at ``scale`` pixels a millimetre."""
    return round(mm * scale)


def marker_images(side: int) -> list[np.ndarray]:
    """Markers 0-3 as uint8 (side, side) images, black on white with a one-module black border."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))
    return [cv2.aruco.generateImageMarker(dictionary, marker, side, borderBits=1) for marker in MARKER_IDS]


def put_text(page: np.ndarray, text: str, centre: tuple[float, float], height: float, width: float, grey: int):
    """``text`` in OpenCV's Hershey simplex, centred on ``centre`` (pixels), capitals ``height``
    pixels tall or less so that it fits ``width``; strokes an eighth of the height thick."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (unit_width, unit_height), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(height / unit_height, width / unit_width)
    thickness = max(1, round(scale * unit_height / 8))
    (text_width, text_height), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (round(centre[0] - text_width / 2), round(centre[1] + text_height / 2))
    cv2.putText(page, text, origin, font, scale, grey, thickness, cv2.LINE_AA)


def instructions(layout: FormLayout) -> tuple[list[str], list[str]]:
    """The lines printed above the boxes and below them."""
    where = "beside its row" if layout.axis == "rows" else "above its column"
    repeat = f" x{layout.repeat}" if layout.repeat > 1 else ""
    title = f"digitprep form: {layout.rows} x {layout.cols} boxes, {layout.axis}={layout.labels}{repeat}, "
    return (
        [title + layout.paper_name, f"Write one digit in each box, in dark pen: the digit printed {where}."],
        [
            "Leave a box empty to skip it. Keep each digit inside its box, clear of the lines.",
            "Photograph the whole page, flat and evenly lit, with all four corner squares,",
            "then: digitprep slice PHOTO.jpg --form FORM.json --out-dir DIR",
        ],
    )


def render_form(layout: FormLayout, dpi: int = DEFAULT_DPI) -> np.ndarray:
    """The printed page as uint8 (H, W) grey at ``dpi`` (A4 at 200 dpi: 2339 x 1654): white
    paper, black box outlines ``line_mm`` wide, grey guide digits and instructions, the four
    markers in their white quiet zones."""
    scale = dpi / 25.4
    width, height = layout.page_mm
    page = np.full((px(height, scale), px(width, scale)), 255, np.uint8)
    side = px(layout.marker_mm, scale)
    margin = layout.margin_mm
    near, far_x, far_y = px(margin, scale), px(width - margin, scale) - side, px(height - margin, scale) - side
    origins = [(near, near), (far_x, near), (far_x, far_y), (near, far_y)]
    for (x, y), marker in zip(origins, marker_images(side)):
        page[y : y + side, x : x + side] = marker
    line = layout.line_mm / 2
    for row in range(layout.rows):
        for col in range(layout.cols):
            x, y = layout.box_origin(row, col)
            end_x, end_y = x + layout.box_mm, y + layout.box_mm
            page[px(y - line, scale) : px(end_y + line, scale), px(x - line, scale) : px(end_x + line, scale)] = 0
            inner_y = slice(px(y + line, scale), max(px(end_y - line, scale), px(y + line, scale) + 1))
            inner_x = slice(px(x + line, scale), max(px(end_x - line, scale), px(x + line, scale) + 1))
            page[inner_y, inner_x] = 255
    labels = layout.grid().cell_labels()
    guide = GUIDE_MM * scale
    for k in range(layout.rows if layout.axis == "rows" else layout.cols):
        x, y = layout.box_origin(k, 0) if layout.axis == "rows" else layout.box_origin(0, k)
        middle = (x + layout.box_mm / 2) * scale, (y + layout.box_mm / 2) * scale
        digit = str(labels[k, 0] if layout.axis == "rows" else labels[0, k])
        centre = (x * scale - guide / 2, middle[1]) if layout.axis == "rows" else (middle[0], y * scale - guide / 2)
        put_text(page, digit, centre, 0.45 * guide, guide, GUIDE_GREY)
    above, below = instructions(layout)
    text_width = (width - 2 * (layout.margin_mm + layout.marker_mm + QUIET_MM)) * scale
    for lines, band_top in ((above, layout.margin_mm), (below, height - layout.margin_mm - layout.marker_mm)):
        pitch = layout.marker_mm * scale / len(lines)
        for k, text in enumerate(lines):
            bold = lines is above and k == 0
            centre = (width * scale / 2, band_top * scale + (k + 0.5) * pitch)
            put_text(page, text, centre, pitch * (0.5 if bold else 0.36), text_width, 0 if bold else GUIDE_GREY)
    return page


def form_format(path: Path) -> str:
    """The form's format, "pdf" or "png", from ``path``'s ending; ValueError naming it for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: a form is written as .pdf or .png, not {suffix or 'a name without an ending'}")
    return suffix[1:]


def encode_form(page: np.ndarray, layout: FormLayout, fmt: str, dpi: int) -> bytes:
    """The page as PNG (grey, ``dpi`` recorded, the layout JSON in an iTXt chunk) or as a one-page
    PDF of the page's size at ``dpi`` (the image JPEG-coded at quality 95, Pillow's only grey
    coding; the JSON as the document's Subject; no dates, so the same form gives the same bytes)."""
    from PIL import Image, PngImagePlugin

    image, buffer = Image.fromarray(page, "L"), io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(FORMAT, layout.to_json(), zip=True)
        image.save(buffer, "PNG", dpi=(dpi, dpi), pnginfo=info)
    else:
        title = f"digitprep form {layout.rows}x{layout.cols} {layout.paper_name}"
        image.save(
            buffer, "PDF", resolution=dpi, quality=95, title=title, subject=layout.to_json(), keywords=FORMAT,
            creator="digitprep", creationDate=None, modDate=None,
        )  # fmt: skip
    return buffer.getvalue()


def write_form(out: Path, layout: FormLayout, dpi: int = DEFAULT_DPI) -> Path:
    """Write the form to ``out`` (.pdf or .png, from its name) and its layout to ``out`` with
    .json, together and atomically; returns the JSON's path. ValueError before anything is
    written for another ending; OutputError when a file cannot be written."""
    out = Path(out)
    fmt = form_format(out)
    sidecar = out.with_suffix(".json")
    data = encode_form(render_form(layout, dpi), layout, fmt, dpi)
    with OutputSet() as outputs:
        outputs.write(sidecar, (layout.to_json() + "\n").encode())
        outputs.write(out, data)
        outputs.commit()
    return sidecar


def find_markers(page: np.ndarray, name: str = "page") -> np.ndarray:
    """(4, 2) float32 (x, y): the outer corners of markers 0-3 in a 2-D uint8 page, in pixels
    (OpenCV's convention: pixel centres at whole numbers). The page is searched as it is and, when
    markers are missing, reduced to DETECT_SIDE pixels. ValueError (one line naming ``name``)
    when one is missing or the four do not enclose the paper."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))
    parameters = cv2.aruco.DetectorParameters()
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(dictionary, parameters)
    found: dict[int, np.ndarray] = {}
    scales = [1.0] + ([DETECT_SIDE / max(page.shape)] if max(page.shape) > DETECT_SIDE else [])
    for scale in scales:
        image = page if scale == 1 else cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        corners, ids, _ = detector.detectMarkers(image)
        marker_ids = [] if ids is None else ids.ravel().tolist()
        for quad, marker in sorted(zip(corners, marker_ids), key=lambda item: -cv2.contourArea(item[0])):
            if marker in MARKER_IDS and marker not in found:  # the largest, should a marker show twice
                found[marker] = (quad.reshape(4, 2)[marker] + 0.5) / scale - 0.5
        if len(found) == len(MARKER_IDS):
            break
    if len(found) < len(MARKER_IDS):
        seen = ", ".join(map(str, sorted(found))) or "none"
        raise ValueError(
            f"{name}: found markers {seen} of 0-3; photograph the whole form, with its four corner squares"
        )
    corners = np.array([found[marker] for marker in MARKER_IDS], np.float32)
    # Clockwise in the image (y down: a positive area) and convex, as the paper's corners are.
    area = 0.5 * float(np.sum(corners[:, 0] * np.roll(corners[:, 1], -1) - np.roll(corners[:, 0], -1) * corners[:, 1]))
    if area <= 0 or not cv2.isContourConvex(corners.reshape(-1, 1, 2)):
        raise ValueError(f"{name}: the four corner squares are not a form's corners; photograph one whole form")
    return corners


def straighten(page: np.ndarray, corners: np.ndarray, layout: FormLayout) -> np.ndarray:
    """The form warped from a 2-D uint8 photo onto its own coordinates: uint8 (H, W) at
    PX_PER_MM, millimetre (x, y) at pixel (x, y) * PX_PER_MM (pixel edges), given ``find_markers``'
    corners. A photo holding the form at more than twice that is first reduced (``INTER_AREA``):
    the warp samples, it does not average."""
    target = layout.marker_corners_mm() * PX_PER_MM - 0.5
    photo_per_mm = np.linalg.norm(corners[1] - corners[0]) / np.linalg.norm(target[1] - target[0]) * PX_PER_MM
    if photo_per_mm > 2 * PX_PER_MM:
        scale = 1.5 * PX_PER_MM / photo_per_mm
        page = cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        corners = (corners + 0.5) * scale - 0.5
    width, height = layout.page_mm
    transform = cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32))
    size = (px(width, PX_PER_MM), px(height, PX_PER_MM))
    return cv2.warpPerspective(page, transform, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def even_light(form: np.ndarray) -> np.ndarray:
    """A straightened form (uint8) divided by its paper, so the paper is near 255 everywhere: the
    paper is a grey closing PAPER_MM wide (ink and lines are narrower, so it keeps only the paper)
    of a copy reduced to 2 pixels a millimetre, smoothed and brought back up."""
    reduce = 2 / PX_PER_MM
    small = cv2.resize(form, None, fx=reduce, fy=reduce, interpolation=cv2.INTER_AREA)
    side = odd(PAPER_MM * 2)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    paper = cv2.GaussianBlur(paper.astype(np.float32), (0, 0), side / 2, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.resize(paper, form.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return np.clip(form * (255 / np.maximum(paper, 1)), 0, 255).round().astype(np.uint8)


def line_centres(darkness: np.ndarray, expected: float, along: tuple[float, float], outward: int) -> list[float | None]:
    """Where a vertical printed line really is, near column ``expected`` (pixels) of a 2-D float32
    darkness image (paper 0), measured on each half of the rows ``along`` spans: per half, the
    centroid of the outermost column (``outward`` -1: the lowest, +1: the highest) that is a line:
    LINE_DARKNESS above the rest and dark all along (LINE_COVER of its rows), as a pen stroke is
    only where it was drawn; None when no column is. Outermost, not darkest: only gap paper lies
    outside a box's line, while a long stroke written close inside it (the bar of a 7) can be as
    dark and as long as the line over half a side."""
    search = SEARCH_MM * PX_PER_MM
    low, high = max(0, math.floor(expected - search)), min(darkness.shape[1], math.ceil(expected + search) + 1)
    first, last = round(along[0]), round(along[1])
    centres: list[float | None] = []
    for start, stop in ((first, (first + last) // 2), ((first + last) // 2, last)):
        profile = darkness[start:stop, low:high].mean(axis=0)
        floor = float(np.median(profile))
        peaks = [
            k
            for k in range(len(profile))
            if profile[k] - floor >= LINE_DARKNESS
            and profile[k] >= profile[max(k - 1, 0)]
            and profile[k] >= profile[min(k + 1, len(profile) - 1)]
        ]
        line = None
        for peak in peaks if outward < 0 else peaks[::-1]:
            along_line = darkness[start:stop, low + max(0, peak - 1) : low + peak + 2].max(axis=1)  # leaning a pixel
            dark = along_line >= max(LINE_DARKNESS, float(np.percentile(along_line, 90)) / 2)
            if dark.mean() >= LINE_COVER:
                line = peak
                break
        if line is None:
            centres.append(None)
            continue
        reach = math.ceil(LINE_MM * PX_PER_MM) + 1  # the line and its blur, not the ink beside it
        window = slice(max(0, line - reach), line + reach + 1)
        weight = np.maximum(profile[window] - (floor + profile[line]) / 2, 0)
        centres.append(low + window.start + float(np.sum(weight * np.arange(len(weight))) / np.sum(weight)))
    return centres


def box_bounds(darkness: np.ndarray, layout: FormLayout, row: int, col: int) -> tuple[tuple[int, ...], int]:
    """(top, bottom, left, right) pixel edges of box (row, col)'s inside in the straightened
    form, INSET_MM inside the innermost place found for each of its four lines; and how many of
    the 8 half lines were found (the others are taken where the layout puts them)."""
    x, y = layout.box_origin(row, col) * PX_PER_MM - 0.5  # pixel centres
    side, clear = layout.box_mm * PX_PER_MM, (layout.line_mm / 2 + INSET_MM) * PX_PER_MM
    along = (y + clear, y + side - clear), (x + clear, x + side - clear)  # away from the corners

    seen = []

    def found(image, expected, span, outward):
        centres = line_centres(image, expected, span, outward)
        seen.extend(c is not None for c in centres)
        innermost = max if outward < 0 else min  # of the two halves' places: a leaning line's inner end
        return innermost(expected if c is None else c for c in centres)

    left = found(darkness, x, along[0], -1) + clear
    right = found(darkness, x + side, along[0], +1) - clear
    top = found(darkness.T, y, along[1], -1) + clear
    bottom = found(darkness.T, y + side, along[1], +1) - clear
    return (math.ceil(top), math.floor(bottom) + 1, math.ceil(left), math.floor(right) + 1), sum(seen)


def trimmed(cut: np.ndarray) -> np.ndarray:
    """A box's cut without the edge rows and columns that still hold a run of its line (dark
    along RUN_SHARE of them), at most TRIM_MM a side: a remnant the inset did not clear."""
    most = round(TRIM_MM * PX_PER_MM)
    top, bottom, left, right = 0, cut.shape[0], 0, cut.shape[1]
    dark = (255 - cut.astype(np.int16)) >= DARK_LEVEL
    while top < most and dark[top, left:right].mean() >= RUN_SHARE:
        top += 1
    while cut.shape[0] - bottom < most and dark[bottom - 1, left:right].mean() >= RUN_SHARE:
        bottom -= 1
    while left < most and dark[top:bottom, left].mean() >= RUN_SHARE:
        left += 1
    while cut.shape[1] - right < most and dark[top:bottom, right - 1].mean() >= RUN_SHARE:
        right -= 1
    return cut[top:bottom, left:right]


def cut_side(layout: FormLayout) -> int:
    """Pixels a side of every cut: the box's inside at PX_PER_MM (130 for an 18 mm box)."""
    return round((layout.box_mm - layout.line_mm - 2 * INSET_MM) * PX_PER_MM)


def cut_boxes(form: np.ndarray, layout: FormLayout) -> tuple[np.ndarray, float]:
    """(rows, cols, S, S) uint8: the inside of every box of a straightened, evenly lit form, its
    printed lines left out, resized to ``cut_side`` (``INTER_AREA``); and the share of the boxes'
    lines found near where the layout puts them (near 1 for the form the layout describes)."""
    side = cut_side(layout)
    darkness = 255 - form.astype(np.float32)
    cells = np.empty((layout.rows, layout.cols, side, side), np.uint8)
    found = 0
    for row in range(layout.rows):
        for col in range(layout.cols):
            (top, bottom, left, right), lines = box_bounds(darkness, layout, row, col)
            found += lines
            cut = trimmed(form[top:bottom, left:right])
            cells[row, col] = cv2.resize(cut, (side, side), interpolation=cv2.INTER_AREA)
    return cells, found / (8 * layout.rows * layout.cols)


def read_form(page: np.ndarray, layout: FormLayout, name: str = "page") -> np.ndarray:
    """(rows, cols, S, S) uint8 box insides (dark ink on white) of a photo or scan of the printed
    form (2-D uint8). ValueError (one line naming ``name``) when its markers are not all found,
    or when under LINES_FOUND of its boxes' lines are where the layout puts them (the layout of
    another form: every form has the same markers)."""
    form = straighten(page, find_markers(page, name), layout)
    cells, found = cut_boxes(even_light(form), layout)
    if found < LINES_FOUND:
        raise ValueError(
            f"{name}: only {found:.0%} of the box lines are where the layout has them; is this the form"
            f" that layout ({layout.rows}x{layout.cols} boxes, {layout.paper_name}) was written with?"
        )
    return cells


def form_cutter(layout: FormLayout) -> Cutter:
    """The printed-form layout for `digitprep slice`: every box with ink, labelled by its place
    (``layout.grid()``); boxes without ink are empty."""
    labels = layout.grid().cell_labels()

    def cut(page: np.ndarray, name: str) -> PageCut:
        cells = read_form(page, layout, name)
        # On evenly lit paper (255) pen ink is dark; a box whose darkest pixel is still light holds
        # only shadow, grain or JPEG blocks that the per-box paper test would lift into "ink".
        faint = cells.min(axis=(2, 3)) > 255 - INK_DARKNESS
        return labelled_cells(cells, labels, blank_cells(cells) | faint)

    return cut
