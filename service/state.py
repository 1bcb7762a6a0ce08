"""The relational state store: sources, jobs and exports (SQLite or PostgreSQL); service/jobs/queue.py
holds the job queue's logic."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.schema import DefaultClause
from sqlalchemy.sql.elements import TextClause

from service.errors import (
    InvalidConfig,
    SourceExists,
    SourceNotFound,
    StateUnavailable,
)

SCHEMA_LOCK_KEY = 0x4C6F757065  # "Loupe": the advisory lock that serialises schema creation


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class SourceRow(Base):
    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    __tablename__ = "jobs"
    # At most one queued-or-running job per lock key ("sync:<source>"), enforced by the
    # database so that replicas sharing PostgreSQL cannot both start one.
    __table_args__ = (
        Index(
            "uq_jobs_active_lock",
            "lock_key",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
            sqlite_where=text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True, default="sync", server_default="sync")
    # "" for jobs of no source (the column predates other kinds and is NOT NULL in older stores).
    source: Mapped[str] = mapped_column(String(200), index=True)
    lock_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # What a kind needs to resume after a restart (e.g. the Label Studio project it created).
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Seconds spent per stage (a sync's list, read, decode, encode, upsert), summed over the job.
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ExportRow(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LabelSetRow(Base):
    """A label set (service/labels/store.py); its annotations live in the index payload."""

    __tablename__ = "label_sets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(16))
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    classes_declared: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str | None] = mapped_column(Text, nullable=True)
    assets: Mapped[int] = mapped_column(Integer, default=0)
    last_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LabelImportBatchRow(Base):
    """A validated batch of (asset id, payload value) waiting for its import job to write it.

    Kept in the state store rather than a local file, so that any replica's runner can run (or
    resume) the job; the job deletes its batches when it ends.
    """

    __tablename__ = "label_import_batches"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    items: Mapped[list[Any]] = mapped_column(JSON)


class LabelScoresRow(Base):
    """The class-probability vector (`scores`) of one asset in one label set: kept here rather
    than in the index payload (service/catalog/label_scores.py says why)."""

    __tablename__ = "label_scores"

    set_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)


class SpaceRow(Base):
    """A user vector space (service/spaces): a named vector of the index's points."""

    __tablename__ = "vector_spaces"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    distance: Mapped[str] = mapped_column(String(16))
    # Filled by `loupe sync NAME --space S --model M`: the model that makes its vectors.
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pretrained: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_own_transactions(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so a SELECT and the
    # UPDATE after it (a claim, an owner check) ran as two transactions: two processes
    # claimed the same job (benchmarks/bench_jobs.py saw it). SQLAlchemy begins them instead.
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout): a plain BEGIN
    # reads a snapshot and fails with "database is locked", without waiting, when another
    # writer commits before its first write. Every transaction here is short.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# Drivers whose connect() takes `connect_timeout` in seconds (psycopg, psycopg2, PyMySQL, mysqlclient).
_TIMEOUT_BACKENDS = ("postgresql", "mysql", "mariadb")
DEFAULT_CONNECT_TIMEOUT_S = 5


