"""What a map layout should be: the versions of its points and of its colour columns, from the jobs.

The two age apart. The points move only when the vectors do: which assets have one
(a sync adds or deletes them, a source removed drops them) and the vectors themselves
(a sync re-encodes; for a user space, a vector import or model sync). The colour columns
change when a job writes payload fields without touching a vector (a signal, a label
import, a labeling function, an evaluation), or when a field they read appears or goes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from service.index.base import Filter, HasVector, VectorIndex
from service.jobs.queue import JobQueue
from service.state import StateStore

LAYOUT_VERSION = 2  # bump when a layout or its cache file changes meaning
# A job that has not reported for this long belongs to a process that died.
SYNC_SILENCE = timedelta(minutes=10)
# Besides syncs, the jobs that move a user space's points: a new reduction.
SPACE_KINDS = ("vector_import", "space_sync")
# Jobs that only write payload fields the map colours by (signals.*, labels.<set>.*, evals.<id>.*):
# the colour columns are re-read, the points stay. (Selections and exports write fields that no
# colour column shows.)
COLOUR_KINDS = ("signal", "label_import", "labeling_function", "evaluation")
RECENT = 20  # jobs of each kind looked at, newest first


@dataclass(frozen=True, slots=True)
class Versions:
    """The fingerprints a layout of one method and space should carry, and whether a sync runs."""

    points: str
    colours: str
    syncing: bool

    @property
    def both(self) -> str:
        return f"{self.points}:{self.colours}"


def layout_versions(
    *, index: VectorIndex, state: StateStore, method: str, space: str | None, fields: Sequence[str]
) -> Versions:
    """The versions of the `method` layout of `space` (None: the encoder's vectors).

    `fields`: the names of the derived fields that can be colour columns (a label set
    removed takes its columns with it, and no job says so).
    """
    space_kinds = SPACE_KINDS if space is not None else ()
    jobs = JobQueue(state).newest_per_kind(("sync", *space_kinds, *COLOUR_KINDS), limit=RECENT)
    syncs = [j for j in jobs if j.kind == "sync"]
    now = datetime.now(UTC)
    syncing = any(
        j.state in ("queued", "running") and now - _utc(j.heartbeat_at or j.created_at) < SYNC_SILENCE
        for j in syncs
    )
    moves = [j for j in jobs if j.kind == "sync" or j.kind in space_kinds]
    held = index.count(None if space is None else Filter(must=[HasVector(space)]))
    points = _digest(LAYOUT_VERSION, method, space or index.vector_name, held, _last(moves))
    writes = [j for j in jobs if j.kind in COLOUR_KINDS]
    colours = _digest(LAYOUT_VERSION, _last(writes), *sorted(fields))
    return Versions(points=points, colours=colours, syncing=syncing)


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _last(jobs: Iterable[Any]) -> str:
    """When the last of `jobs` finished ("" when none has)."""
    finished = [_utc(j.finished_at) for j in jobs if j.finished_at is not None]
    return max(finished).isoformat() if finished else ""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
