#!/usr/bin/env python
"""Open a `vocoder report` page from disk in headless Chromium and check it as a reader would see it.

    python scripts/check_report_browser.py OUT_DIR/index.html --screenshot page.png [--top top.png]

Asserts: no console errors (a missing image or audio file is one), every <img> loaded (naturalWidth > 0,
after scrolling it into view: the page lazy-loads figures), every <audio> has a source whose type the
browser can play (canPlayType non-empty) and, after load(), no media error and readyState >= 1 (its
metadata was decoded). Saves a full-page screenshot, and optionally the top of the page (--top, cropped
to --top-height CSS pixels) for the docs. Prints a JSON summary; exit code 1 when a check fails.

Needs (not project dependencies; a developer tool): Debian's ``chromium`` and ``chromium-driver``
(``apt-get install -y chromium chromium-driver``) and ``pip install selenium`` (4.x), which drives the
system chromedriver (``--driver``, default /usr/bin/chromedriver) without downloading anything.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

WAIT_SECONDS = 20


def make_driver(driver_path: str, binary: str | None, width: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={width},1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    if binary:
        options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
(async () => {
  for (const img of imgs) {
    img.scrollIntoView();
    const t0 = Date.now();
    while (!img.complete && Date.now() - t0 < 10000) await new Promise(r => setTimeout(r, 50));
  }
  window.scrollTo(0, 0);
  done(imgs.map(img => ({src: img.getAttribute('src'), complete: img.complete, w: img.naturalWidth,
                         h: img.naturalHeight})));
})();
"""

AUDIO_JS = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
Promise.all(audios.map(a => new Promise(resolve => {
  const sources = Array.from(a.querySelectorAll('source')).map(s => ({src: s.getAttribute('src'),
      type: s.type, canPlay: s.type ? a.canPlayType(s.type) : 'no type'}));
  const finish = () => resolve({sources, readyState: a.readyState, error: a.error ? a.error.code : null,
                                duration: a.duration, currentSrc: a.currentSrc});
  if (a.readyState >= 1) { finish(); return; }
  a.addEventListener('loadedmetadata', finish, {once: true});
  a.addEventListener('error', finish, {once: true});
  a.querySelectorAll('source').forEach(s => s.addEventListener('error', finish, {once: true}));
  setTimeout(finish, 10000);
  a.load();
}))).then(done);
"""


def screenshot(driver: webdriver.Chrome, path: Path, height: int | None = None) -> None:
    """The whole page (or its top ``height`` CSS pixels) through the DevTools protocol."""
    width, full = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
    clip = {"x": 0, "y": 0, "width": width, "height": min(full, height) if height else full, "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def check(page: Path, args: argparse.Namespace) -> dict:
    driver = make_driver(args.driver, args.binary, args.width)
    try:
        driver.set_script_timeout(120)
        driver.get(page.resolve().as_uri())
        t0 = time.time()
        while driver.execute_script("return document.readyState") != "complete" and time.time() - t0 < WAIT_SECONDS:
            time.sleep(0.1)
        images = driver.execute_async_script(IMAGES_JS)
        audios = driver.execute_async_script(AUDIO_JS)
        logs = driver.get_log("browser")
        if args.screenshot:
            screenshot(driver, Path(args.screenshot))
        if args.top:
            screenshot(driver, Path(args.top), args.top_height)
        title = driver.title
    finally:
        driver.quit()
    problems = [f"console {entry['level']}: {entry['message']}" for entry in logs if entry["level"] == "SEVERE"]
    problems += [f"image not loaded: {i['src']}" for i in images if not (i["complete"] and i["w"] > 0)]
    for a in audios:
        playable = [s for s in a["sources"] if s["canPlay"] not in ("", "no type")]
        if not playable:
            problems.append(f"audio without a playable source: {a['sources']}")
        if a["error"] is not None or a["readyState"] < 1:
            problems.append(f"audio did not load: {a['sources']} (error {a['error']}, readyState {a['readyState']})")
    return {"page": str(page), "title": title, "images": len(images), "audio": len(audios),
            "console_messages": len(logs), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="the report's index.html (or its folder)")
    parser.add_argument("--screenshot", help="save a full-page PNG here")
    parser.add_argument("--top", help="save the top of the page as a PNG here (for docs)")
    parser.add_argument("--top-height", type=int, default=1100, help="CSS pixels kept by --top")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    parser.add_argument("--binary", default=None, help="Chromium binary (default: what chromedriver finds)")
    args = parser.parse_args()
    page = args.page / "index.html" if args.page.is_dir() else args.page
    if not page.is_file():
        parser.error(f"{page}: no such file")
    result = check(page, args)
    print(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
