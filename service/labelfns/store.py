"""Labeling functions as rows of the state store: the definition and the last run, as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from service.errors import NotFound
from service.labelfns.schemas import LabelingFunctionPublic, LabelingFunctionRun
from service.state import Base, StateStore, ensure_table, utcnow
from service.timestamps import rfc3339


class LabelingFunctionNotFound(NotFound):
    pass


class LabelingFunctionRow(Base):
    __tablename__ = "labeling_functions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    into: Mapped[str] = mapped_column(String(64), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LabelingFunctionStore:
    """Typed access to the labeling_functions table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        ensure_table(state.engine, LabelingFunctionRow.__table__)

    def save(self, *, name: str, into: str, definition: dict[str, Any], job_id: str) -> LabelingFunctionRow:
        """Record a (re)definition and its queued run, replacing the previous run."""
        with self.state.session() as s:
            row = s.get(LabelingFunctionRow, name)
            if row is None:
                row = LabelingFunctionRow(name=name)
                s.add(row)
            row.into, row.definition, row.job_id = into, definition, job_id
            row.state, row.result, row.detail = "queued", {}, None
            row.created_at, row.finished_at = utcnow(), None
        return self.get(name)

    def find(self, name: str) -> LabelingFunctionRow | None:
        with self.state.session() as s:
            return s.get(LabelingFunctionRow, name)

    def get(self, name: str) -> LabelingFunctionRow:
        row = self.find(name)
        if row is None:
            raise LabelingFunctionNotFound(
                f"no labeling function named {name!r}; GET /api/v1/labeling-functions lists them"
            )
        return row

    def update(self, name: str, *, job_id: str, **fields: Any) -> None:
        """Change the run `job_id` only: a newer run of the same function is left alone."""
        with self.state.session() as s:
            row = s.get(LabelingFunctionRow, name)
            if row is not None and row.job_id == job_id:
                for key, value in fields.items():
                    setattr(row, key, value)

    def all(self) -> list[LabelingFunctionRow]:
        with self.state.session() as s:
            return list(s.scalars(select(LabelingFunctionRow).order_by(LabelingFunctionRow.name)))


def run_public(row: LabelingFunctionRow) -> LabelingFunctionRun:
    result: dict[str, Any] = dict(row.result or {})
    return LabelingFunctionRun(
        name=row.name,
        state=row.state,  # type: ignore[arg-type]
        job_id=row.job_id,
        into=row.into,
        labeled=int(result.get("labeled", 0)),
        abstained=int(result.get("abstained", 0)),
        threshold=result.get("threshold"),
        estimated_precision=result.get("estimated_precision"),
        estimated_coverage=result.get("estimated_coverage"),
        estimated_from=result.get("estimated_from"),
        estimated_on=int(result.get("estimated_on", 0)),
        method=result.get("method"),
        curve=result.get("curve") or [],
        detail=row.detail,
        created_at=rfc3339(row.created_at),
        finished_at=rfc3339(row.finished_at),
    )


def function_public(row: LabelingFunctionRow) -> LabelingFunctionPublic:
    return LabelingFunctionPublic(name=row.name, definition=dict(row.definition or {}), run=run_public(row))
