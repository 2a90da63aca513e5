"""Suishenma issuer service: enrols people, keeps status, mints codes, publishes signed lists (DESIGN §6)."""

from .app import create_app
from .service import IssuerService
from .settings import Settings, load_settings
from .storage import Storage
from .storage.factory import open_storage
from .storage.sqlite import SQLiteStorage

__all__ = ["IssuerService", "SQLiteStorage", "Settings", "Storage", "create_app", "load_settings", "open_storage"]
