"""The durable job queue: create, claim, heartbeat, take over and cancel jobs of every kind.

Jobs are rows of the state store (SQLite or PostgreSQL). A runner claims the oldest
queued job of the kinds it serves with `SELECT ... FOR UPDATE SKIP LOCKED`, so each job
goes to exactly one replica on PostgreSQL (SQLite serialises writers, which gives the
same guarantee); it heartbeats while it runs. A running job is taken over (put back in
the queue for the next claim) when its runner went silent for the stale period, or at
once when its owner ran on this host and that process is gone (`kill -9`, a crash).

A job may hold a `lock_key` ("sync:photos"): the database keeps at most one queued or
running job per key, so replicas cannot both start a sync of one source.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from service.errors import Conflict, JobNotFound
from service.processes import owner_is_gone
from service.state import JobRow, StateStore, utcnow

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("succeeded", "failed", "cancelled")
MAX_JOB_ERRORS = 1000
Signal = Literal["ok", "lost", "cancel"]


class JobTimes(NamedTuple):
    """The columns of a job that say when it ran (JobQueue.newest_per_kind)."""

    kind: str
    state: str
    created_at: datetime
    heartbeat_at: datetime | None
    finished_at: datetime | None


class JobQueue:
    """Typed access to the jobs table; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def create(
        self,
        kind: str,
        *,
        source: str | None = None,
        options: dict[str, Any] | None = None,
        lock_key: str | None = None,
        state: str = "queued",
        owner: str | None = None,
        job_id: str | None = None,
    ) -> JobRow:
        """A new job; Conflict while another active job holds the same `lock_key`."""
        now = utcnow()
        row = JobRow(
            id=job_id or str(uuid.uuid4()),
            kind=kind,
            source=source or "",
            lock_key=lock_key,
            state=state,
            options=options or {},
            counts={},
            errors=[],
            owner=owner,
            cancel_requested=False,
            created_at=now,
            started_at=now if state == "running" else None,
            heartbeat_at=now,
        )
        try:
            with self.state.session() as s:
                s.add(row)
        except IntegrityError:
            active = self.holder(lock_key) if lock_key else None
            if active is None:
                raise
            what = f"a {kind} of {source!r}" if source else f"a {kind} job"
            raise Conflict(
                f"{what} is already {active.state} (job {active.id}); wait for it, "
                f"or cancel it with DELETE /api/v1/jobs/{active.id}"
            ) from None
        return row

    def holder(self, lock_key: str) -> JobRow | None:
        """The queued or running job holding `lock_key`, if any."""
        q = select(JobRow).where(JobRow.lock_key == lock_key, JobRow.state.in_(ACTIVE_STATES))
        with self.state.session() as s:
            return s.scalars(q.limit(1)).first()

    def get(self, job_id: str) -> JobRow:
        with self.state.session() as s:
            row = s.get(JobRow, job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id!r}; GET /api/v1/jobs lists the recent ones")
        return row

    def exists(self, job_id: str) -> bool:
        with self.state.session() as s:
            return s.get(JobRow, job_id) is not None

    def list(
        self,
        *,
        kind: str | None = None,
        source: str | None = None,
        states: Sequence[str] | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Recent jobs, newest first."""
        q = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
        if kind is not None:
            q = q.where(JobRow.kind == kind)
        if source is not None:
            q = q.where(JobRow.source == source)
        if states is not None:
            q = q.where(JobRow.state.in_(tuple(states)))
        with self.state.session() as s:
            return list(s.scalars(q))

    def newest_per_kind(self, kinds: Sequence[str], *, limit: int) -> Sequence[JobTimes]:
        """The `limit` newest jobs of each of `kinds`, in one query.

        The map polls this (service/catalog/versions.py): one `list(kind=...)` per kind was a
        round trip each. ROW_NUMBER() OVER (PARTITION BY kind) works on SQLite and PostgreSQL.
        """
        rank = func.row_number().over(partition_by=JobRow.kind, order_by=JobRow.created_at.desc())
        ranked = (
            select(JobRow.kind, JobRow.state, JobRow.created_at, JobRow.heartbeat_at, JobRow.finished_at)
            .add_columns(rank.label("rank"))
            .where(JobRow.kind.in_(tuple(kinds)))
            .subquery()
        )
        c = ranked.c
        q = select(c.kind, c.state, c.created_at, c.heartbeat_at, c.finished_at).where(c.rank <= limit)
        with self.state.session() as s:
            return [JobTimes(*row) for row in s.execute(q)]

    # -- the runner's side ---------------------------------------------------

    def claim(self, owner: str, *, kinds: Sequence[str], stale_after_s: float) -> JobRow | None:
        """Take the oldest queued job of `kinds` for `owner`, after taking over abandoned ones."""
        self.take_over(stale_after_s=stale_after_s)
        q = (
            select(JobRow)
            .where(JobRow.state == "queued", JobRow.kind.in_(tuple(kinds)))
            .order_by(JobRow.created_at)
        )
        with self.state.session() as s:
            row = s.scalars(q.with_for_update(skip_locked=True).limit(1)).first()
            if row is None:
                return None
            now = utcnow()
            row.state, row.owner, row.heartbeat_at = "running", owner, now
            row.started_at = row.started_at or now
            return row

    def take_over(self, *, stale_after_s: float) -> int:
        """Re-queue running jobs whose runner is silent or, on this host, gone; returns how many.

        A job that was asked to cancel is closed as cancelled instead of re-queued.
        """
        cutoff = utcnow() - timedelta(seconds=stale_after_s)
        running = select(JobRow.id, JobRow.owner, JobRow.heartbeat_at).where(JobRow.state == "running")
        with self.state.session() as s:
            rows = s.execute(running).all()
        candidates = {
            job_id: _why_abandoned(owner, beat, cutoff)
            for job_id, owner, beat in rows
            if _why_abandoned(owner, beat, cutoff)
        }
        if not candidates:
            return 0
        taken = 0
        lock = select(JobRow).where(JobRow.id.in_(list(candidates)), JobRow.state == "running")
        with self.state.session() as s:
            for row in s.scalars(lock.with_for_update(skip_locked=True)):
                why = _why_abandoned(row.owner, row.heartbeat_at, cutoff)
                if why is None:  # it beat or changed hands since the first look
                    continue
                if row.cancel_requested:
                    row.state, row.finished_at = "cancelled", utcnow()
                    row.detail = f"cancelled: {why} before it could stop"
                else:
                    row.state, row.owner = "queued", None
                    row.detail = f"resumed: {why}"
                taken += 1
        return taken

    def heartbeat(self, job_id: str, owner: str) -> bool:
        """Refresh a running job's heartbeat; False when the job is no longer ours."""
        with self.state.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or row.owner != owner or row.state != "running":
                return False
            row.heartbeat_at = utcnow()
            return True

    def update(self, job_id: str, *, owner: str | None = None, **fields: Any) -> Signal:
        """Set fields of a job; with `owner`, only while that runner still owns it.

        Returns "lost" when the job is gone or another runner took it over (the caller
        must stop working on it), "cancel" when a user asked to cancel it, else "ok".
        """
        if "errors" in fields:
            fields["errors"] = list(fields["errors"])[:MAX_JOB_ERRORS]
        with self.state.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or (owner is not None and row.owner != owner):
                return "lost"
            for key, value in fields.items():
                setattr(row, key, value)
            if owner is not None:
                row.heartbeat_at = utcnow()
            return "cancel" if row.cancel_requested else "ok"

    # -- the user's side -----------------------------------------------------

    def cancel(self, job_id: str) -> JobRow:
        """Cancel a queued job now, or ask a running one to stop at its next step.

        Raises:
            JobNotFound: no such job.
            Conflict: the job has finished already.
        """
        with self.state.session() as s:
            row = s.get(JobRow, job_id, with_for_update=True)
            if row is None:
                raise JobNotFound(f"no job with id {job_id!r}; GET /api/v1/jobs lists the recent ones")
            if row.state == "queued":
                row.state, row.finished_at, row.cancel_requested = "cancelled", utcnow(), True
                row.detail = "cancelled before it started"
            elif row.state == "running":
                row.cancel_requested = True
            else:
                raise Conflict(
                    f"job {job_id} has {row.state} already; only queued or running jobs can be cancelled"
                )
            return row


def _why_abandoned(owner: str | None, beat: datetime | None, cutoff: datetime) -> str | None:
    if owner and owner_is_gone(owner):
        return f"its process ({owner}) is gone"
    if beat is None or _aware(beat) < cutoff:
        return f"its runner ({owner or 'unknown'}) stopped answering"
    return None


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
