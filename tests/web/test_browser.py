"""The real page in headless Chromium: upload an image, pick a task, click Run, read the result.

Needs the system Chromium and its driver (`make browser` installs Debian's). Without them the test
skips, unless CONVSIGHT_REQUIRE_BROWSER=1 (set by .ci/run after `make browser`), where it fails.
The screenshot is kept as a test artifact: runs/test-artifacts/web_page.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from convsight.io.images import save_image
from convsight.io.synthetic import SynthConfig, render_scene

ARTIFACTS = Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER):
    if os.environ.get("CONVSIGHT_REQUIRE_BROWSER") == "1":
        raise RuntimeError("CONVSIGHT_REQUIRE_BROWSER=1 but chromium/chromedriver are missing: run `make browser`")
    pytest.skip("no system Chromium + chromedriver (`make browser` installs them)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    import uvicorn

    from convsight.web.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start in 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _wait(driver, until, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(until)


def test_upload_detect_and_read_the_result(server, browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    image = tmp_path / "scene.png"
    save_image(render_scene(SynthConfig(image_size=(320, 320), min_objects=3), 7, 0).image, image)
    browser.get(server)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task option")) > 0)
    browser.find_element(By.ID, "file").send_keys(str(image))
    Select(browser.find_element(By.ID, "task")).select_by_value("detect")
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: d.find_element(By.ID, "result-json").text or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""
    doc = json.loads(browser.find_element(By.ID, "result-json").text)
    assert doc["task"] == "detect" and doc["width"] == 320 and doc["result"]["objects"]
    img = browser.find_element(By.ID, "result-image")
    assert img.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", img) == 320
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "web_page.png"))


def test_the_page_shows_a_non_image_error(server, browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    fake = tmp_path / "holiday.jpg"
    fake.write_text("not really a photo")
    browser.get(server)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task option")) > 0)
    browser.find_element(By.ID, "file").send_keys(str(fake))
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: d.find_element(By.ID, "error").text)
    assert "not an image" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "result-image").is_displayed()


def test_the_gallery_section_enrolls_identifies_and_removes(live, browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from selenium.webdriver.common.by import By
    from skimage import data

    from convsight.web.app import ServeConfig

    astro, flipped = tmp_path / "astronaut.png", tmp_path / "flipped.png"
    save_image(data.astronaut(), astro)
    save_image(np.ascontiguousarray(data.astronaut()[:, ::-1]), flipped)
    cfg = ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"), token="page-token")
    with live(cfg) as (port, _):
        browser.get(f"http://127.0.0.1:{port}/")
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task option")) > 0, 20)
        # without the token the page shows the server's refusal, and nothing is enrolled
        browser.find_element(By.ID, "person").send_keys("Eileen Collins")
        browser.find_element(By.ID, "enroll-files").send_keys(f"{astro}\n{flipped}")
        browser.find_element(By.ID, "enroll").click()
        _wait(browser, lambda d: "token" in d.find_element(By.ID, "gallery-error").text)
        browser.find_element(By.ID, "token").send_keys("page-token")
        browser.find_element(By.ID, "enroll").click()
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#people li"))
        assert "Enrolled 2 face(s) of Eileen Collins" in browser.find_element(By.ID, "gallery-status").text
        assert browser.find_element(By.CSS_SELECTOR, "#people li").get_attribute("data-name") == "Eileen Collins"
        browser.find_element(By.ID, "identify-file").send_keys(str(astro))
        browser.find_element(By.ID, "identify").click()
        _wait(browser, lambda d: d.find_element(By.ID, "identify-json").text)
        assert json.loads(browser.find_element(By.ID, "identify-json").text)["faces"][0]["identity"] == "Eileen Collins"
        browser.find_element(By.CSS_SELECTOR, "#people li button.remove").click()
        _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#people li"))
        assert "Removed 2 face(s)" in browser.find_element(By.ID, "gallery-status").text
        assert browser.find_element(By.ID, "gallery-error").text == ""
