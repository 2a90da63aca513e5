"""The HTTP edge: the FastAPI app factory, its routes, who is calling (API keys), the answers made from the
issuer's errors, metrics, and the demo wallet with its static files."""

from issuer.http.app import app_from_environment, create_app

__all__ = ["app_from_environment", "create_app"]
