"""The README's picture of `digittrain serve`: headless Chromium draws a digit on the page with
pointer moves (as the browser test does), waits for the prediction and saves a screenshot.

Usage: .venv/bin/python bench/screenshot_serve.py [--model reports/model_20.npz] [--digit 3]
       [--out docs/serve.png]

The model: `make train` writes reports/model_20.npz. Chromium and its driver: apt install chromium
chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). The server collects into a temporary
folder, so the page shows its "save as" buttons; nothing is saved.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import digittrain
from digittrain.serve import create_app, listening_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Strokes of a few digits as a hand draws them, in pixels from the 280-pixel canvas's centre.
DIGITS = {
    "2": [[(-60, -60), (-40, -95), (0, -105), (45, -90), (60, -55), (40, -10), (0, 35), (-45, 80), (-65, 100),
           (-20, 98), (30, 100), (70, 102)]],
    "3": [[(-55, -85), (-15, -105), (35, -100), (55, -70), (40, -30), (-5, -10), (45, 10), (60, 55), (35, 95),
           (-15, 105), (-60, 85)]],
    "4": [[(20, -105), (-20, -40), (-60, 30), (-10, 30), (40, 30), (75, 30)], [(35, -60), (35, 0), (35, 60),
          (35, 110)]],
    "7": [[(-70, -90), (-20, -92), (30, -91), (70, -90)], [(70, -90), (40, -20), (10, 40), (-15, 100)]],
}  # fmt: skip


def draw(driver, canvas, strokes) -> None:
    """Each stroke as one pointer down, straight moves through its points, and up."""
    for points in strokes:
        actions = ActionChains(driver).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
        for (x1, y1), (x0, y0) in zip(points[1:], points):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release().perform()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("reports/model_20.npz"), help="model file (make train)")
    parser.add_argument("--digit", choices=sorted(DIGITS), default="3", help="which digit to draw")
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"), help="PNG to write")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=760,1000"):
        options.add_argument(argument)
    with tempfile.TemporaryDirectory(prefix="drawings-") as collect:
        app = create_app(digittrain.load_model(args.model), Path(collect), name=str(args.model))
        server = listening_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.get(f"http://127.0.0.1:{server.port}/")
            wait = WebDriverWait(driver, 30)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
            draw(driver, driver.find_element(By.ID, "canvas"), DIGITS[args.digit])
            bars = driver.find_element(By.ID, "bars")
            wait.until(lambda d: bars.get_attribute("data-shown") == bars.get_attribute("data-asked"))
            shown = driver.find_element(By.ID, "digit").text
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.find_element(By.TAG_NAME, "body").screenshot(str(args.out))  # the page, not the window
        finally:
            driver.quit()
            server.shutdown()
    print(f"{args.out}: drew a {args.digit}, the page shows {shown} ({args.model})")
    if shown != args.digit:
        sys.exit(f"{args.model} read the {args.digit} as {shown}: pick another --digit or model for the README")


if __name__ == "__main__":
    main()
