"""Suishenma issuer service: enrols people, keeps status, mints codes, publishes signed lists (DESIGN §6)."""

from .app import create_app
from .service import IssuerService
from .settings import Settings, load_settings
from .sqlite_store import SQLiteStorage
from .storage import Storage

__all__ = ["IssuerService", "SQLiteStorage", "Settings", "Storage", "create_app", "load_settings"]
