"""``uvrsep serve``'s page in a real headless browser (issue 19): Debian's chromium driven by
Selenium through chromium-driver (nothing downloads a browser). Skipped where either is missing.

Set ``UVRSEP_SCREENSHOTS=DIR`` to keep the desktop and phone-width screenshots.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from .conftest import wait_for  # noqa: E402
from .test_robustness import signal_wave  # noqa: E402
from .test_serve import RATE, Server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"),
    pytest.mark.slow,
]

DESKTOP = (1280, 1000)
PHONE = (390, 844)
#: Seconds of the song sent through the page: long enough that the page, polling every 300 ms,
#: sees the progress bar between 0 and 1 many times (8 s: ~15 s of work here).
CLIP_SECONDS = 8.0
#: Seconds the bundled model may take on the clip on a loaded 2-core machine.
JOB_BOUND_S = 240.0
AGGRESSIVENESS_STEPS = 15
UPLOAD_MB = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    (root / "allow").mkdir()
    running = Server(root, "--max-upload-mb", str(UPLOAD_MB)).start()  # the bundled model (offline, empty cache)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a browser online
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:  # pragma: no cover - a broken browser install
        pytest.skip(f"chromium does not start: {exc.msg}")
    driver.downloads = downloads
    yield driver
    driver.quit()


def shoot(driver, name: str) -> None:
    """The whole page as a PNG in $UVRSEP_SCREENSHOTS (nothing when unset)."""
    folder = os.environ.get("UVRSEP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        (Path(folder) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def emulate(driver, size: tuple[int, int], mobile: bool) -> None:
    """A viewport of ``size`` CSS pixels (a desktop window cannot be made phone-narrow)."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    )


def test_a_song_through_the_page(server, browser, tmp_path):
    clip = tmp_path / "song.wav"
    sf.write(clip, signal_wave(int(RATE * CLIP_SECONDS), 2), RATE)
    emulate(browser, DESKTOP, mobile=False)
    browser.get(f"http://127.0.0.1:{server.port}/")
    wait_for(lambda: "on cpu" in browser.find_element(By.ID, "health").text, 30, "the health line")
    assert browser.find_element(By.ID, "run").get_attribute("disabled") is not None

    browser.find_element(By.ID, "file").send_keys(str(clip))
    assert "song.wav" in browser.find_element(By.ID, "drop-text").text
    slider = browser.find_element(By.ID, "aggressiveness")
    for _ in range(AGGRESSIVENESS_STEPS):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "aggressiveness-value").text == str(10 + AGGRESSIVENESS_STEPS)
    browser.find_element(By.TAG_NAME, "summary").click()
    Select(browser.find_element(By.ID, "window_size")).select_by_visible_text("320")  # more windows: progress steps
    shoot(browser, "desktop-ready")

    browser.find_element(By.ID, "run").click()
    seen = []
    def finished():
        message = browser.find_element(By.ID, "message")
        assert message.get_attribute("class") != "error", message.text
        over = browser.find_element(By.ID, "job-status").text.startswith(("Done", "Failed"))
        seen.append(float(browser.find_element(By.ID, "progress").get_property("value")))  # after: the bar as it ended
        return over
    wait_for(finished, JOB_BOUND_S, "the job to finish")
    status = browser.find_element(By.ID, "job-status").text
    assert status.startswith("Done"), status
    assert seen[-1] == 1.0 and any(0 < value < 1 for value in seen), seen  # it moved, then finished

    job = server.call("GET", "/api/jobs?limit=1")[1][0]
    assert job["settings"]["aggressiveness"] == 10 + AGGRESSIVENESS_STEPS and job["settings"]["window_size"] == 320

    stems = browser.find_elements(By.CSS_SELECTOR, "#stems-list .stem")
    assert [s.get_attribute("data-stem") for s in stems] == job["stems"] == ["instrumental", "vocals"]
    for stem in stems:  # each player knows its length and plays
        audio = stem.find_element(By.TAG_NAME, "audio")
        duration = wait_for(lambda: browser.execute_script("return arguments[0].duration", audio), 30, "a duration")
        assert duration == pytest.approx(CLIP_SECONDS, abs=0.05)
        browser.execute_script("arguments[0].play()", audio)
        wait_for(lambda: browser.execute_script("return arguments[0].currentTime", audio) > 0, 30, "playback")
        browser.execute_script("arguments[0].pause()", audio)
    pictures = browser.find_elements(By.CSS_SELECTOR, "#input-picture, #stems-list img")
    assert len(pictures) == 3
    for picture in pictures:
        wait_for(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture), 30, "a picture")
        assert browser.execute_script("return arguments[0].naturalHeight", picture) > 100

    stems[1].find_element(By.CSS_SELECTOR, "a.download").click()
    saved = wait_for(lambda: [p for p in browser.downloads.iterdir() if p.suffix == ".wav"], 30, "the download")
    assert saved[0].name == "song_vocals.wav"
    data, rate = sf.read(saved[0])
    assert rate == RATE and data.shape == (int(RATE * CLIP_SECONDS), 2) and np.abs(data).max() > 0
    shoot(browser, "desktop-done")

    emulate(browser, PHONE, mobile=True)
    browser.refresh()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs li[data-id]"), 30, "the job list")
    browser.find_element(By.CSS_SELECTOR, "#jobs li[data-id]").click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#stems-list .stem")) == 2, 30, "an earlier job's stems")
    overflow = browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert browser.execute_script("return window.innerWidth") == PHONE[0]
    assert overflow <= 0  # nothing wider than a phone's screen
    shoot(browser, "phone")


def test_a_bad_file_says_why_on_the_page(server, browser, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(4000))
    emulate(browser, DESKTOP, mobile=False)
    browser.get(f"http://127.0.0.1:{server.port}/")
    browser.find_element(By.ID, "file").send_keys(str(junk))
    browser.find_element(By.ID, "run").click()
    message = wait_for(lambda: browser.find_element(By.ID, "message").text.startswith("junk.mp3:") and browser.find_element(By.ID, "message"), 30, "the error")
    assert "error" in message.get_attribute("class")


def test_a_file_dropped_on_the_page_is_chosen(server, browser):
    emulate(browser, DESKTOP, mobile=False)
    browser.get(f"http://127.0.0.1:{server.port}/")
    assert browser.find_element(By.ID, "run").get_attribute("disabled") is not None
    browser.execute_script(
        """const box = document.getElementById('drop');
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(2000)], 'dropped.wav', {type: 'audio/wav'}));
        box.dispatchEvent(new DragEvent('dragover', {dataTransfer: files, bubbles: true, cancelable: true}));
        window.highlighted = box.classList.contains('over');
        box.dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));"""
    )
    assert browser.execute_script("return window.highlighted") is True
    assert "over" not in browser.find_element(By.ID, "drop").get_attribute("class")
    assert browser.find_element(By.ID, "drop-text").text.startswith("dropped.wav")
    assert browser.find_element(By.ID, "run").get_attribute("disabled") is None
