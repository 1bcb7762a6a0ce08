"""Private databases for SQL tests and benchmarks: PostgreSQL and MariaDB on this machine, SQLite files.

Each run creates a database with a random name (and, on MariaDB, a user with a
real password) and drops both at the end. The admin URLs can be overridden with
LOUPE_TEST_PG_URL and LOUPE_TEST_MARIADB_URL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

PG_ADMIN_URL = os.environ.get("LOUPE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("LOUPE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
ADMIN_URLS = {"postgresql": PG_ADMIN_URL, "mariadb": MARIADB_ADMIN_URL}


@dataclass
class TestDB:
    """A private database: `url` is what a source is given, `engine` arranges test data."""

    __test__ = False  # not a test class, despite the name

    kind: str
    url: str
    password: str | None
    engine: Engine


def unreachable_reason(kind: str) -> str | None:
    """Why the machine's `kind` server cannot be used, or None when it answers."""
    engine = sa.create_engine(ADMIN_URLS[kind], connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except sa.exc.SQLAlchemyError as exc:
        return f"{kind} at {make_url(ADMIN_URLS[kind]).render_as_string()} does not answer: {exc}"
    finally:
        engine.dispose()


@contextmanager
def private_database(kind: str, *, tmp_path: Path | None = None) -> Iterator[TestDB]:
    """A fresh database of `kind` ("postgresql", "mariadb", "sqlite"), dropped on exit."""
    if kind == "sqlite":
        assert tmp_path is not None, "a SQLite database lives in a directory"
        url = f"sqlite:///{tmp_path / f'loupe_{secrets.token_hex(4)}.db'}"
        engine = sa.create_engine(url)
        try:
            yield TestDB(kind=kind, url=url, password=None, engine=engine)
        finally:
            engine.dispose()
        return
    maker = _postgres if kind == "postgresql" else _mariadb
    with maker(f"loupe_sql_{secrets.token_hex(6)}") as db:
        yield db


@contextmanager
def _postgres(name: str) -> Iterator[TestDB]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    password = "pg-" + secrets.token_urlsafe(12)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # our own random name
    base = make_url(PG_ADMIN_URL).set(database=name)
    # Trust auth ignores the password, but it still travels in the URL: masking is exercised.
    url = base.set(password=password).render_as_string(hide_password=False)
    engine = sa.create_engine(base)
    try:
        yield TestDB(kind="postgresql", url=url, password=password, engine=engine)
    finally:
        engine.dispose()
        _dispose_connector_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def _mariadb(name: str) -> Iterator[TestDB]:
    admin = sa.create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    user, password = "u" + name[-12:], "mdb-" + secrets.token_urlsafe(12)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
        # Every right on its database: only the connector's read-only transaction stops writes.
        conn.execute(sa.text(f"GRANT ALL ON `{name}`.* TO '{user}'@'%'"))
    base = make_url(MARIADB_ADMIN_URL).set(database=name)
    url = base.set(username=user, password=password).render_as_string(hide_password=False)
    engine = sa.create_engine(base.set(query={"charset": "utf8mb4"}))
    try:
        yield TestDB(kind="mariadb", url=url, password=password, engine=engine)
    finally:
        engine.dispose()
        _dispose_connector_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


def _dispose_connector_engines() -> None:
    from connectors.sql_engine import dispose_engines

    dispose_engines()
