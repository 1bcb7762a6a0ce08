"""Evaluations as rows of the state store: the request, the state, and the results as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from service.errors import NotFound
from service.state import Base, StateStore, ensure_table, utcnow


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


class EvaluationStore:
    """Typed access to the evaluations table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        ensure_table(state.engine, EvaluationRow.__table__)

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

    def delete(self, evaluation_id: str) -> None:
        with self.state.session() as s:
            row = s.get(EvaluationRow, evaluation_id)
            if row is not None:
                s.delete(row)

    def list(self, *, limit: int = 50) -> list[EvaluationRow]:
        """Recent evaluations, newest first."""
        q = select(EvaluationRow).order_by(EvaluationRow.created_at.desc()).limit(limit)
        with self.state.session() as s:
            return list(s.scalars(q))
