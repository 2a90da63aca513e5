"""/docs and /redoc work with no network (their assets come from this server, not a CDN), and the
OpenAPI text holds what API users need, not notes meant for this code's maintainers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from issuer.http import routes as api
from issuer.http import wallet
from testing.live_issuer import LiveIssuer

from .chromium import NO_NETWORK, chromium, wait_for


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_assets_served_here(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert not re.search(r"(https?:)?//[\w.-]+\.\w+", r.text), "the page names another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert len(assets) >= 2
    for url in assets:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert CONTENT_TYPES[Path(url).suffix] in asset.headers["content-type"]
        assert len(asset.content) > 1000, url
    for spec in re.findall(r"""(?:url: '|spec-url=")([^'"]+)""", r.text):
        assert client.get(spec).json()["info"]["title"] == "Suishenma issuer"


def test_openapi_text_keeps_internal_notes_out(app: FastAPI, client: TestClient) -> None:
    text = json.dumps(client.get("/openapi.json").json(), ensure_ascii=False)
    notes = []
    for route in [*app.routes, *api.router.routes, *wallet.router.routes]:  # included routers are nested
        doc = getattr(route, "endpoint", None).__doc__ if isinstance(route, APIRoute) else None
        if doc and "\f" in doc:
            notes.append(" ".join(doc.split("\f", 1)[1].split())[:40])
    assert notes, "no route keeps maintainers' notes behind \\f"
    for note in notes:
        assert note not in " ".join(text.split()), note
    for internal in ("Raises:", "costs FastAPI", "docs/format.md", "Dependency", "\\f"):
        assert internal not in text, internal


def test_docs_render_in_a_browser_with_no_network(home: Path) -> None:
    from selenium.webdriver.common.by import By

    with LiveIssuer(home) as server, chromium(NO_NETWORK, width=1200) as driver:
        driver.get(server.url + "/healthz")
        reached = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css', {mode: 'no-cors'})"
            ".then(() => done(true), () => done(false));"
        )
        assert reached is False, "the browser can still reach a CDN: this test would prove nothing"

        driver.get(server.url + "/docs")
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
        assert "Suishenma issuer" in driver.find_element(By.CSS_SELECTOR, ".info .title").text
        assert "/v1/subjects/{subject}/codes" in driver.find_element(By.ID, "swagger-ui").text
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(server.url) for url in loaded), loaded
