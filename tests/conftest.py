"""Shared fixtures. Every test that takes ``database`` runs twice: on SQLite and on PostgreSQL.

PostgreSQL comes from ``DATONG_TEST_PG_URL`` (``scripts/test.sh`` starts a throwaway server and sets
it). Without it the PostgreSQL half fails, unless ``DATONG_TEST_SKIP_PG=1`` says to skip it.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from datong.core import config
from datong.core.crypto import Keyring
from datong.core.db import Database, make_engine
from datong.core.migrate import upgrade

PG_URL_ENV = "DATONG_TEST_PG_URL"
SKIP_PG_ENV = "DATONG_TEST_SKIP_PG"
BACKENDS = ("sqlite", "postgresql")
# Alembic's bookkeeping survives between tests; everything else is emptied.
KEEP_TABLES = frozenset({"alembic_version"})


@pytest.fixture(scope="session", autouse=True)
def _master_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One random master key for the whole session, so code that reads the settings has a key; and a
    default database in a temporary folder, so nothing a test does can write to the repository's var/."""
    key = base64.b64encode(os.urandom(32)).decode("ascii")
    default_db = tmp_path_factory.mktemp("default-db") / "datong.sqlite3"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATONG_MASTER_KEY", key)
        mp.setenv("DATONG_DATABASE_URL", f"sqlite:///{default_db}")
        mp.delenv("DATONG_KEY_FILE", raising=False)
        mp.delenv("DATONG_PREVIOUS_MASTER_KEY", raising=False)
        config.get_settings.cache_clear()
        yield key
    config.get_settings.cache_clear()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(master=os.urandom(32))


# --- SQLite -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated to head once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    # Fold the WAL into the main file so that copying the one file copies everything.
    # Outside any transaction: datong's engine opens every connection with BEGIN, which blocks a checkpoint.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def _sqlite_database(template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "datong.sqlite3"
    shutil.copyfile(template, path)
    db = Database(f"sqlite:///{path}")
    try:
        yield db
    finally:
        db.dispose()


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_url_or_stop() -> str:
    url = os.environ.get(PG_URL_ENV, "").strip()
    if url:
        return url
    if os.environ.get(SKIP_PG_ENV) == "1":
        pytest.skip(f"PostgreSQL tests skipped: {SKIP_PG_ENV}=1 and {PG_URL_ENV} is not set")
    pytest.fail(
        f"{PG_URL_ENV} is not set, so the PostgreSQL half of this test cannot run: "
        f"run scripts/test.sh, or set {PG_URL_ENV} "
        f"(or set {SKIP_PG_ENV}=1 to skip the PostgreSQL tests on purpose)",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[Engine]:
    """A PostgreSQL database of this test session's own, migrated to head, dropped at the end.

    It is created beside the database ``DATONG_TEST_PG_URL`` names, with this process's id in its name,
    so that two test runs against one server (a developer's and a helper's) never empty each other's
    tables.
    """
    base = make_url(_pg_url_or_stop())
    name = f"{base.database}_{os.getpid()}"
    server = create_engine(base, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _truncate_all(engine: Engine) -> None:
    """Empties every table in one statement (identities restarted), except ``alembic_version``.

    The tables are read from the database, not only from ``Base.metadata``: that covers every model's
    table and also any table a migration made outside the models, so nothing written by one test is
    seen by the next.
    """
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        existing = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        names = sorted(set(existing) - KEEP_TABLES)
        if names:
            quoted = ", ".join(conn.dialect.identifier_preparer.quote(name) for name in names)
            conn.execute(text(f"TRUNCATE TABLE {quoted} RESTART IDENTITY CASCADE"))


def _pg_database(admin: Engine) -> Iterator[Database]:
    db = Database(admin.url.render_as_string(hide_password=False))
    try:
        yield db
    finally:
        # Close the test's connections first: an idle transaction would block TRUNCATE.
        db.dispose()
        _truncate_all(admin)


# --- the fixture tests use ----------------------------------------------------------------------


@pytest.fixture(params=BACKENDS, ids=list(BACKENDS))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A :class:`Database` with a freshly migrated, empty schema, on each backend in turn."""
    if request.param == "sqlite":
        yield from _sqlite_database(request.getfixturevalue("_sqlite_template"), tmp_path)
    else:
        yield from _pg_database(request.getfixturevalue("_pg_admin"))
