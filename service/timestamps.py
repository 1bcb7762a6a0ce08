"""The one timestamp format Loupe writes: RFC 3339 in UTC with `Z` (SQLite's naive values included)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def rfc3339(value: datetime) -> str: ...
@overload
def rfc3339(value: None) -> None: ...
@overload
def rfc3339(value: datetime | None) -> str | None: ...


def rfc3339(value: datetime | None) -> str | None:
    """`value` as `2026-12-03T07:41:03.123456Z`; a naive datetime is taken as UTC (SQLite hands
    back naive values for timezone-aware columns, and Loupe only ever writes UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
