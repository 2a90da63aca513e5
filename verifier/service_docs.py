"""``/docs`` of the local verifier service, served whole from the service: no CDN, no network.

A kiosk or a gate controller's network often has no route to the internet, and an operator opening /docs
there must still see the API. Swagger UI's script, stylesheet and icon come from the ``fastapi-offline``
package (the issuer serves its /docs from the same package), mounted under ``ASSETS_URL``; the page is
FastAPI's own Swagger UI page pointed at them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``DOCS_URL`` and its assets at ``ASSETS_URL``, for an ``app`` made with
    ``docs_url=None`` (FastAPI's own page loads its assets from a CDN) and its OpenAPI document enabled.

    Raises:
        ModuleNotFoundError: the ``fastapi-offline`` package (extra ``verifier-service``) is not installed.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # no validator badge: Swagger UI would fetch it from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
