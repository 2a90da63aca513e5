"""Headless Chromium for the issuer's screen tests: the wallet page and the API docs."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image

# Every host name fails to resolve except the loopback address the test server listens on: the
# browser sees a machine with no network beyond it (DevTools' offline mode would cut the server too).
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@contextmanager
def chromium(*extra: str, width: int = 500, height: int = 900) -> Iterator[Any]:
    """A headless Chromium driven by Selenium; skips the test where Chromium or its driver is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (scripts/system-deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *extra):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def phone_screen(driver: Any, width: int, height: int = 640) -> None:
    """Make the viewport a phone's: ``width`` CSS pixels, touch, no desktop scroll bars."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )


def wait_for(condition: Callable[[], object], timeout: float = 60) -> None:
    """Poll ``condition``; ``timeout`` only bounds a hang, it is no claim about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"the page did not reach the expected state in {timeout} s")


def screenshot(element: Any) -> np.ndarray[Any, Any]:
    """An element's pixels as an RGB array."""
    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))


def decode_qr(pixels: np.ndarray[Any, Any]) -> str | None:
    """What the scanner's decoder (zxing-cpp) reads from the grey-scale image, or None."""
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    found = zxingcpp.read_barcodes(grey)
    return found[0].text if found else None
