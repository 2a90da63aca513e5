"""Suishenma issuer service: enrols people, keeps status, mints codes, publishes signed lists (DESIGN §6)."""

from issuer.http.app import create_app
from issuer.opening import open_storage
from issuer.service import IssuerService
from issuer.settings import Settings, load_settings
from issuer.storage import Storage
from issuer.storage.sqlite import SQLiteStorage

__all__ = ["IssuerService", "SQLiteStorage", "Settings", "Storage", "create_app", "load_settings", "open_storage"]
