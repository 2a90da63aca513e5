"""What a resident sees on the demo wallet page, checked on screenshots in headless Chromium: the code in
its status colour that the scanner's decoder still reads, a live clock, a 320 px wide phone, words for
a lapsed status or an unknown link (Chinese first, no JSON), and a large-text mode that is remembered."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from testing.live_issuer import LiveIssuer, init_dir

from .chromium import chromium, decode_qr, phone_screen, screenshot, wait_for
from .conftest import new_person, staff_headers


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


By = pytest.importorskip("selenium.webdriver.common.by").By
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("wallet")
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(home)
    return home


@pytest.fixture(scope="module")
def staff(base: Path) -> dict[str, str]:
    """An API key for enrolling people and setting their status."""
    return staff_headers(base)


@pytest.fixture(scope="module")
def server(base: Path, staff: dict[str, str]) -> Iterator[LiveIssuer]:
    with LiveIssuer(base, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as live:
        yield live


@pytest.fixture(scope="module")
def phone_browser() -> Iterator[Any]:
    with chromium(width=500, height=900) as driver:
        yield driver


@pytest.fixture()
def screen(phone_browser: Any, server: LiveIssuer) -> Iterator[Any]:
    """The browser, back to its default window and normal text after each test."""
    yield phone_browser
    phone_browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    phone_browser.get(server.url + "/healthz")
    phone_browser.execute_script("localStorage.clear()")


def person(server: LiveIssuer, staff: dict[str, str], status: str = "green", until: int | None = None) -> str:
    subject: str = httpx.post(server.url + "/v1/subjects", json=new_person(), headers=staff).json()["subject"]
    if status != "green" or until is not None:
        body: dict[str, object] = {"status": status, **({"valid_until": until} if until else {})}
        r = httpx.put(f"{server.url}/v1/subjects/{subject}/status", json=body, headers=staff)
        assert r.status_code == 200, r.text
    return subject


def open_wallet(driver: Any, server: LiveIssuer, subject: str, query: str = "") -> Any:
    driver.get(f"{server.url}/demo/wallet/{subject}{query}")
    card = driver.find_element(By.ID, "card")
    wait_for(lambda: card.get_attribute("data-code") or card.get_attribute("data-notice"))
    return card


def luminance(rgb: np.ndarray[Any, Any]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255)."""
    c = np.asarray(rgb, dtype=float) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2])


