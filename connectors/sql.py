"""The SQL connector: assets listed by a table or a read-only query on any SQLAlchemy URL.

Each row is one asset: `key` names it, `uri_column` says where its bytes are
(`file://` or a path under `root`, `s3://bucket/key`, `http(s)://` for allowed
hosts; opened by connectors.uris) or `bytes_column` holds them, and the other
columns (or `columns`) become its metadata, typed as connectors.sql_values says.

    connectors.sql_guard    one read-only SELECT, a read-only transaction, a statement timeout
    connectors.sql_values   cells as metadata, typed cursors, row versions
    connectors.sql_schema   a table's or a query's columns
    connectors.sql_engine   pooled engines, driver timeouts, errors marked transient or terminal

Choices a user can see:
- Listing reads keyset pages of `chunk_size` rows ordered by (cursor, key), or
  by key without a cursor, each page in its own short read-only transaction.
  A server-side cursor held open while the pipeline encodes for hours would pin
  a snapshot (PostgreSQL vacuum) or hit `net_write_timeout` (MariaDB); pages
  keep memory bounded by one page and leave nothing open between them, and a
  page whose connection failed transiently is read again (`max_attempts`).
- `record.cursor` is JSON: `{"column": "updated_at", "cursor": ["datetime",
  "2024-05-01T10:00:00+00:00"], "key": ["int", 42]}`. Values are tagged so they
  bind back with their type; the key breaks ties between rows sharing a cursor
  value. A cursor saved for another column is ignored (a full listing follows).
  Rows whose cursor or key is NULL are not listed; a row committed late with a
  cursor value below the saved one (a clock set by the writer) waits for `--full`.
- `version` is a hash of the row as listed (URI or byte length, metadata),
  prefixed by the cursor value when there is a cursor column.
"""

from __future__ import annotations

import builtins
import posixpath
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.sql import ColumnElement, FromClause

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing
from connectors.s3_config import S3Connection
from connectors.sidecar import media_type
from connectors.sql_engine import Masker, engine, sql_errors
from connectors.sql_guard import begin_read_only, read_only_query
from connectors.sql_schema import probe, reflect
from connectors.sql_values import (
    SKIP,
    ColumnKind,
    aware,
    bind,
    decode_cursor,
    encode_cursor,
    json_value,
    key_text,
    row_hash,
    vector_value,
)
from connectors.uris import UriOpener, sniff_media_type
from service.errors import AssetError, InvalidConfig
from service.retry import RetryPolicy

T = TypeVar("T")
PROBE_ATTEMPTS = 2
_SIZE_LABEL = "__loupe_size"


