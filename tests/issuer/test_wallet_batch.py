"""The demo wallet's batch in headless Chromium: the page fetches a day of slot credentials, each with a
key of its own, goes offline, and when its clock passes a slot boundary its codes come from the next
slot's credential and key, and still verify offline."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from issuer.cli import main as cli_main
from suishenma import CodeError, load_verification_key, parse_trust_list, verify
from testing.live_issuer import LiveIssuer

from .chromium import chromium, decode_qr, screenshot, wait_for
from .conftest import PERSON, person_of

By = pytest.importorskip("selenium.webdriver.common.by").By
DAY = 86_400


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


@pytest.fixture()
def browser() -> Iterator[Any]:
    with chromium(width=500, height=900) as driver:
        yield driver


def go_offline(driver: Any) -> None:
    """DevTools' network emulation: the page can no longer reach anything, the issuer included."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    reached = driver.execute_async_script(
        "const done = arguments[0];fetch('/healthz', {cache: 'no-store'}).then(() => done(true), () => done(false));"
    )
    assert reached is False, "the page can still reach the issuer"


# Before any of the page's scripts: Date.now runs ahead by an offset the test moves (the phone's clock
# going forward while it is offline); timers still run in real time.
CLOCK = """
(() => {
  const real = Date.now.bind(Date);
  let ahead = 0;
  Date.now = () => real() + ahead;
  window.__advanceClock = (ms) => { ahead += ms; };
})();
"""


def shown_code(driver: Any, card: Any) -> str:
    """The code on the screen, as a scanner reads it from the QR, once it matches the card's current code."""
    qr = driver.find_element(By.ID, "qr")
    seen: list[str | None] = []

    def readable() -> bool:
        seen[:] = [decode_qr(screenshot(qr))]
        return seen[0] is not None and seen[0] == card.get_attribute("data-code")

    wait_for(readable, 20)
    return str(seen[0])


def test_offline_page_passes_a_slot_boundary_with_the_next_slots_credential_and_key(
    home: Path, keys: dict[str, str], browser: Any
) -> None:
    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        auth = {"Authorization": f"Bearer {keys['enrol']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        root = load_verification_key(home / "keys" / "root.pub")
        trust = parse_trust_list(httpx.get(server.url + "/v1/trust-list").content, root, now=int(time.time()))
        slot = next(iter(trust.keyring.values())).slot
        assert slot == DAY // 6  # the default batch: six slots of four hours

        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CLOCK})
        browser.get(f"{server.url}/demo/wallet/{subject}?refresh=2")
        card = browser.find_element(By.ID, "card")
        wait_for(lambda: (card.get_attribute("data-code") or "").startswith("SMD1:"), 20)
        assert card.get_attribute("data-mode") == "device"
        before = verify(shown_code(browser, card), trust.keyring, now=int(time.time()))
        assert person_of(home, before.claims.subject) == subject
        assert before.claims.issued_at <= time.time() < before.claims.expires_at  # the slot holding now
        assert before.claims.expires_at - before.claims.issued_at == slot

        go_offline(browser)
        # the phone's clock passes into the next slot: 5 s after the boundary
        ahead = before.claims.expires_at + 5 - int(time.time())
        browser.execute_script("window.__advanceClock(arguments[0])", ahead * 1000)
        old = card.get_attribute("data-code")
        wait_for(lambda: card.get_attribute("data-code") != old, 20)
        after_text = shown_code(browser, card)
        now = int(time.time()) + ahead
        after = verify(after_text, trust.keyring, now=now)
        assert after.presented_at is not None and after.presented_at >= before.claims.expires_at
        assert person_of(home, after.claims.subject) == subject
        # the next slot's credential: it starts where the first ended, under another status-list index...
        assert after.claims.issued_at == before.claims.expires_at
        assert after.claims.expires_at == before.claims.expires_at + slot
        assert after.claims.status_index != before.claims.status_index
        # ...bound to a key of its own: the two codes share no key
        assert before.claims.device_key is not None and after.claims.device_key is not None
        assert after.claims.device_key.thumbprint() != before.claims.device_key.thumbprint()
        # and the earlier slot's credential is of no use at that time
        stale = verify_reason(str(old), trust.keyring, now)
        assert stale in {"credential_expired", "expired"}, stale
        assert card.get_attribute("data-notice") is None and browser.find_element(By.ID, "error").text == ""


def verify_reason(code: str, keyring: Any, now: int) -> str:
    """Why the offline verifier refuses ``code`` at ``now`` ("ok" when it does not)."""
    try:
        verify(code, keyring, now=now)
    except CodeError as err:
        return str(err.reason.value)
    return "ok"


# Before any of the page's scripts: a record of the bodies the page posts (what it asks the issuer for).
RECORD_POSTS = """
(() => {
  const real = window.fetch.bind(window);
  window.__posts = [];
  window.fetch = (url, init) => {
    if (init && init.method === "POST") window.__posts.push({ url: String(url), body: JSON.parse(init.body) });
    return real(url, init);
  };
})();
"""

