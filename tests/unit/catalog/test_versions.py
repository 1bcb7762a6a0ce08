"""The map's versions from the jobs table: one query per poll, the same answers as one query per kind.

`reference_versions` is the computation as it was before the single query (the newest
RECENT jobs of each kind, one `JobQueue.list` each); every step of a mix of job kinds and
states must give the same versions from both, on a real engine whose statements are counted.
tests/integration/test_versions_postgres.py runs the same mix on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from service.catalog.versions import (
    COLOUR_KINDS,
    LAYOUT_VERSION,
    RECENT,
    SPACE_KINDS,
    SYNC_SILENCE,
    Versions,
    _digest,
    _last,
    _utc,
    layout_versions,
)
from service.config import IndexSettings
from service.index.base import Filter, HasVector, VectorIndex
from service.index.edge import EdgeIndex
from service.jobs.queue import JobQueue
from service.state import StateStore, utcnow

SPACES = (None, "sketch")
FIELDS = ("signals.uniqueness", "labels.truth.label")


def reference_versions(
    *, index: VectorIndex, state: StateStore, method: str, space: str | None, fields: tuple[str, ...]
) -> Versions:
    """layout_versions as it was: one JobQueue.list per kind."""
    queue = JobQueue(state)
    syncs = queue.list(kind="sync", limit=RECENT)
    now = utcnow()
    syncing = any(
        j.state in ("queued", "running") and now - _utc(j.heartbeat_at or j.created_at) < SYNC_SILENCE
        for j in syncs
    )
    moves = [*syncs, *(j for k in SPACE_KINDS if space is not None for j in queue.list(kind=k, limit=RECENT))]
    held = index.count(None if space is None else Filter(must=[HasVector(space)]))
    points = _digest(LAYOUT_VERSION, method, space or index.vector_name, held, _last(moves))
    writes = [j for k in COLOUR_KINDS for j in queue.list(kind=k, limit=RECENT)]
    colours = _digest(LAYOUT_VERSION, _last(writes), *sorted(fields))
    return Versions(points=points, colours=colours, syncing=syncing)


class Statements:
    """The SQL statements an engine sends, but for the transactions' BEGIN / COMMIT."""

    def __init__(self, state: StateStore) -> None:
        self.seen: list[str] = []
        event.listen(state.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.seen.append(statement)


def job(state: StateStore, kind: str, final: str | None, *, age_min: float, took_min: float = 1) -> None:
    """A `kind` job created `age_min` minutes ago; `final` None leaves it running (heartbeat then)."""
    queue = JobQueue(state)
    created = utcnow() - timedelta(minutes=age_min)
    row = queue.create(kind, state="running")
    fields: dict[str, Any] = {"created_at": created, "heartbeat_at": created}
    if final is not None:
        fields |= {"state": final, "finished_at": created + timedelta(minutes=took_min)}
    queue.update(row.id, **fields)


# What a step of `steps` changes: "points" (of every space), "sketch points", "colours", "syncing".
Change = frozenset[str]


def steps(state: StateStore) -> Iterator[tuple[str, Change]]:
    """A mix of kinds and states, added one group at a time: what each group was, what it changes."""
    yield "no jobs", frozenset()
    job(state, "export", "succeeded", age_min=1)
    job(state, "selection", "succeeded", age_min=1)
    yield "only jobs that write nothing the map shows", frozenset()
    job(state, "sync", "succeeded", age_min=300)
    job(state, "sync", "failed", age_min=200)
    job(state, "sync", "cancelled", age_min=150)
    yield "finished syncs", frozenset({"points"})
    job(state, "sync", None, age_min=100)
    yield "a sync whose runner went silent", frozenset()
    job(state, "sync", None, age_min=1)
    yield "a sync running", frozenset({"syncing"})
    job(state, "vector_import", "succeeded", age_min=90)
    job(state, "space_sync", "failed", age_min=80)
    job(state, "space_sync", None, age_min=2)
    yield "space jobs", frozenset({"sketch points"})
    for kind, final in zip(COLOUR_KINDS, ("succeeded", "failed", "cancelled", "succeeded"), strict=True):
        job(state, kind, final, age_min=70)
    job(state, "signal", None, age_min=3)
    yield "payload writes of every colour kind", frozenset({"colours"})
    # An old signal that finished last, then pushed out of the newest RECENT signals.
    job(state, "signal", "succeeded", age_min=60, took_min=59)
    yield "a signal finishing late", frozenset({"colours"})
    for i in range(RECENT):
        job(state, "signal", "succeeded", age_min=50 - i)
    yield f"{RECENT} newer signals", frozenset({"colours"})
    for i in range(RECENT + 2):
        job(state, "sync", "succeeded", age_min=40 - i)
    yield "more syncs than RECENT", frozenset({"points"})


def expected(change: Change, space: str | None) -> set[str]:
    """What `change` changes in the versions of `space`: "points", "colours", "syncing"."""
    moved = "points" in change or (space is not None and f"{space} points" in change)
    return {c for c in change if c in ("colours", "syncing")} | ({"points"} if moved else set())


def changed(before: Versions, after: Versions) -> set[str]:
    parts = {
        "points": before.points != after.points,
        "colours": before.colours != after.colours,
        "syncing": before.syncing != after.syncing,
    }
    return {part for part, differs in parts.items() if differs}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[EdgeIndex]:
    idx = EdgeIndex(tmp_path / "index", vector_name="clip", dim=8, settings=IndexSettings())
    yield idx
    idx.close()


def check_versions_match_the_reference(state: StateStore, index: VectorIndex) -> None:
    statements = Statements(state)
    last: dict[str | None, Versions] = {}
    for step, change in steps(state):
        for space in SPACES:
            want = reference_versions(index=index, state=state, method="umap", space=space, fields=FIELDS)
            statements.seen.clear()
            got = layout_versions(index=index, state=state, method="umap", space=space, fields=FIELDS)
            assert got == want, f"{step}, space {space}"
            assert len(statements.seen) == 1, statements.seen
            if space in last:
                assert changed(last[space], got) == expected(change, space), f"{step}, space {space}"
            last[space] = got


def test_versions_match_the_reference_in_one_query(tmp_path: Path, index: EdgeIndex) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        check_versions_match_the_reference(state, index)
    finally:
        state.close()
