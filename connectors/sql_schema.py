"""What a SQL source has: a table's columns and declared kinds (reflected), or a query's (probed)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.sql import FromClause

from connectors.sql_values import ColumnKind
from service.errors import InvalidConfig


def reflect(conn: Connection, table: str) -> tuple[FromClause, dict[str, ColumnKind], str]:
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


def probe(conn: Connection, query: str) -> tuple[FromClause, dict[str, ColumnKind], str]:
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
