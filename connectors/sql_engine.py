"""The SQL connector's connections: one pooled engine per URL, driver timeouts, errors as ours.

Every SQLAlchemy or driver error passes through `sql_errors()`, with the URL's
password masked: a server that cannot be reached, is starting, is full, or
dropped the connection (and a lock or deadlock that gave way) is
SourceUnavailable, which service.retry tries again; a refused login, a missing
database or table, a syntax error or a statement timeout is terminal. A driver
that is not installed names its `pip install` line.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine

from connectors.deps import missing_dependency
from service.errors import LoupeError, MissingDependency, SourceError, SourceUnavailable

_ENGINES: dict[tuple[str, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()
# Drivers we suggest per database, with what installs them.
SUGGESTED_DRIVERS = {
    "postgresql": ("postgresql+psycopg://", "pip install 'psycopg[binary]'"),
    "mysql": ("mysql+pymysql://", "pip install pymysql"),
    "mariadb": ("mariadb+pymysql://", "pip install pymysql"),
    "sqlite": ("sqlite:///path/to/file.db", "nothing to install"),
}
# PostgreSQL SQLSTATEs worth another try: the connection (08), resources (53), a
# serialization failure or deadlock (40001, 40P01), a server shutting down or starting.
_PG_TRANSIENT_CLASSES = ("08", "53")
_PG_TRANSIENT_STATES = {"40001", "40P01", "57P01", "57P02", "57P03"}
# What libpq says, with no SQLSTATE, when the server turns a new connection away for now.
_PG_BUSY_WORDS = ("starting up", "shutting down", "too many clients", "connection slots are reserved")
# MySQL/MariaDB error numbers worth another try: cannot connect, gone away, lost the
# connection, too many connections, shutting down, lock wait timeout, deadlock, killed.
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


class Masker:
    """Removes the URL's password from any text that might be shown or logged."""

    def __init__(self, url: URL) -> None:
        pw = url.password
        # The password may show up raw or URL-encoded (as it was written in the URL).
        self.secrets = sorted({pw, quote(pw, safe=""), quote(pw)}, key=len, reverse=True) if pw else []
        self.where = url.render_as_string(hide_password=True)
        self.backend = url.get_backend_name()

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    text = text.split("\n[SQL:")[0].split("(Background on this error")[0]
    return " ".join(text.split())[:500]


@contextmanager
def sql_errors(mask: Masker, doing: str, *, error: type[LoupeError] = SourceError) -> Iterator[None]:
    """Map SQLAlchemy and driver errors to ours, with the password masked.

    `error` is what a terminal failure of this step is (InvalidConfig while
    reading the columns: the config names something the database refuses). A
    connection that cannot be made or was lost is SourceUnavailable whatever
    the step: the source as a whole is gone, for now.
    """
    try:
        yield
    except LoupeError:
        raise
    except sa_exc.NoSuchModuleError:
        raise unknown_driver(mask.where) from None
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        message = mask(f"{doing}: {_driver_message(exc)}")
        if _is_timeout(exc):
            raise SourceError(
                f"{message}; the query ran past statement_timeout_s: raise it, or index the "
                "key and cursor columns"
            ) from None
        if is_transient(exc):
            raise SourceUnavailable(message) from None
        raise error(message) from None
    except ImportError as exc:
        missing = missing_dependency(exc, needed_for=f"the database URL {mask.where}")
        if mask.backend in SUGGESTED_DRIVERS:
            url, pip = SUGGESTED_DRIVERS[mask.backend]
            missing = MissingDependency(f"{missing.detail}; or use a {url} URL ({pip})")
        raise missing from None
    except sa_exc.SQLAlchemyError as exc:
        raise error(mask(f"{doing}: {_driver_message(exc)}")) from None


def unknown_driver(where: str) -> MissingDependency:
    """The error for a URL whose dialect or driver SQLAlchemy does not know."""
    suggested = "; ".join(f"{db}: {url} ({pip})" for db, (url, pip) in SUGGESTED_DRIVERS.items())
    return MissingDependency(
        f"no SQLAlchemy driver for {where}: check the URL's dialect+driver, or install the package "
        f"that provides it; known ones: {suggested}"
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a SQLAlchemy error may pass on another try: the connection, not the query, failed."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True  # the pool had no free connection in time
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return str(state)[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_TRANSIENT
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    text = str(orig)
    if "database is locked" in text or "database table is locked" in text:
        return True  # SQLite: a writer holds the file past the busy timeout
    if type(orig).__module__.startswith("psycopg") and "FATAL:" in text:
        # The server answered and refused: a login, a role or a database that is wrong.
        return any(word in text for word in _PG_BUSY_WORDS)
    # libpq without SQLSTATE and without FATAL: no answer at all (refused, timed out, cut off).
    return type(orig).__module__.startswith("psycopg")


def _is_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL: query_canceled
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    # MariaDB max_statement_time, MySQL max_execution_time
    return bool(args) and args[0] in (1969, 3024)


def dispose_engines() -> None:
    """Close every pooled database connection (at shutdown, or before dropping a database)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def engine(url: URL, *, connect_s: float, statement_timeout_s: float) -> Engine:
    """One pooled engine per URL and timeouts, shared by every connector built on it."""
    args = _connect_args(url, connect_s=connect_s, statement_timeout_s=statement_timeout_s)
    cache_key = (url.render_as_string(hide_password=False), json.dumps(args, sort_keys=True))
    with _ENGINES_LOCK:
        found = _ENGINES.get(cache_key)
        if found is None:
            found = _ENGINES[cache_key] = sa.create_engine(url, pool_pre_ping=True, connect_args=args)
        return found


def _connect_args(url: URL, *, connect_s: float, statement_timeout_s: float) -> dict[str, Any]:
    """Connect and read timeouts in each driver's own words; the URL's own settings win."""
    driver = url.get_driver_name()
    args: dict[str, Any] = {}
    if driver in ("psycopg", "psycopg2"):
        args = {"connect_timeout": max(2, math.ceil(connect_s))}  # libpq's floor is 2 s
    elif driver in ("pymysql", "mysqldb"):
        # A server that stops answering mid-read must not hang the sync forever.
        args = {"connect_timeout": connect_s, "read_timeout": statement_timeout_s + 30}
    return {k: v for k, v in args.items() if k not in url.query}
