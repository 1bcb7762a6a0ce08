"""The `signal` job kind: one signal over one scope, its row in the state store following the job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.jobs.kinds import JobKind, register
from service.signals.compute import run
from service.signals.plan import Planned
from service.signals.store import SignalStore
from service.state import JobRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog
    from service.jobs.runner import JobContext


def _closed(catalog: object, row: JobRow) -> None:
    """A run that did not succeed leaves the row saying so (the fields it wrote before stay)."""
    if row.state == "succeeded":
        return
    cat: Catalog = catalog  # type: ignore[assignment]
    planned = Planned(**(row.options or {})["planned"])
    SignalStore(cat.state).put(planned.row_id, state=row.state, detail=row.detail)


def _run(ctx: JobContext) -> None:
    """The signal, then the search graph rebuilt in the background: the engine moves every point
    whose payload is written out of its indexed segment, so a signal written over the whole catalog
    leaves every search (and the next signal's neighbour queries) an exact scan until the graph is
    rebuilt (measured at 100,000 x 512 in benchmarks/bench_curation.py: ~10x the CPU per query)."""
    run(ctx)
    ctx.catalog.optimize_soon()


SIGNAL = register(
    JobKind(name="signal", run=_run, counts=("assets", "scored"), lane="signals", closed=_closed)
)