def _json_dumps(value: Any) -> str:
    """The JSON columns' encoder: orjson (a 100,000-value label-import spool in 0.15 s rather than
    json's 1.2 s), and json where orjson refuses (keys that are not strings, integers past 64
    bits), so that anything json stored before is stored alike."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # a NaN that json wrote once
        return json.loads(text)


_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


def make_engine(url: str, *, connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S) -> Engine:
    """An engine for `url` with the schema created; errors name the URL without its password.

    A server store gets a connect timeout, and waits no longer than that for a pooled
    connection: without them a request to a host that drops packets waits for the kernel's
    connect retries (over two minutes) instead of answering 503. (A pooled connection whose
    server goes silent mid-query is not bounded by either.)
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not echoed: the unparsed text may hold a password where we cannot tell.
        raise InvalidConfig(
            "LOUPE_DATABASE_URL is not a database URL; write it like "
            "postgresql+psycopg://user:password@host:5432/loupe"
        ) from None
    safe = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"check_same_thread": False}, **_JSON)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "connect", _sqlite_own_transactions)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        else:
            timed = parsed.get_backend_name() in _TIMEOUT_BACKENDS
            timeout = {"connect_timeout": connect_timeout_s} if timed else {}
            engine = create_engine(
                parsed,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_timeout=connect_timeout_s,
                connect_args=timeout,
                **_JSON,
            )
    except (ArgumentError, ImportError) as exc:  # an unknown dialect or a driver not installed
        raise InvalidConfig(
            f"cannot use the state store at {safe}: {exc}; install its driver or fix LOUPE_DATABASE_URL"
        ) from None
    try:
        _create_schema(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StateUnavailable(
            f"cannot open the state store at {safe}: {_one_line(exc.orig)}; check LOUPE_DATABASE_URL"
        ) from None
    return engine


def _one_line(exc: BaseException | None) -> str:
    """A driver's message on one line (psycopg's hints span several)."""
    return " ".join(str(exc).split())


def _create_schema(engine: Engine) -> None:
    """Create the missing tables; replicas starting together on PostgreSQL take turns.

    Two CREATE TABLEs of one name racing on an empty PostgreSQL database make the
    second fail on pg_type's unique index, so the first replica's transaction holds
    an advisory lock and the next one then finds the tables there.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        Base.metadata.create_all(conn)
        _upgrade(conn)


def _upgrade(conn: Connection) -> None:
    """Bring a store made by an older Loupe up to this schema: every change so far only adds.

    Columns are added with their server defaults; the jobs' one-active-sync-per-source
    index became one active job per lock key (existing active syncs keep their lock).
    """
    found = inspect(conn)
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type.compile(conn.dialect)}"
            default = col.server_default
            if isinstance(default, DefaultClause):
                arg = default.arg
                ddl += f" DEFAULT {arg.text if isinstance(arg, TextClause) else repr(str(arg))}"
            conn.execute(text(ddl))
    if any(i["name"] == "uq_jobs_active_source" for i in found.get_indexes("jobs")):
        conn.execute(text("DROP INDEX uq_jobs_active_source"))
        conn.execute(
            text("UPDATE jobs SET lock_key = 'sync:' || source WHERE state IN ('queued', 'running')")
        )
    for index in Base.metadata.tables["jobs"].indexes:
        index.create(conn, checkfirst=True)


class StateStore:
    """Typed access to the state tables; every method runs in its own transaction."""

    def __init__(self, url: str, *, connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        self.engine = make_engine(url, connect_timeout_s=connect_timeout_s)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; a store that cannot be reached raises StateUnavailable (503).

        IntegrityError and the like pass through: they are answers from a working database.
        `from None`: the driver's exception carries the statement's parameters (source configs
        with credentials among them), which must not reach a log through the chain.
        """
        try:
            with self._sessions.begin() as s:
                yield s
        except (OperationalError, InterfaceError) as exc:
            raise self._unavailable(exc) from None
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            raise self._unavailable(exc) from None
        except PoolTimeout:
            why = "every pooled connection stayed busy; the database answers too slowly"
            raise StateUnavailable(f"the state store at {self.url} cannot be reached: {why}") from None

    def _unavailable(self, exc: DBAPIError) -> StateUnavailable:
        # SQLSTATE class 08 is a connection failure, 57P a server shutting down or starting;
        # None is psycopg failing to connect. Others (a deadlock; SQLite, which has no
        # SQLSTATE, locked) come from a database that is there but cannot answer now.
        state: str | None = getattr(exc.orig, "sqlstate", "")
        gone = exc.connection_invalidated or state is None or state.startswith(("08", "57P"))
        what = "cannot be reached" if gone else "cannot answer now"
        return StateUnavailable(
            f"the state store at {self.url} {what}: {_one_line(exc.orig)}; "
            "check that the database is up and LOUPE_DATABASE_URL"
        )

    def check(self) -> dict[str, Any]:
        """The store's part of /health: one read of a state table; StateUnavailable when it fails."""
        t0 = time.perf_counter()
        with self.session() as s:
            s.execute(select(SourceRow.name).limit(1))
        latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        return {"ok": True, "backend": self.engine.dialect.name, "latency_ms": latency_ms}

    def close(self) -> None:
        self.engine.dispose()

    # -- sources ---------------------------------------------------------

    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> SourceRow:
        row = SourceRow(name=name, kind=kind, config=config, created_at=utcnow())
        try:
            with self.session() as s:
                s.add(row)
        except IntegrityError:
            raise SourceExists(
                f"a source named {name!r} exists already; remove it first or pick another name"
            ) from None
        return row

    def get_source(self, name: str) -> SourceRow:
        with self.session() as s:
            row = s.get(SourceRow, name)
        if row is None:
            raise SourceNotFound(f"no source named {name!r}; `loupe source list` shows them")
        return row

    def list_sources(self) -> list[SourceRow]:
        with self.session() as s:
            return list(s.scalars(select(SourceRow).order_by(SourceRow.name)))

    def remove_source(self, name: str) -> None:
        with self.session() as s:
            row = s.get(SourceRow, name)
            if row is None:
                raise SourceNotFound(f"no source named {name!r}")
            s.delete(row)

    def set_cursor(self, name: str, cursor: str | None) -> None:
        with self.session() as s:
            row = s.get(SourceRow, name)
            if row is not None:
                row.cursor = cursor

    # -- exports ---------------------------------------------------------

    def create_export(self, target: str, request: dict[str, Any]) -> ExportRow:
        row = ExportRow(
            id=str(uuid.uuid4()),
            target=target,
            state="queued",
            request=request,
            counts={},
            created_at=utcnow(),
        )
        with self.session() as s:
            s.add(row)
        return row

    def get_export(self, export_id: str) -> ExportRow:
        from service.errors import ExportNotFound

        with self.session() as s:
            row = s.get(ExportRow, export_id)
        if row is None:
            raise ExportNotFound(f"no export with id {export_id!r}")
        return row

    def update_export(self, export_id: str, **fields: Any) -> None:
        with self.session() as s:
            row = s.get(ExportRow, export_id)
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def list_exports(self, *, states: tuple[str, ...] | None = None, limit: int = 100) -> list[ExportRow]:
        """Recent exports, newest first, optionally only those in `states`."""
        q = select(ExportRow).order_by(ExportRow.created_at.desc()).limit(limit)
        if states is not None:
            q = q.where(ExportRow.state.in_(states))
        with self.session() as s:
            return list(s.scalars(q))


_TABLES_READY: set[tuple[int, str]] = set()
_TABLES_LOCK = threading.Lock()


def ensure_table(engine: Engine, table: Any) -> None:
    """Create a feature's table on first use in this process, so a state store made before the
    feature existed gains it without a migration step (once per engine and table)."""
    key = (id(engine), table.name)
    with _TABLES_LOCK:
        if key in _TABLES_READY:
            return
        table.create(engine, checkfirst=True)
        _TABLES_READY.add(key)
