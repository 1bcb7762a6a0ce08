"""Evaluations as rows of the state store: the request, the state, and the results as JSON."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from service.errors import NotFound
from service.state import Base, StateStore, utcnow


class EvaluationNotFound(NotFound):
    pass


class EvaluationRow(Base):
    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    task: Mapped[str] = mapped_column(String(32))
    predictions: Mapped[str] = mapped_column(String(200), index=True)
    ground_truth: Mapped[str] = mapped_column(String(200), index=True)
    iou: Mapped[float] = mapped_column(Float, default=0.5)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


_READY: set[int] = set()
_LOCK = threading.Lock()


def _ensure_table(engine: Engine) -> None:
    # The state store creates the tables it knows at start; this one is created on first use,
    # so a store made before evaluations existed gains it without a migration step.
    with _LOCK:
        if id(engine) in _READY:
            return
        EvaluationRow.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
        _READY.add(id(engine))


class EvaluationStore:
    """Typed access to the evaluations table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        _ensure_table(state.engine)

    def create(self, row: EvaluationRow) -> EvaluationRow:
        with self.state.session() as s:
            s.add(row)
        return row

    def get(self, evaluation_id: str) -> EvaluationRow:
        with self.state.session() as s:
            row = s.get(EvaluationRow, evaluation_id)
        if row is None:
            raise EvaluationNotFound(
                f"no evaluation with id {evaluation_id!r}; GET /api/v1/evaluations lists them"
            )
        return row

    def update(self, evaluation_id: str, **fields: Any) -> None:
        with self.state.session() as s:
            row = s.get(EvaluationRow, evaluation_id)
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def list(self, *, limit: int = 50) -> list[EvaluationRow]:
        """Recent evaluations, newest first."""
        q = select(EvaluationRow).order_by(EvaluationRow.created_at.desc()).limit(limit)
        with self.state.session() as s:
            return list(s.scalars(q))