class SQLConfig(ConnectorConfig):
    """A table or a read-only query on any SQLAlchemy URL; field names are the CLI flags."""

    url: SecretStr
    table: str | None = None
    query: str | None = None
    key: str = Field(validation_alias=AliasChoices("key", "key_column"))
    uri_column: str | None = None
    bytes_column: str | None = None
    cursor: str | None = Field(default=None, validation_alias=AliasChoices("cursor", "cursor_column"))
    columns: list[str] | None = None
    root: Path | None = None
    allow_http_hosts: list[str] = []
    s3: S3Connection | None = None  # how to read s3:// URIs; the s3 connector's model
    statement_timeout_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=20)  # tries of a read whose connection failed
    chunk_size: int = Field(default=2000, ge=1, le=100_000)
    # A column of embeddings (an array, or JSON text of a list of numbers) written into the user
    # vector space `vector_space` at each sync; it is not metadata.
    vector_column: str | None = None
    vector_space: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, v: SecretStr) -> SecretStr:
        try:
            make_url(v.get_secret_value())
        except (sa_exc.ArgumentError, ValueError):
            # Never echo the value: it holds the password.
            raise ValueError(
                "not a SQLAlchemy URL; expected e.g. postgresql+psycopg://user:password@host/db"
            ) from None
        return v

    @field_validator("root")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else v.expanduser().resolve()

    @field_validator("allow_http_hosts")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [h.strip().lower() for h in v if h.strip()]

    @model_validator(mode="after")
    def _one_of_each(self) -> SQLConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` and `query`")
        if (self.uri_column is None) == (self.bytes_column is None):
            raise ValueError("give exactly one of `uri_column` and `bytes_column`")
        if (self.vector_column is None) != (self.vector_space is None):
            raise ValueError("give `vector_column` and `vector_space` together (the column fills the space)")
        if self.query is not None:
            backend = make_url(self.url.get_secret_value()).get_backend_name()
            self.query = read_only_query(self.query, backend=backend)
        return self

    def stored(self) -> dict[str, Any]:
        # The base class unmasks top-level secrets only; the s3 keys are nested.
        data = super().stored()
        if self.s3 is not None:
            data["s3"] = self.s3.stored()
        return data


@dataclass(frozen=True, slots=True)
class _Plan:
    """The source's columns, resolved once against the database."""

    source: FromClause
    columns: Mapping[str, ColumnElement[Any]]
    metadata: list[tuple[str, int, ColumnKind]]  # name, position in `selected`, kind
    selected: list[Any]
    pos: Mapping[str, int]  # position of each selected column in a row
    cursor_kind: ColumnKind
    label: str


class SQLConnector:
    """Rows of a table or query as assets; see the module docstring for the rules."""

    kind: ClassVar[str] = "sql"
    config_model: ClassVar[type[ConnectorConfig]] = SQLConfig

    def __init__(self, name: str, config: SQLConfig) -> None:
        self.name = name
        self.config = config
        self.url = make_url(config.url.get_secret_value())
        self.mask = Masker(self.url)
        with sql_errors(self.mask, "opening the database", error=InvalidConfig):
            self.engine = engine(
                self.url, connect_s=config.connect_timeout_s, statement_timeout_s=config.statement_timeout_s
            )
        self.retry = RetryPolicy(attempts=config.max_attempts)
        # Rows with bytes get `sql://` URIs: the row itself is their scheme.
        own = {"sql": self._fetch_row_bytes} if config.bytes_column is not None else {}
        self.opener = UriOpener(
            root=config.root,
            allow_http_hosts=config.allow_http_hosts,
            s3=config.s3,
            connect_timeout_s=config.connect_timeout_s,
            schemes=own,
        )
        self._plan_cache: _Plan | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        self._plan_cache = None  # the table may have changed since the last check
        # A source being added answers its request soon: fewer tries than a sync's reads.
        self._plan(policy=RetryPolicy(attempts=min(PROBE_ATTEMPTS, self.config.max_attempts)))

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        plan = self._plan()
        after = None
        if cursor is not None and not full and self.config.cursor is not None:
            after = decode_cursor(cursor, column=self.config.cursor)
        return Listing(records=self._records(plan, after), complete=after is None)

    def fetch(self, record: AssetRecord) -> Blob:
        if not record.uri:
            raise AssetError(f"column {self.config.uri_column!r} is empty in this row")
        return self.opener.open(record)

    def close(self) -> None:
        """Close HTTP clients; pooled database connections are shared per URL."""
        self.opener.close()

    # -- plan: what the table or query has ---------------------------------

    def _plan(self, *, policy: RetryPolicy | None = None) -> _Plan:
        with self._lock:
            if self._plan_cache is None:
                self._plan_cache = self._resolve(policy or self.retry)
            return self._plan_cache

    def _resolve(self, policy: RetryPolicy) -> _Plan:
        self._check_sqlite_file()

        def read_columns(conn: Connection) -> tuple[FromClause, dict[str, ColumnKind], str]:
            with sql_errors(self.mask, "reading the source's columns", error=InvalidConfig):
                if self.config.table is not None:
                    return reflect(conn, self.config.table)
                return probe(conn, self.config.query or "")

        source, kinds, label = self._read("connecting to " + self.mask.where, read_columns, policy=policy)
        columns = {c.name: c for c in source.columns}
        self._check_columns(list(columns), label)
        wanted = self.config.columns or [
            c for c in columns if c not in (self.config.key, self._content_column, self.config.vector_column)
        ]
        selected, pos = self._selection(columns, wanted)
        return _Plan(
            source=source,
            columns=columns,
            metadata=[(name, pos[name], kinds.get(name, "")) for name in wanted],
            selected=selected,
            pos=pos,
            cursor_kind=kinds.get(self.config.cursor or "", ""),
            label=label,
        )

    def _selection(
        self, cols: Mapping[str, ColumnElement[Any]], wanted: Sequence[str]
    ) -> tuple[builtins.list[Any], dict[str, int]]:
        """What a page selects, and where each column sits in a row (read by position: fast)."""
        c = self.config
        candidates = dict.fromkeys([c.key, *wanted, c.cursor, c.uri_column, c.vector_column])
        names = [n for n in candidates if n is not None]
        selected: builtins.list[Any] = [cols[n] for n in names]
        if c.bytes_column is not None:
            names.append(_SIZE_LABEL)
            selected.append(sa.func.length(cols[c.bytes_column]).label(_SIZE_LABEL))
        return selected, {n: i for i, n in enumerate(names)}

    @property
    def _content_column(self) -> str:
        return self.config.uri_column or self.config.bytes_column or ""

    def _check_columns(self, available: Sequence[str], label: str) -> None:
        c = self.config
        named = [("key", c.key), ("uri_column", c.uri_column), ("bytes_column", c.bytes_column)]
        named += [("cursor", c.cursor), ("vector_column", c.vector_column)]
        named += [("columns", col) for col in c.columns or []]
        for field, col in named:
            if col is not None and col not in available:
                raise InvalidConfig(
                    f"column {col!r} (`{field}`) not found in {label}; "
                    f"its columns are: {', '.join(available)}"
                )

    def _check_sqlite_file(self) -> None:
        # SQLite would create an empty file and then report the table missing.
        db = self.url.database
        if self.url.get_backend_name() == "sqlite" and db and db != ":memory:":
            if not db.startswith("file:") and not Path(db).is_file():
                # The URL names a file that is not there: the input is wrong (422), nothing failed.
                raise InvalidConfig(f"url: SQLite database file {db} does not exist; check the path")

    @contextmanager
    def _read_only(self, doing: str) -> Iterator[Connection]:
        """A connection in a read-only transaction with a statement timeout."""
        with sql_errors(self.mask, doing):
            # Closing the connection rolls the transaction back: nothing is ever committed.
            with self.engine.connect() as conn:
                begin_read_only(conn, timeout_s=self.config.statement_timeout_s)
                yield conn

    def _read(self, doing: str, fn: Callable[[Connection], T], *, policy: RetryPolicy | None = None) -> T:
        """`fn(conn)` in a read-only transaction, tried again while the connection fails transiently.

        Every read here is a SELECT in its own transaction, so another try is always safe.
        """

        def once() -> T:
            with self._read_only(doing) as conn:
                return fn(conn)

        return (policy or self.retry).call(once, what=f"{doing} ({self.mask.where})")

    # -- listing ---------------------------------------------------------------

    def _records(self, plan: _Plan, after: tuple[Any, Any] | None) -> Iterator[AssetRecord]:
        while True:
            rows = self._page(plan, after)
            for row in rows:
                yield self._record(plan, row)
            if len(rows) < self.config.chunk_size:
                return
            last = rows[-1]
            cursor = last[plan.pos[self.config.cursor]] if self.config.cursor else None
            after = (cursor, last[plan.pos[self.config.key]])

    def _page(self, plan: _Plan, after: tuple[Any, Any] | None) -> Sequence[sa.Row[Any]]:
        c, cols = self.config, plan.columns
        key = cols[c.key]
        order = [key] if c.cursor is None else [cols[c.cursor], key]
        stmt = sa.select(*plan.selected).select_from(plan.source)
        if c.cursor is not None:
            cur = cols[c.cursor]
            stmt = stmt.where(cur.is_not(None))
            if after is not None:
                # `cur >= last` keeps the index range scan; the OR breaks ties by key.
                last, last_key = bind(after[0]), bind(after[1])
                stmt = stmt.where(cur >= last, sa.or_(cur > last, key > last_key))
        elif after is not None:
            stmt = stmt.where(key > bind(after[1]))
        stmt = stmt.where(key.is_not(None)).order_by(*order).limit(c.chunk_size)
        return self._read(f"listing {plan.label}", lambda conn: conn.execute(stmt).all())

    def _record(self, plan: _Plan, row: sa.Row[Any]) -> AssetRecord:
        c, pos = self.config, plan.pos
        key = row[pos[c.key]]
        metadata: dict[str, Any] = {}
        for name, i, kind in plan.metadata:
            v = json_value(row[i], kind)
            if v is not SKIP:
                metadata[name] = v
        size = row[pos[_SIZE_LABEL]] if c.bytes_column is not None else None
        uri = self._uri_of(key, row[pos[c.uri_column]] if c.uri_column else None)
        vectors: dict[str, Any] = {}
        if c.vector_column is not None and c.vector_space is not None:
            vector = vector_value(row[pos[c.vector_column]])
            if vector is not None:
                vectors[c.vector_space] = vector
        # A changed vector is a changed row: the next sync writes it.
        digest = row_hash(uri, size, {**metadata, "\0vector": vectors} if vectors else metadata)
        cursor_value = row[pos[c.cursor]] if c.cursor else None
        return AssetRecord(
            key=key_text(key),
            uri=uri,
            version=digest if c.cursor is None else f"{key_text(cursor_value)}|{digest}",
            size_bytes=size,
            modified_at=aware(cursor_value, plan.cursor_kind),
            media_type=media_type(uri.split("?", 1)[0].split("#", 1)[0]) if c.uri_column else None,
            metadata=metadata,
            cursor=encode_cursor(column=c.cursor, value=cursor_value, key=key) if c.cursor else None,
            hints={"key": key},
            vectors=vectors,
        )

    def _uri_of(self, key: Any, raw: Any) -> str:
        if self.config.bytes_column is not None:
            return f"sql://{quote(self.name, safe='')}/{quote(key_text(key), safe='')}"
        text = "" if raw is None else str(raw).strip()
        if not text or "://" in text or self.config.root is None:
            return text
        # A plain path: lexically under the root here (string ops: this runs per row),
        # checked for real, links included, in fetch.
        root = str(self.config.root)
        path = posixpath.normpath(posixpath.join(root, text))
        inside = path.startswith(root.rstrip("/") + "/")
        return "file://" + quote(path) if inside else text

    # -- fetching ------------------------------------------------------------------

    def _fetch_row_bytes(self, record: AssetRecord) -> Blob:
        plan = self._plan()
        c = self.config
        # Hints carry the typed key; a record rebuilt from the index has only its text.
        key = record.hints.get("key", record.key)
        col = plan.columns[c.bytes_column or ""]
        stmt = sa.select(col).select_from(plan.source).where(plan.columns[c.key] == bind(key))

        def read(conn: Connection) -> Sequence[Any]:
            with sql_errors(self.mask, f"reading row {record.key!r}", error=AssetError):
                return conn.execute(stmt.limit(2)).scalars().all()

        data = self._read(f"reading {record.key!r}", read)
        if not data:
            raise AssetError(f"row {record.key!r} is no longer in {plan.label}")
        if data[0] is None:
            raise AssetError(f"column {c.bytes_column!r} is NULL in row {record.key!r}")
        blob = bytes(data[0])
        return Blob(data=blob, media_type=sniff_media_type(blob))
