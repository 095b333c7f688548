"""What a process needs to run: settings, the database and the keyring, checked once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from datong.core.config import Settings, get_settings
from datong.core.crypto import Keyring
from datong.core.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring


def load_runtime(settings: Settings | None = None) -> Runtime:
    """Raises ``ConfigurationError`` naming what is missing (a key ...): fail at start, not later."""
    settings = settings or get_settings()
    keyring = Keyring.from_settings(settings)
    return Runtime(settings=settings, db=Database(settings.database_url), keyring=keyring)
