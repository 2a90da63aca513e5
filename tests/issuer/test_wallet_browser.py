"""The demo wallet page in headless Chromium: it renders, its QR verifies, and it renews before expiry."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import zxingcpp
from PIL import Image

from suishenma import load_verification_key, parse_trust_list, verify
from testing.live_issuer import LiveIssuer

from .conftest import PERSON, person_of

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium and chromium-driver are not installed (scripts/system-deps installs them)")
    return browser, driver


@pytest.fixture()
def browser() -> Iterator[object]:
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=500,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _qr_from_screenshot(driver: object) -> str:
    png = driver.find_element(By.ID, "qr").screenshot_as_png  # type: ignore[attr-defined]
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    found = zxingcpp.read_barcodes(pixels)
    assert found, "no QR code in the screenshot"
    return found[0].text


def _wait_for(driver: object, condition: object, timeout: float = 60) -> None:
    """Poll ``condition``; ``timeout`` only bounds a hang, it is no claim about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"page did not reach the expected state in {timeout} s")


def test_wallet_page_shows_a_code_that_verifies_and_renews(home: Path, keys: dict[str, str], browser: object) -> None:
    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        auth = {"Authorization": f"Bearer {keys['enrol']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        root = load_verification_key(home / "keys" / "root.pub")
        trust = parse_trust_list(httpx.get(server.url + "/v1/trust-list").content, root, now=int(time.time()))

        browser.get(f"{server.url}/demo/wallet/{subject}?mode=server&refresh=3")  # type: ignore[attr-defined]
        card = browser.find_element(By.ID, "card")  # type: ignore[attr-defined]
        _wait_for(browser, lambda: card.get_attribute("data-code"))
        assert card.get_attribute("data-mode") == "server"
        first = card.get_attribute("data-code")
        assert _qr_from_screenshot(browser) == first
        claims = verify(first, trust.keyring, now=int(time.time())).claims
        assert person_of(home, claims.subject) == subject  # a pseudonym that only the issuer opens
        assert browser.find_element(By.ID, "name").text == "张*三"  # type: ignore[attr-defined]
        assert "绿码" in browser.find_element(By.ID, "status").text  # type: ignore[attr-defined]
        assert "card" not in (card.get_attribute("class") or "") and card.get_attribute("class") == "green"
        shot = np.asarray(Image.open(io.BytesIO(card.screenshot_as_png)).convert("RGB"))
        r, g, b = (int(v) for v in shot[4, shot.shape[1] // 2])
        assert g > 120 and r < 80 and b < 100, (r, g, b)  # the green status bar at the card's top
        countdown = browser.find_element(By.ID, "countdown")  # type: ignore[attr-defined]
        _wait_for(browser, lambda: "秒" in countdown.text and "s" in countdown.text)

        # the code is replaced before it expires (every 3 s here), without a reload: the new code was
        # minted (its signed iat) while the first was still valid
        _wait_for(browser, lambda: card.get_attribute("data-code") != first)
        second = card.get_attribute("data-code")
        assert int(card.get_attribute("data-expires-at")) > claims.expires_at
        _wait_for(browser, lambda: _qr_from_screenshot(browser) == second)
        renewed = verify(second, trust.keyring, now=int(card.get_attribute("data-expires-at")) - 1).claims
        assert person_of(home, renewed.subject) == subject and renewed.issued_at < claims.expires_at
        assert renewed.subject != claims.subject  # each code its own pseudonym


def test_wallet_is_off_unless_enabled(home: Path, keys: dict[str, str]) -> None:
    with LiveIssuer(home) as server:
        auth = {"Authorization": f"Bearer {keys['enrol']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        assert httpx.get(f"{server.url}/demo/wallet/{subject}").status_code == 404
        assert httpx.get(f"{server.url}/demo/wallet/{subject}/code").status_code == 404


def test_wallet_unknown_subject_is_404(home: Path) -> None:
    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        page = httpx.get(server.url + "/demo/wallet/0123456789abcdef")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")  # for residents
        code = httpx.get(server.url + "/demo/wallet/0123456789abcdef/code")
        assert code.status_code == 404 and code.json()["error"] == "not_found"  # for the page's script


def test_wallet_makes_device_bound_codes_offline_that_a_kiosk_allows_then_denies_after_a_status_change(
    home: Path, keys: dict[str, str], browser: object, tmp_path: Path
) -> None:
    """The page keeps its own key, fetches its batch, then goes offline (DevTools) and keeps making
    codes: the kiosk allows them; the person turns red, the kiosk syncs, and the next one is denied."""
    from verifier import Decision, Verifier

    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        auth = {"Authorization": f"Bearer {keys['all']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        kiosk = Verifier.init(tmp_path / "gate", server.url, load_verification_key(home / "keys/root.pub"), "venue")
        assert kiosk.sync().ok

        browser.get(f"{server.url}/demo/wallet/{subject}?refresh=2")  # type: ignore[attr-defined]
        card = browser.find_element(By.ID, "card")  # type: ignore[attr-defined]
        _wait_for(browser, lambda: (card.get_attribute("data-code") or "").startswith("SMD1:"), 20)
        assert card.get_attribute("data-mode") == "device"
        online = card.get_attribute("data-code")
        assert kiosk.verify(online).decision is Decision.ALLOW

        browser.execute_cdp_cmd("Network.enable", {})  # type: ignore[attr-defined]
        browser.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        reached = browser.execute_async_script(  # type: ignore[attr-defined]
            "const done = arguments[0];"
            "fetch('/healthz', {cache: 'no-store'}).then(() => done(true), () => done(false));"
        )
        assert reached is False, "the page can still reach the issuer"

        def next_code(after: str) -> str:
            _wait_for(browser, lambda: card.get_attribute("data-presented-at") != after, 20)
            code = card.get_attribute("data-code")
            _wait_for(browser, lambda: _qr_from_screenshot(browser) == code, 20)
            return str(code)

        seen = card.get_attribute("data-presented-at")
        offline = next_code(seen)
        assert offline != online and "本机生成" in browser.find_element(By.ID, "mode").text  # type: ignore[attr-defined]
        verdict = kiosk.verify(offline)
        assert verdict.decision is Decision.ALLOW and verdict.display["code_type"] == "device"

        r = httpx.put(f"{server.url}/v1/subjects/{subject}/status", json={"status": "red"}, headers=auth)
        assert r.status_code == 200
        assert kiosk.sync().ok
        red = next_code(card.get_attribute("data-presented-at"))
        denied = kiosk.verify(red)
        assert denied.decision is Decision.DENY and denied.reason.value == "revoked"
        browser.save_screenshot(str(tmp_path / "wallet-offline.png"))  # type: ignore[attr-defined]
        kiosk.close()
