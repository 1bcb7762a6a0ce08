"""Selections as rows of the state store: the request, the state, and the chosen ids in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from service.errors import Conflict, NotFound
from service.state import Base, StateStore, ensure_table, utcnow


class SelectionNotFound(NotFound):
    pass


class SelectionExists(Conflict):
    pass


class SelectionRow(Base):
    __tablename__ = "selections"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    budget: Mapped[int] = mapped_column(Integer)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SelectionStore:
    """Typed access to the selections table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        ensure_table(state.engine, SelectionRow.__table__)

    def exists(self, name: str) -> bool:
        with self.state.session() as s:
            return s.get(SelectionRow, name) is not None

    def create(self, row: SelectionRow) -> SelectionRow:
        try:
            with self.state.session() as s:
                s.add(row)
        except IntegrityError:  # two requests for one name at once: the second loses
            raise _exists(row.name) from None
        return row

    def get(self, name: str) -> SelectionRow:
        with self.state.session() as s:
            row = s.get(SelectionRow, name)
        if row is None:
            raise SelectionNotFound(f"no selection named {name!r}; GET /api/v1/selections lists them")
        return row

    def update(self, name: str, **fields: Any) -> None:
        with self.state.session() as s:
            row = s.get(SelectionRow, name)
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def delete(self, name: str) -> None:
        with self.state.session() as s:
            row = s.get(SelectionRow, name)
            if row is not None:
                s.delete(row)

    def list(self, *, limit: int = 50) -> list[SelectionRow]:
        """Recent selections, newest first."""
        q = select(SelectionRow).order_by(SelectionRow.created_at.desc()).limit(limit)
        with self.state.session() as s:
            return list(s.scalars(q))


def _exists(name: str) -> SelectionExists:
    return SelectionExists(
        f"a selection named {name!r} exists already; pick another name or DELETE /api/v1/selections/{name}"
    )


def exists_error(name: str) -> SelectionExists:
    return _exists(name)
