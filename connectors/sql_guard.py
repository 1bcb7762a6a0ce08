"""The SQL guard: a query must be one read-only SELECT, and it runs read-only under a statement timeout.

Queries pass three guards: a conservative scan that refuses anything but one
SELECT/WITH statement, a read-only transaction (PostgreSQL, MariaDB/MySQL;
SQLite connections are `query_only`), and a statement timeout (PostgreSQL,
MariaDB/MySQL). Other databases get the scan alone; the role's grants remain
the last word everywhere.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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


# -- running read-only -----------------------------------------------------------


def begin_read_only(conn: Connection, *, timeout_s: float) -> None:
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
