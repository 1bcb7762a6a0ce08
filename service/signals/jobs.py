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


def _closed(catalog: object, row: JobRow) -> None:
    """A run that did not succeed leaves the row saying so (the fields it wrote before stay)."""
    if row.state == "succeeded":
        return
    cat: Catalog = catalog  # type: ignore[assignment]
    planned = Planned(**(row.options or {})["planned"])
    SignalStore(cat.state).put(planned.row_id, state=row.state, detail=row.detail)


SIGNAL = register(
    JobKind(name="signal", run=run, counts=("assets", "scored"), lane="signals", closed=_closed)
)