# Keep only the first two slots of the page's batch, as if the rest of its day had passed.
TRIM = """
const [subject, done] = arguments;
const open = indexedDB.open("suishenma-wallet", 1);
open.onsuccess = () => {
  const store = open.result.transaction("wallet", "readwrite").objectStore("wallet");
  const get = store.get(`batch:${subject}`);
  get.onsuccess = () => {
    const batch = get.result;
    const put = store.put({ ...batch, slots: batch.slots.slice(0, 2) }, `batch:${subject}`);
    put.onsuccess = () => done(batch.slots.map((s) => s.valid_from));
  };
};
"""


def test_page_with_less_than_half_a_day_left_asks_only_for_the_slots_it_lacks_with_fresh_keys(
    home: Path, keys: dict[str, str], browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = 8  # the issuer's batch, not the default: the page learns it from the issuer
    monkeypatch.setenv("SUISHENMA_ISSUER_DEVICE_BATCH", str(k))
    with contextlib.redirect_stdout(io.StringIO()):  # as an operator does after changing the batch
        assert cli_main(["--dir", str(home), "trust-list", "sign"]) == 0
    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        auth = {"Authorization": f"Bearer {keys['enrol']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        root = load_verification_key(home / "keys" / "root.pub")
        trust = parse_trust_list(httpx.get(server.url + "/v1/trust-list").content, root, now=int(time.time()))
        slot = DAY // k
        assert next(iter(trust.keyring.values())).slot == slot

        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_POSTS})
        browser.get(f"{server.url}/demo/wallet/{subject}?refresh=2")
        card = browser.find_element(By.ID, "card")
        wait_for(lambda: (card.get_attribute("data-code") or "").startswith("SMD1:"), 20)
        (first,) = browser.execute_script("return window.__posts")
        assert first["url"].endswith(f"/demo/wallet/{subject}/device-credential")
        assert len(first["body"]["keys"]) == k and "start" not in first["body"]  # a day's batch, from now
        starts = browser.execute_async_script(TRIM, subject)
        begins = int(time.time()) // slot * slot
        assert starts == [begins + i * slot for i in range(k)]

        # six hours or less left: the page asks for the six slots it lacks, from the end of the second
        wait_for(lambda: len(browser.execute_script("return window.__posts")) == 2, 20)
        second = browser.execute_script("return window.__posts")[1]["body"]
        assert second["start"] == begins + 2 * slot and len(second["keys"]) == k - 2
        assert second["jwk"] == first["body"]["jwk"]  # the same phone...
        xs = [k["x"] for k in first["body"]["keys"] + second["keys"]]
        assert len(set(xs)) == 2 * k - 2 and first["body"]["jwk"]["x"] not in xs  # ...but every slot a new key

        # it goes on showing the current slot's code, and then has a day ahead: it asks for nothing more
        old = card.get_attribute("data-code")
        wait_for(lambda: card.get_attribute("data-code") != old, 20)
        code = verify(shown_code(browser, card), trust.keyring, now=int(time.time()))
        assert code.claims.issued_at == begins and person_of(home, code.claims.subject) == subject
        time.sleep(5)
        assert len(browser.execute_script("return window.__posts")) == 2


def test_status_ending_within_the_slot_gets_codes_the_issuer_makes(
    home: Path, keys: dict[str, str], browser: Any
) -> None:
    """No phone credential can outlive the status, and none is shorter than its slot: until the status is
    set again, the page shows the issuer's own online codes, and says so."""
    with LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}) as server:
        auth = {"Authorization": f"Bearer {keys['all']}"}
        subject = httpx.post(server.url + "/v1/subjects", json=PERSON, headers=auth).json()["subject"]
        left = DAY // 6 - int(time.time()) % (DAY // 6)
        if left < 150:  # the status must end before this slot does: rarely, wait for the next slot
            time.sleep(left + 1)
        until = int(time.time()) + 120
        r = httpx.put(
            f"{server.url}/v1/subjects/{subject}/status", json={"status": "green", "valid_until": until}, headers=auth
        )
        assert r.status_code == 200, r.text
        root = load_verification_key(home / "keys" / "root.pub")
        trust = parse_trust_list(httpx.get(server.url + "/v1/trust-list").content, root, now=int(time.time()))

        browser.get(f"{server.url}/demo/wallet/{subject}")
        card = browser.find_element(By.ID, "card")
        wait_for(lambda: card.get_attribute("data-code") or card.get_attribute("data-notice"), 20)
        assert card.get_attribute("data-mode") == "device" and card.get_attribute("data-notice") is None
        code = shown_code(browser, card)
        assert code.startswith("SM1:")  # a dynamic code, not a device-bound one
        assert person_of(home, verify(code, trust.keyring, now=int(time.time())).claims.subject) == subject
        assert browser.find_element(By.ID, "mode").text.startswith("联网生成")
        assert card.get_attribute("class") == "green" and browser.find_element(By.ID, "error").text == ""
