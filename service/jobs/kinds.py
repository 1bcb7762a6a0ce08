"""The registry of job kinds: what each long task runs, which counts it keeps, and its lane.

A feature adds a long task by registering a kind in its own module (and naming that
module in `BUILTIN`), not by writing a runner: the one runner gives every kind durable
rows, claims, heartbeats, takeover, progress, errors and cancel.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.errors import InvalidQuery

if TYPE_CHECKING:
    from service.jobs.runner import JobContext
    from service.state import JobRow

# Modules whose import registers the built-in kinds; imported on first use so that the
# registry is complete however the process started.
BUILTIN = (
    "service.catalog.jobs",
    "service.export.jobs",
    "service.labels.jobs",
    "service.evals.jobs",
    "service.labelfns.jobs",
    "service.spaces.imports",
    "service.spaces.model_sync",
    "service.selections.jobs",
    "service.signals.jobs",
)


@dataclass(frozen=True)
class JobKind:
    """One kind of long task.

    Args:
        name: the `kind` users see and filter on ("sync", "export").
        run: does the work. It reports through `ctx.report()`, which raises JobCancelled
            at the next step after a cancel and JobLost when another runner took the job
            over; it raises a LoupeError to fail the job with that error's detail.
        counts: the count names its jobs always show (zero until counted).
        lane: kinds of one lane run one at a time in a process; lanes run side by side
            (a long sync in the "ingest" lane does not hold up an export).
        closed: called once a job of this kind has reached its final state, also when it
            was cancelled before it started (an export closes its export record).
    """

    name: str
    run: Callable[[JobContext], None]
    counts: tuple[str, ...] = ()
    lane: str = "default"
    closed: Callable[[object, JobRow], None] | None = field(default=None)


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, JobKind]:
    """Every registered kind by name (the built-in ones loaded)."""
    for module in BUILTIN:
        importlib.import_module(module)
    return dict(_KINDS)


def kind_for(name: str) -> JobKind:
    """The kind called `name`; InvalidQuery naming the valid kinds otherwise."""
    known = kinds()
    if name not in known:
        raise InvalidQuery(f"unknown job kind {name!r}; valid kinds: {', '.join(sorted(known))}", path="kind")
    return known[name]


def lanes() -> dict[str, list[str]]:
    """Lane -> the kinds that run in it."""
    out: dict[str, list[str]] = {}
    for kind in kinds().values():
        out.setdefault(kind.lane, []).append(kind.name)
    return out
