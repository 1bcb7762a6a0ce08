"""The SQL connector: assets listed by a table or a read-only query on any SQLAlchemy URL.

Each row is one asset: `key` names it, `uri_column` says where its bytes are
(`file://` or a path under `root`, `s3://bucket/key`, `http(s)://` for allowed
hosts) or `bytes_column` holds them, and the other columns (or `columns`)
become its metadata.

Choices a user can see:
- Metadata keeps types: integers, floats and booleans stay JSON numbers and
  booleans, Decimal becomes a float, timestamps RFC 3339 strings in UTC (a
  timestamp without a zone is taken as UTC), dates `YYYY-MM-DD`, JSON columns
  nested objects. NULL (and NaN) is omitted, so `{"col": {"exists": false}}`
  finds it. Binary columns other than the image are skipped: blobs are not
  filterable and would bloat every payload.
- Listing reads keyset pages of `chunk_size` rows ordered by (cursor, key), or
  by key without a cursor, each page in its own short read-only transaction.
  A server-side cursor held open while the pipeline encodes for hours would pin
  a snapshot (PostgreSQL vacuum) or hit `net_write_timeout` (MariaDB); pages
  keep memory bounded by one page and leave nothing open between them.
- `record.cursor` is JSON: `{"column": "updated_at", "cursor": ["datetime",
  "2024-05-01T10:00:00+00:00"], "key": ["int", 42]}`. Values are tagged so they
  bind back with their type; the key breaks ties between rows sharing a cursor
  value. A cursor saved for another column is ignored (a full listing follows).
  Rows whose cursor or key is NULL are not listed; a row committed late with a
  cursor value below the saved one (a clock set by the writer) waits for `--full`.
- `version` is a hash of the row as listed (URI or byte length, metadata),
  prefixed by the cursor value when there is a cursor column.

Queries pass three guards: a conservative scan that refuses anything but one
SELECT/WITH statement, a read-only transaction (PostgreSQL, MariaDB/MySQL;
SQLite connections are `query_only`), and a statement timeout (PostgreSQL,
MariaDB/MySQL). Other databases get the scan alone; the role's grants remain
the last word everywhere.
"""

from __future__ import annotations

import builtins
import hashlib
import itertools
import json
import math
import posixpath
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, unquote, urlsplit
from uuid import UUID

import sqlalchemy as sa
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.types import NullType

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing, register
from connectors.s3 import S3Client, S3Connection
from connectors.sidecar import media_type
from service.errors import AssetError, InvalidConfig, LoupeError, SourceError

