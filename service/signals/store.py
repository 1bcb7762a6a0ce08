"""Computed signals as rows of the state store: one per kind and scope (filter + space)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from service.state import Base, StateStore, ensure_table, utcnow


class SignalRow(Base):
    __tablename__ = "signals"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # kind:scope
    kind: Mapped[str] = mapped_column(String(32), index=True)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    space: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    assets: Mapped[int] = mapped_column(Integer, default=0)
    scored: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def scope_id(kind: str, filter: dict[str, Any] | None, space: str) -> str:
    """The row id of `kind` over one filter and space: recomputing the same scope replaces it."""
    text = json.dumps({"filter": filter, "space": space}, sort_keys=True)
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class SignalStore:
    """Typed access to the signals table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        ensure_table(state.engine, SignalRow.__table__)

    def get(self, row_id: str) -> SignalRow | None:
        with self.state.session() as s:
            return s.get(SignalRow, row_id)

    def put(self, row_id: str, **fields: Any) -> None:
        """Create the row or update the fields given."""
        with self.state.session() as s:
            row = s.get(SignalRow, row_id)
            if row is None:
                s.add(SignalRow(id=row_id, **fields))
                return
            for key, value in fields.items():
                setattr(row, key, value)

    def list(self, *, kind: str | None = None) -> list[SignalRow]:
        q = select(SignalRow).order_by(SignalRow.kind, SignalRow.created_at)
        if kind is not None:
            q = q.where(SignalRow.kind == kind)
        with self.state.session() as s:
            return list(s.scalars(q))