def contrast(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def qr_colours(pixels: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(dark modules, light background): the median colour of the darker and the lighter pixels."""
    grey = pixels.mean(axis=2)
    dark = pixels[grey < 200]
    light = pixels[grey >= 200]
    assert len(dark) > 0.15 * grey.size, "hardly any dark modules: no code drawn?"
    return np.median(dark, axis=0), np.median(light, axis=0)


HUES = {
    "green": lambda r, g, b: g > r + 50 and g > b + 30,
    "yellow": lambda r, g, b: r > b + 100 and g > b + 60 and r >= g,
    "red": lambda r, g, b: r > g + 100 and r > b + 100,
}


@pytest.mark.parametrize("status", ["green", "yellow", "red"])
def test_code_is_drawn_in_its_status_colour_and_the_scanner_still_reads_it(
    server: LiveIssuer, staff: dict[str, str], screen: Any, status: str
) -> None:
    card = open_wallet(screen, server, person(server, staff, status))
    assert card.get_attribute("class") == status
    code = card.get_attribute("data-code")
    assert code and code.startswith("SMD1:")
    qr = screen.find_element(By.ID, "qr")
    wait_for(lambda: decode_qr(screenshot(qr)) == card.get_attribute("data-code"))
    dark, light = qr_colours(screenshot(qr))
    r, g, b = (int(v) for v in dark)
    assert HUES[status](r, g, b), f"{status} code drawn in rgb{(r, g, b)}"
    assert contrast(dark, light) >= 4.0, f"rgb{(r, g, b)} on rgb{tuple(int(v) for v in light)}"


def test_live_clock_shows_the_time_to_the_second_and_moves(
    server: LiveIssuer, staff: dict[str, str], screen: Any
) -> None:
    before = time.time()
    open_wallet(screen, server, person(server, staff))
    clock = screen.find_element(By.ID, "clock")
    first = clock.text
    after = time.time()
    found = re.search(r"(\d+)月(\d+)日 星期[日一二三四五六] (\d\d):(\d\d):(\d\d)", first)
    assert found, first
    month, day, hh, mm, ss = (int(v) for v in found.groups())
    shown = hh * 3600 + mm * 60 + ss
    # the page keeps the issuer's time, learnt in whole seconds: up to a second behind this process's
    lo, hi = time.localtime(before - 1), time.localtime(after)
    lo_s, hi_s = (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec for t in (lo, hi))
    assert (shown - lo_s) % 86400 <= (hi_s - lo_s) % 86400, (first, time.ctime(before), time.ctime(after))
    assert (month, day) in {(lo.tm_mon, lo.tm_mday), (hi.tm_mon, hi.tm_mday)}
    wait_for(lambda: clock.text != first, 10)  # it moves: a screenshot would not


OVERFLOW = """
const width = document.documentElement.clientWidth;
const out = [];
for (const el of document.querySelectorAll("main, main *")) {
  const r = el.getBoundingClientRect();
  if (r.width && (r.left < -0.5 || r.right > width + 0.5)) out.push(`${el.id || el.tagName}: ${r.left}-${r.right}`);
  if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible") out.push(`${el.id} clips`);
}
return {width, scroll: document.documentElement.scrollWidth, out};
"""


@pytest.mark.parametrize("large", [False, True], ids=["normal-text", "large-text"])
def test_page_fits_a_320_px_wide_phone_with_nothing_cut_off(
    server: LiveIssuer, staff: dict[str, str], screen: Any, large: bool
) -> None:
    subject = person(server, staff)
    phone_screen(screen, 320)
    if large:
        screen.get(server.url + "/healthz")
        screen.execute_script("localStorage.setItem('suishenma-wallet-large-text', '1')")
    card = open_wallet(screen, server, subject)
    assert ("large" in (screen.find_element(By.TAG_NAME, "body").get_attribute("class") or "")) is large
    layout = screen.execute_script(OVERFLOW)
    assert layout["width"] == 320, layout
    assert layout["scroll"] <= 320, f"horizontal scroll: {layout}"
    assert layout["out"] == [], layout["out"]
    for part in ("name", "status", "clock", "countdown", "large"):
        assert screen.find_element(By.ID, part).is_displayed()
    qr = screen.find_element(By.ID, "qr")
    bottom = screen.execute_script("return arguments[0].getBoundingClientRect().bottom", qr)
    assert bottom <= 640, "the code is not on the first screen: the resident would have to scroll"
    wait_for(lambda: decode_qr(screenshot(qr)) == card.get_attribute("data-code"))


def test_large_text_mode_is_a_toggle_that_is_remembered(server: LiveIssuer, staff: dict[str, str], screen: Any) -> None:
    subject = person(server, staff)
    open_wallet(screen, server, subject)

    def size(part: str) -> float:
        script = "return parseFloat(getComputedStyle(arguments[0]).fontSize)"
        return float(screen.execute_script(script, screen.find_element(By.CSS_SELECTOR, part)))

    normal = {part: size(part) for part in ("#name", "#status", "#clock .time", "#countdown", "#notice")}
    toggle = screen.find_element(By.ID, "large")
    assert toggle.get_attribute("aria-pressed") == "false" and toggle.text.startswith("大字")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    for part, px in normal.items():
        assert size(part) >= 1.3 * px, part

    card = open_wallet(screen, server, subject)  # a new visit: still large
    assert screen.find_element(By.ID, "large").get_attribute("aria-pressed") == "true"
    assert size("#status") >= 1.3 * normal["#status"]
    qr = screen.find_element(By.ID, "qr")
    wait_for(lambda: decode_qr(screenshot(qr)) == card.get_attribute("data-code"))

    screen.find_element(By.ID, "large").click()
    open_wallet(screen, server, subject)
    assert screen.find_element(By.ID, "large").get_attribute("aria-pressed") == "false"
    assert size("#status") == normal["#status"]


def _lapse(base: Path, subject: str) -> None:
    """Move the status's end into the past, as if its validity had run out while the issuer ran."""
    conn = sqlite3.connect(base / "var" / "issuer.db")
    with conn:
        conn.execute("UPDATE subjects SET status_until = ? WHERE subject = ?", (int(time.time()) - 60, subject))
    conn.close()


@pytest.mark.parametrize("query", ["", "?mode=server"], ids=["device", "server"])
def test_lapsed_status_is_said_on_the_card_in_chinese_first_without_json(
    server: LiveIssuer, staff: dict[str, str], base: Path, screen: Any, query: str
) -> None:
    subject = person(server, staff, "green", until=int(time.time()) + 3600)
    _lapse(base, subject)
    card = open_wallet(screen, server, subject, query)
    assert card.get_attribute("data-notice") == "status_expired"
    assert card.get_attribute("class") == "lapsed" and not card.get_attribute("data-code")
    assert screen.find_element(By.ID, "qr").find_elements(By.TAG_NAME, "svg") == []
    status = screen.find_element(By.ID, "status").text
    assert status.startswith("状态已过期") and "expired" in status
    zh, en = screen.find_element(By.ID, "notice").text.splitlines()
    assert CJK.search(zh) and zh.startswith("您的随申码状态已过有效期") and not CJK.search(en)
    page = screen.find_element(By.TAG_NAME, "body").text
    for raw in ("{", "status_expired", "message_en", "set it again"):
        assert raw not in page, raw
    assert screen.find_element(By.ID, "error").text == ""


@pytest.mark.parametrize("link", ["0123456789abcdef", "0123456789ab"], ids=["unknown", "cut-short"])
def test_unknown_subject_gets_a_page_for_residents_with_404(server: LiveIssuer, screen: Any, link: str) -> None:
    r = httpx.get(f"{server.url}/demo/wallet/{link}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert r.text.index("未找到您的随申码信息") < r.text.index("We could not find your code")
    screen.get(f"{server.url}/demo/wallet/{link}")
    zh, en = screen.find_element(By.ID, "notice").text.splitlines()
    assert zh.startswith("未找到您的随申码信息") and not CJK.search(en)
    assert "{" not in screen.find_element(By.TAG_NAME, "body").text