MAX_FETCH_BYTES = 200 * 1024 * 1024
MAX_REDIRECTS = 5
_SIZE_LABEL = "__loupe_size"
_ENGINES: dict[tuple[str, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


# -- config ------------------------------------------------------------------


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
    chunk_size: int = Field(default=2000, ge=1, le=100_000)

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


# -- the read-only guard -------------------------------------------------------

# Statements that write can only hide inside one SELECT/WITH as these words
# (data-modifying CTEs, SELECT INTO, locking reads) or these functions; every
# other statement needs a `;`, which is refused.
_BANNED_WORDS = frozenset(
    "insert update delete merge upsert into drop create alter truncate grant revoke".split()
)
_BANNED_PAIRS = frozenset({("for", "share"), ("key", "share"), ("share", "mode")})
_BANNED_FUNCTIONS = frozenset(
    "nextval setval set_config dblink dblink_exec lo_import lo_export pg_terminate_backend "
    "pg_cancel_backend pg_reload_conf pg_advisory_lock pg_advisory_xact_lock get_lock "
    "load_file".split()
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True, slots=True)
class _Reading:
    """One way a database may read quotes and comments; the guard must pass under all."""

    backslash: bool  # MySQL: backslash escapes inside quotes
    hash_comment: bool  # MySQL: `# ...`
    dollar: bool  # PostgreSQL: $tag$ ... $tag$
    nested: bool  # PostgreSQL: /* /* */ */ nests
    dash_space: bool  # MySQL: `--` opens a comment only before whitespace
    bracket: bool  # SQLite: [identifier]


# How each database reads quotes and comments; a backslash escapes in MySQL unless
# NO_BACKSLASH_ESCAPES, and in PostgreSQL inside E'' strings, so both ways there.
_KNOWN_READINGS = {
    "postgresql": [_Reading(b, False, True, True, False, False) for b in (False, True)],
    "mysql": [_Reading(b, True, False, False, True, False) for b in (False, True)],
    "sqlite": [_Reading(False, False, False, False, False, True)],
}
_KNOWN_READINGS["mariadb"] = _KNOWN_READINGS["mysql"]


def _readings(sql: str, backend: str | None) -> list[_Reading]:
    """The backend's readings; for any other database every reading that could differ."""
    if backend in _KNOWN_READINGS:
        return _KNOWN_READINGS[backend]

    def both(*triggers: str) -> tuple[bool, ...]:
        return (False, True) if any(t in sql for t in triggers) else (False,)

    flags = itertools.product(both("\\"), both("#"), both("$"), both("/*"), both("--"), both("["))
    return [_Reading(*f) for f in flags]


def read_only_query(sql: str, *, backend: str | None = None) -> str:
    """`sql` without a trailing `;` if it is one read-only SELECT/WITH statement.

    Quotes and comments are read the way `backend` (a SQLAlchemy backend name)
    reads them, or every way when it is unknown, and the query must pass under
    each reading: when in doubt, refuse. Raises ValueError saying why.
    """
    if "/*!" in sql or "/*M!" in sql:
        raise ValueError("MySQL executable comments (/*! ... */) are not allowed in a query")
    for reading in _readings(sql, backend):
        code = _code_only(sql, reading).rstrip().rstrip(";").rstrip()
        if ";" in code:
            raise ValueError("the query must be a single statement (no `;` between statements)")
        _check_code(code)
    body = sql.rstrip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _check_code(code: str) -> None:
    depth = 0
    for ch in code:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError("unbalanced parentheses in the query")
    if depth:
        raise ValueError("unbalanced parentheses in the query")
    words = [w.lower() for w in _WORD.findall(code)]
    if not words or words[0] not in ("select", "with"):
        raise ValueError("only a SELECT (or WITH ... SELECT) query is allowed")
    for word, nxt in zip(words, [*words[1:], ""], strict=True):
        if word in _BANNED_WORDS or word in _BANNED_FUNCTIONS or (word, nxt) in _BANNED_PAIRS:
            raise ValueError(
                f"`{word.upper()}` is not allowed in a read-only query (quote it if it is a column name)"
            )


def _code_only(sql: str, d: _Reading) -> str:
    """`sql` with string literals, quoted identifiers and comments blanked out."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        end = _span_end(sql, i, d)
        if end is None:
            out.append(sql[i])
            i += 1
            continue
        if end < 0:
            raise ValueError("unterminated quote or comment in the query")
        out.append(" ")
        i = end
    return "".join(out)


def _span_end(sql: str, i: int, d: _Reading) -> int | None:
    """Where the literal or comment starting at `i` ends; None if none starts; -1 if never."""
    two, ch = sql[i : i + 2], sql[i]
    after_dashes = sql[i + 2 : i + 3]
    dash_comment = two == "--" and (not d.dash_space or after_dashes.isspace() or not after_dashes)
    if dash_comment or (d.hash_comment and ch == "#"):
        nl = sql.find("\n", i)
        return len(sql) if nl < 0 else nl + 1
    if two == "/*":
        return _block_comment_end(sql, i, nested=d.nested)
    if ch in "'\"`":
        return _quote_end(sql, i, close=ch, backslash=d.backslash and ch != "`")
    if d.bracket and ch == "[":
        return _quote_end(sql, i, close="]", backslash=False)
    if d.dollar and ch == "$" and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
        m = _DOLLAR_TAG.match(sql, i)
        if m:
            close = sql.find(m.group(0), m.end())
            return -1 if close < 0 else close + len(m.group(0))
    return None


def _block_comment_end(sql: str, i: int, *, nested: bool) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j) and (nested or depth == 0):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def _quote_end(sql: str, i: int, *, close: str, backslash: bool) -> int:
    q, j = close, i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c == q and sql[j + 1 : j + 2] == q:
            j += 2  # a doubled quote stands for itself
        elif c == q:
            return j + 1
        else:
            j += 1
    return -1


# -- values: metadata, versions, cursors ------------------------------------------

_SKIP = object()
_PLAIN = frozenset({str, int, bool})
ColumnKind = Literal["json", "bool", "datetime", "date", ""]


def json_value(value: Any, kind: ColumnKind = "") -> Any:
    """A column value as JSON-safe metadata, or `_SKIP` (NULL, NaN, binary)."""
    if not kind and type(value) in _PLAIN:
        return value  # the common case, first: this runs for every cell
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return _SKIP
    if kind and isinstance(value, str | int):
        value = _declared(value, kind)
        if value is None:
            return _SKIP  # JSON null is NULL too
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else _SKIP
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        items = ((str(k), json_value(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not _SKIP}
    if isinstance(value, list | tuple):
        return [None if (v := json_value(x)) is _SKIP else v for x in value]
    return str(value)  # UUID, inet, ranges, enums: their text form


def _declared(value: str | int, kind: ColumnKind) -> Any:
    """Apply what the table declares when the driver hands back text or 0/1."""
    try:
        if kind == "bool" and isinstance(value, int):
            return bool(value)
        if isinstance(value, str) and kind == "json":
            return json.loads(value)
        if isinstance(value, str) and kind == "datetime":
            return datetime.fromisoformat(value)
        if isinstance(value, str) and kind == "date":
            return date.fromisoformat(value)
    except ValueError:
        pass  # keep what the row holds rather than fail the listing
    return value


def rfc3339(value: datetime) -> str:
    """UTC with a `Z`; a timestamp without a zone is taken to be UTC."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


_PACKERS: list[tuple[type, str, Any]] = [
    (bool, "bool", lambda v: v),
    (int, "int", lambda v: v),
    (float, "float", lambda v: v),
    (Decimal, "decimal", str),
    (datetime, "datetime", datetime.isoformat),
    (date, "date", date.isoformat),
    (time, "time", time.isoformat),
    (UUID, "uuid", str),
    (bytes, "bytes", bytes.hex),
    (str, "str", lambda v: v),
]
_UNPACKERS: dict[str, Any] = {
    "bool": bool, "int": int, "float": float, "decimal": Decimal, "str": str,
    "datetime": datetime.fromisoformat, "date": date.fromisoformat,
    "time": time.fromisoformat, "uuid": UUID, "bytes": bytes.fromhex,
}  # fmt: skip


def pack(value: Any) -> list[Any]:
    """A value as `[type tag, JSON value]`, so it binds back with its type."""
    for typ, tag, fn in _PACKERS:
        if isinstance(value, typ):
            return [tag, fn(value)]
    return ["str", str(value)]


def unpack(packed: Any) -> Any:
    tag, raw = packed
    return _UNPACKERS[tag](raw)


def encode_cursor(*, column: str, value: Any, key: Any) -> str:
    return json.dumps({"column": column, "cursor": pack(value), "key": pack(key)})


def decode_cursor(cursor: str, *, column: str) -> tuple[Any, Any] | None:
    """(cursor value, key) from a saved cursor; None when it belongs to another column."""
    try:
        data = json.loads(cursor)
        if data.get("column") != column:
            return None
        return unpack(data["cursor"]), unpack(data["key"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SourceError(
            "the saved cursor of this source cannot be read; run a full sync (--full)"
        ) from None


def key_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


# -- errors ---------------------------------------------------------------------


class _Masker:
    """Removes the URL's password from any text that might be shown or logged."""

    def __init__(self, url: URL) -> None:
        pw = url.password
        # The password may show up raw or URL-encoded (as it was written in the URL).
        self.secrets = sorted({pw, quote(pw, safe=""), quote(pw)}, key=len, reverse=True) if pw else []
        self.where = url.render_as_string(hide_password=True)

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
def _sql_errors(mask: _Masker, doing: str, *, error: type[LoupeError] = SourceError) -> Iterator[None]:
    """Map SQLAlchemy and driver errors to ours, with the password masked.

    A lost or refused connection is always a SourceError: the source as a
    whole is gone, whatever the caller was doing.
    """
    try:
        yield
    except LoupeError:
        raise
    except sa_exc.NoSuchModuleError:
        raise InvalidConfig(f"no SQLAlchemy driver for {mask.where}; install its package") from None
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        message = mask(f"{doing}: {_driver_message(exc)}")
        if _is_timeout(exc):
            raise SourceError(
                f"{message}; the query ran past statement_timeout_s: raise it, or index the "
                "key and cursor columns"
            ) from None
        lost = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
        raise (SourceError if lost else error)(message) from None
    except ImportError as exc:
        raise InvalidConfig(f"{doing}: the URL's driver is not installed ({exc})") from None
    except sa_exc.SQLAlchemyError as exc:
        raise error(mask(f"{doing}: {_driver_message(exc)}")) from None


def _is_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL: query_canceled
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    # MariaDB max_statement_time, MySQL max_execution_time
    return bool(args) and args[0] in (1969, 3024)


def _bind(value: Any) -> Any:
    """An untyped bound parameter: the driver sends the value as the row gave it.

    A typed one makes SQLAlchemy add casts (`$1::VARCHAR`) that fail against a
    key read from the index as text, or shift a timestamp's zone.
    """
    return sa.bindparam(None, value, type_=NullType())


# -- the connector -------------------------------------------------------------


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


@register
class SQLConnector:
    """Rows of a table or query as assets; see the module docstring for the rules."""

    kind: ClassVar[str] = "sql"
    config_model: ClassVar[type[ConnectorConfig]] = SQLConfig

    def __init__(self, name: str, config: SQLConfig) -> None:
        self.name = name
        self.config = config
        self.url = make_url(config.url.get_secret_value())
        self.mask = _Masker(self.url)
        with _sql_errors(self.mask, "opening the database", error=InvalidConfig):
            self.engine = _engine(self.url, config)
        self._plan_cache: _Plan | None = None
        self._lock = threading.Lock()
        self._http: Any = None
        self._s3: S3Client | None = None

    def check(self) -> None:
        self._plan_cache = None  # the table may have changed since the last check
        self._plan()

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        plan = self._plan()
        after = None
        if cursor is not None and not full and self.config.cursor is not None:
            after = decode_cursor(cursor, column=self.config.cursor)
        return Listing(records=self._records(plan, after), complete=after is None)

    def fetch(self, record: AssetRecord) -> Blob:
        if self.config.bytes_column is not None:
            return self._fetch_row_bytes(record)
        return self._fetch_uri(record.uri, media=record.media_type)

    def close(self) -> None:
        """Close HTTP clients; pooled database connections are shared per URL."""
        if self._http is not None:
            self._http.close()

    # -- plan: what the table or query has ---------------------------------

    def _plan(self) -> _Plan:
        with self._lock:
            if self._plan_cache is None:
                self._plan_cache = self._resolve()
            return self._plan_cache

    def _resolve(self) -> _Plan:
        self._check_sqlite_file()
        with self._read_only("connecting to " + self.mask.where) as conn:
            with _sql_errors(self.mask, "reading the source's columns", error=InvalidConfig):
                if self.config.table is not None:
                    source, kinds, label = _reflect(conn, self.config.table)
                else:
                    source, kinds, label = _probe(conn, self.config.query or "")
        columns = {c.name: c for c in source.columns}
        self._check_columns(list(columns), label)
        wanted = self.config.columns or [
            c for c in columns if c not in (self.config.key, self._content_column)
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
        candidates = dict.fromkeys([c.key, *wanted, c.cursor, c.uri_column])
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
        named += [("cursor", c.cursor)] + [("columns", col) for col in c.columns or []]
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
                raise SourceError(f"SQLite database file {db} does not exist")

    @contextmanager
    def _read_only(self, doing: str) -> Iterator[Connection]:
        """A connection in a read-only transaction with a statement timeout."""
        with _sql_errors(self.mask, doing):
            # Closing the connection rolls the transaction back: nothing is ever committed.
            with self.engine.connect() as conn:
                _begin_read_only(conn, timeout_s=self.config.statement_timeout_s)
                yield conn

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
                last, last_key = _bind(after[0]), _bind(after[1])
                stmt = stmt.where(cur >= last, sa.or_(cur > last, key > last_key))
        elif after is not None:
            stmt = stmt.where(key > _bind(after[1]))
        stmt = stmt.where(key.is_not(None)).order_by(*order).limit(c.chunk_size)
        with self._read_only(f"listing {plan.label}") as conn:
            return conn.execute(stmt).all()

    def _record(self, plan: _Plan, row: sa.Row[Any]) -> AssetRecord:
        c, pos = self.config, plan.pos
        key = row[pos[c.key]]
        metadata: dict[str, Any] = {}
        for name, i, kind in plan.metadata:
            v = json_value(row[i], kind)
            if v is not _SKIP:
                metadata[name] = v
        size = row[pos[_SIZE_LABEL]] if c.bytes_column is not None else None
        uri = self._uri_of(key, row[pos[c.uri_column]] if c.uri_column else None)
        digest = _row_hash(uri, size, metadata)
        cursor_value = row[pos[c.cursor]] if c.cursor else None
        return AssetRecord(
            key=key_text(key),
            uri=uri,
            version=digest if c.cursor is None else f"{key_text(cursor_value)}|{digest}",
            size_bytes=size,
            modified_at=_aware(cursor_value, plan.cursor_kind),
            media_type=media_type(uri.split("?", 1)[0].split("#", 1)[0]) if c.uri_column else None,
            metadata=metadata,
            cursor=encode_cursor(column=c.cursor, value=cursor_value, key=key) if c.cursor else None,
            hints={"key": key},
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
        stmt = sa.select(col).select_from(plan.source).where(plan.columns[c.key] == _bind(key))
        with self._read_only(f"reading {record.key!r}") as conn:
            with _sql_errors(self.mask, f"reading row {record.key!r}", error=AssetError):
                data = conn.execute(stmt.limit(2)).scalars().all()
        if not data:
            raise AssetError(f"row {record.key!r} is no longer in {plan.label}")
        if data[0] is None:
            raise AssetError(f"column {c.bytes_column!r} is NULL in row {record.key!r}")
        blob = bytes(data[0])
        return Blob(data=blob, media_type=sniff_media_type(blob))

    def _fetch_uri(self, uri: str, *, media: str | None) -> Blob:
        if not uri:
            raise AssetError(f"column {self.config.uri_column!r} is empty in this row")
        scheme = urlsplit(uri).scheme.lower()
        if scheme == "s3":
            s3_blob = self._read_s3(uri)  # its metadata (S3 user metadata, facts) merges in
            return Blob(data=s3_blob.data, metadata=s3_blob.metadata, media_type=media or s3_blob.media_type)
        if scheme in ("", "file"):
            data = self._read_file(uri)
        elif scheme in ("http", "https"):
            data = self._read_http(uri)
        else:
            raise AssetError(f"URI scheme {scheme!r} is not supported (file, s3, http, https)")
        return Blob(data=data, media_type=media or sniff_media_type(data))

    def _read_file(self, uri: str) -> bytes:
        root = self.config.root
        if root is None:
            raise AssetError("rows hold file paths but the source has no `root`; set one")
        parts = urlsplit(uri)
        if parts.scheme and parts.netloc not in ("", "localhost"):
            raise AssetError(f"file URI on another host ({parts.netloc}) is not supported")
        path = (root / unquote(parts.path) if parts.scheme else root / uri).resolve()
        if not path.is_relative_to(root):
            raise AssetError(f"{uri!r} resolves outside the source's root {root}")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise AssetError(f"file {path} does not exist") from None
        except OSError as exc:
            raise AssetError(f"cannot read file {path}: {exc.strerror or exc}") from None

    def _read_s3(self, uri: str) -> Blob:
        with self._lock:
            if self._s3 is None:
                # Without `s3` settings, the standard AWS credential chain applies.
                self._s3 = S3Client.from_config(self.config.s3 or S3Connection.model_validate({}))
        return self._s3.get_uri(uri, max_bytes=MAX_FETCH_BYTES)

    def _read_http(self, uri: str) -> bytes:
        import httpx

        with self._lock:
            if self._http is None:
                timeout = httpx.Timeout(30.0, connect=self.config.connect_timeout_s)
                self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        for _ in range(MAX_REDIRECTS + 1):
            self._allowed_host(uri)
            try:
                with self._http.stream("GET", uri) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        uri = str(resp.url.join(resp.headers["location"]))
                        continue  # the next host is checked against the allowlist too
                    if resp.status_code != 200:
                        raise AssetError(f"GET {uri} answered HTTP {resp.status_code}")
                    return _bounded_body(resp.iter_bytes(), uri)
            except httpx.HTTPError as exc:
                raise AssetError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from None
        raise AssetError(f"GET {uri}: more than {MAX_REDIRECTS} redirects")

    def _allowed_host(self, uri: str) -> None:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        for allowed in self.config.allow_http_hosts:
            if allowed in (host, netloc) or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return
        raise AssetError(f"host {host!r} is not in the source's `allow_http_hosts`; add it to fetch {uri}")


# -- helpers ------------------------------------------------------------------------


def dispose_engines() -> None:
    """Close every pooled database connection (at shutdown, or before dropping a database)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def _engine(url: URL, config: SQLConfig) -> Engine:
    """One pooled engine per URL and timeouts, shared by every connector built on it."""
    args = _connect_args(url, config)
    cache_key = (url.render_as_string(hide_password=False), json.dumps(args, sort_keys=True))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(cache_key)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args=args)
            _ENGINES[cache_key] = engine
        return engine


def _connect_args(url: URL, config: SQLConfig) -> dict[str, Any]:
    """Connect and read timeouts in each driver's own words; the URL's own settings win."""
    driver = url.get_driver_name()
    connect_s = config.connect_timeout_s
    args: dict[str, Any] = {}
    if driver in ("psycopg", "psycopg2"):
        args = {"connect_timeout": max(2, math.ceil(connect_s))}  # libpq's floor is 2 s
    elif driver in ("pymysql", "mysqldb"):
        # A server that stops answering mid-read must not hang the sync forever.
        args = {"connect_timeout": connect_s, "read_timeout": config.statement_timeout_s + 30}
    return {k: v for k, v in args.items() if k not in url.query}


def _begin_read_only(conn: Connection, *, timeout_s: float) -> None:
    """Start a read-only transaction with a statement timeout where the database has them."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        ms = str(max(1, int(timeout_s * 1000)))
        conn.execute(sa.text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": ms})
    elif name in ("mysql", "mariadb"):
        if getattr(conn.dialect, "is_mariadb", False):
            conn.execute(sa.text("SET SESSION max_statement_time = :s"), {"s": timeout_s})
        else:
            limit_ms = max(1, int(timeout_s * 1000))
            conn.execute(sa.text("SET SESSION max_execution_time = :ms"), {"ms": limit_ms})
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif name == "sqlite":
        # SQLite has no statement timeout: a local file, and the guard refused writes.
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _reflect(conn: Connection, table: str) -> tuple[FromClause, dict[str, ColumnKind], str]:
    """The table's columns (quoted by the dialect, never formatted) and their declared kinds."""
    schema, _, name = table.rpartition(".")
    inspector = sa.inspect(conn)
    try:
        reflected = inspector.get_columns(name, schema=schema or None)
    except sa_exc.NoSuchTableError:
        tables = inspector.get_table_names(schema=schema or None)
        views = inspector.get_view_names(schema=schema or None)
        known = ", ".join(sorted(tables + views)[:50]) or "(none)"
        raise InvalidConfig(f"table {table!r} not found; tables here: {known}") from None
    kinds = {c["name"]: _kind(c["type"]) for c in reflected}
    kinds.update(_mariadb_json_columns(conn, name, schema or None))
    # Untyped columns: values arrive as the driver reads them, the same in table and
    # query mode, and a cursor binds back exactly as it was read.
    source = sa.table(name, *(sa.column(c["name"]) for c in reflected), schema=schema or None)
    return source, kinds, f"table {table}"


def _kind(type_: Any) -> ColumnKind:
    if isinstance(type_, sa.JSON):
        return "json"
    tinyint_1 = type(type_).__name__ == "TINYINT" and getattr(type_, "display_width", None) == 1
    if isinstance(type_, sa.Boolean) or tinyint_1:
        return "bool"  # MySQL's BOOLEAN is TINYINT(1)
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    return ""


def _mariadb_json_columns(conn: Connection, table: str, schema: str | None) -> dict[str, ColumnKind]:
    """Columns declared JSON on MariaDB, where JSON is LONGTEXT plus a json_valid() check.

    SQLAlchemy does not reflect column-level checks, so read them from
    information_schema (MariaDB's has TABLE_NAME; MySQL has a real JSON type).
    """
    if not getattr(conn.dialect, "is_mariadb", False):
        return {}
    rows = conn.execute(
        sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        ),
        {"schema": schema, "table": table},
    )
    found = (re.fullmatch(r"\s*json_valid\(`?([^`()]+)`?\)\s*", clause or "") for (clause,) in rows)
    return {m.group(1): "json" for m in found if m}


def _probe(conn: Connection, query: str) -> tuple[FromClause, dict[str, ColumnKind], str]:
    """The query's result columns, read from a run that returns no rows."""
    # Escape `:name` so SQLAlchemy leaves the user's colons alone; the newline ends
    # a trailing `--` comment before our `) AS src`.
    escaped = re.sub(r"(?<![:\w\\]):(\w+)(?![:\w])", r"\\:\1", query) + "\n"
    probe = sa.text(escaped).columns().subquery("src")
    names = list(conn.execute(sa.select(sa.literal_column("*")).select_from(probe).limit(0)).keys())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidConfig(f"the query returns columns with the same name: {dupes}; alias them")
    source = sa.text(escaped).columns(*(sa.column(n) for n in names)).subquery("src")
    return source, {}, "the query"


def _row_hash(uri: str, size: int | None, metadata: Mapping[str, Any]) -> str:
    raw = json.dumps([uri, size, metadata], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _aware(value: Any, kind: ColumnKind) -> datetime | None:
    if isinstance(value, str) and kind == "datetime":
        value = _declared(value, kind)  # SQLite keeps timestamps as text
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


def sniff_media_type(data: bytes) -> str | None:
    """The image type from the first bytes, for rows that carry no file name."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mt for magic, mt in _MAGIC if data.startswith(magic)), None)


def _bounded_body(chunks: Iterator[bytes], uri: str) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > MAX_FETCH_BYTES:
            raise AssetError(f"GET {uri}: body is larger than {MAX_FETCH_BYTES:,} bytes")
    return bytes(out)
