"""`digittrain serve` in a real browser: headless Chromium (Selenium 4) draws a digit's strokes on
the page's canvas with pointer moves, reads the prediction the page shows, saves the drawing and
finds it in the collect folder, where `digitprep build` reads it with its label. Skipped where
Chromium, its driver or Selenium is missing (`.ci/run` installs the first two)."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_serve import SIZE, model_path, predictor  # noqa: F401 (session fixtures: the model trained once)

import digitprep
from digitprep.cli import main as digitprep_main
from digitprep.decode import decode_grey
from digittrain.serve import create_app, listening_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = "no chromium/chromedriver: apt install chromium chromium-driver"
# A 7 in two strokes, in pixels from the canvas's centre: the bar, then the stem from its right end.
STROKES = [[(-70, -90), (-20, -92), (30, -91), (70, -90)], [(70, -90), (40, -20), (10, 40), (-15, 100)]]
WAIT = 30  # seconds for the page to answer; a prediction takes milliseconds


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(MISSING)
    webdriver = pytest.importorskip("selenium.webdriver", reason="no selenium: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # both paths given: Selenium Manager never downloads anything
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def served(predictor, tmp_path):  # noqa: F811 (the fixture imported above)
    """The page served by a real threaded server on a free port; (its URL, the collect folder)."""
    collect = tmp_path / "collect"
    collect.mkdir()
    server = listening_server(create_app(predictor, collect), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/", collect
    server.shutdown()
    thread.join()


def draw(driver, canvas, strokes):
    from selenium.webdriver import ActionChains

    for points in strokes:
        (x, y), rest = points[0], points[1:]
        actions = ActionChains(driver).move_to_element_with_offset(canvas, x, y).click_and_hold()
        for (x1, y1), (x0, y0) in zip(rest, points):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release().perform()


def canvas_png(driver) -> bytes:
    url = driver.execute_script("return document.getElementById('canvas').toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def test_a_drawing_is_predicted_shown_and_saved(browser, served, predictor, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, collect = served
    browser.get(url)
    wait = WebDriverWait(browser, WAIT)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert browser.find_element(By.ID, "message").text == "draw a digit"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 10
    canvas = browser.find_element(By.ID, "canvas")
    # Its pixels shown one to one (a 1-pixel border around them), so offsets from its centre are pixels.
    assert browser.execute_script("return [arguments[0].clientWidth, arguments[0].clientHeight]", canvas) == [280, 280]
    assert canvas.size == {"width": 282, "height": 282}

    draw(browser, canvas, STROKES)
    bars = browser.find_element(By.ID, "bars")
    wait.until(lambda d: bars.get_attribute("data-shown") == bars.get_attribute("data-asked"))
    shown_digit = int(browser.find_element(By.ID, "digit").text)
    shown = [
        float(browser.find_element(By.CSS_SELECTOR, f"#bars .bar[data-class='{k}'] .value").text) for k in range(10)
    ]
    assert sum(shown) == pytest.approx(1, abs=0.006)  # ten values rounded to 3 decimals

    # The server's own prediction for the drawing the page holds: what the page shows.
    drawing = canvas_png(browser)
    grey = decode_grey(drawing)
    assert grey.shape == (280, 280)
    row = predictor.preprocess(grey[None])
    expected = predictor.predict_proba(row)[0]
    assert shown_digit == int(expected.argmax())
    assert np.allclose(shown, expected, atol=0.0006)
    seen = browser.find_element(By.ID, "seen").get_attribute("src")
    assert np.array_equal(decode_grey(base64.b64decode(seen.split(",", 1)[1])).reshape(-1), row[0])
    assert browser.find_element(By.ID, "seen").size == {"width": 140, "height": 140}

    browser.find_element(By.ID, "save-7").click()
    saved = browser.find_element(By.ID, "saved")
    wait.until(lambda d: saved.text.startswith("saved ") or "error" in saved.get_attribute("class"))
    assert saved.text == "saved 7_280_0.png"
    assert os.listdir(collect) == ["7_280_0.png"]
    stored = decode_grey((collect / "7_280_0.png").read_bytes())
    assert np.array_equal(stored, grey)  # the drawing as the page held it, pixel for pixel
    for points in STROKES:  # ink where the strokes went, paper in the corners
        for x, y in points:
            assert stored[140 + y, 140 + x] < 60, (x, y)
    assert stored[:20, :20].min() == stored[-20:, -20:].min() == 255
    assert (stored < 128).mean() == pytest.approx(0.08, abs=0.05)  # an 18-pixel marker, not a blot

    # After a save the paper is clean and the answer cleared; a save of nothing is refused on the page.
    wait.until(lambda d: decode_grey(canvas_png(d)).min() == 255)
    assert browser.find_element(By.ID, "digit").text == ""
    assert browser.find_element(By.ID, "message").text == "draw a digit"
    browser.find_element(By.ID, "save-3").click()
    assert saved.text == "draw a digit first"
    assert os.listdir(collect) == ["7_280_0.png"]

    out = tmp_path / "x.csv"
    result = CliRunner().invoke(digitprep_main, ["build", str(collect), "--sizes", str(SIZE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    built = digitprep.load_csv(out)
    assert built.target.tolist() == [7]
    assert built.manifest["tag"].tolist() == ["280"]


def test_a_digit_begun_while_a_save_is_on_its_way_is_the_next_drawing(browser, predictor, tmp_path):  # noqa: F811
    """The save takes the drawing at the press: a stroke drawn before the server answers (a phone on a
    slow network) is neither saved with it nor wiped by the answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    collect = tmp_path / "collect"
    collect.mkdir()
    app = create_app(predictor, collect)
    release = threading.Event()

    @app.before_request
    def slow_save():
        from flask import request

        if request.path == "/save":
            release.wait(3 * WAIT)  # until the test lets it go

    server = listening_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        wait = WebDriverWait(browser, WAIT)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        canvas = browser.find_element(By.ID, "canvas")
        draw(browser, canvas, STROKES)
        seven = decode_grey(canvas_png(browser))
        browser.find_element(By.ID, "save-7").click()
        # Cleared at the press, while the server still holds the save.
        WebDriverWait(browser, 5).until(lambda d: decode_grey(canvas_png(d)).min() == 255)
        one = [[(0, -100), (0, 0), (0, 100)]]
        draw(browser, canvas, one)  # while the save waits
        release.set()
        saved = browser.find_element(By.ID, "saved")
        wait.until(lambda d: saved.text.startswith("saved "))
        stored = decode_grey((collect / "7_280_0.png").read_bytes())
        assert np.array_equal(stored, seven)  # the 7 alone
        now = decode_grey(canvas_png(browser))
        assert now[140, 140] < 60 and now[140 - 90, 140 + 30] == 255  # the 1 stays; no bar of the 7
    finally:
        release.set()
        server.shutdown()
        thread.join()
