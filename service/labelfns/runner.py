"""Starting a labeling function's run: the request checked, the `into` set made, then a job."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from service.errors import Conflict
from service.jobs.runner import execute
from service.labelfns.jobs import KIND
from service.labelfns.plan import check, definition
from service.labelfns.schemas import LabelingFunctionCreate
from service.labelfns.store import LabelingFunctionRow, LabelingFunctionStore
from service.labels.imports import import_lock
from service.labels.schemas import LabelSetCreate
from service.labels.store import LabelSetStore

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def begin(catalog: Catalog, req: LabelingFunctionCreate, *, here: bool = False) -> LabelingFunctionRow:
    """Check `req` (a 4xx and nothing written otherwise), then record the run and queue its job."""
    plan = check(catalog, req)
    store = LabelingFunctionStore(catalog.state)
    previous = store.find(req.name)
    if previous is not None and previous.state in ("queued", "running"):
        raise Conflict(
            f"labeling function {req.name!r} is {previous.state} (job {previous.job_id}); wait for it, "
            f"or cancel it with DELETE /api/v1/jobs/{previous.job_id}"
        )
    active = catalog.jobs.holder(import_lock(req.into))
    if active is not None:
        raise Conflict(
            f"label set {req.into!r} is being written by job {active.id} ({active.kind}); wait for it"
        )
    if plan.into is None:
        LabelSetStore(catalog.state).create(
            LabelSetCreate(
                name=req.into,
                role="predictions",
                task="classification",
                model=f"labeling-function:{req.name}",
            )
        )
    job_id = str(uuid.uuid4())
    # The run's row first: a job that starts at once finds it to report into.
    row = store.save(name=req.name, into=req.into, definition=definition(req), job_id=job_id)
    try:
        catalog.jobs.create(
            KIND,
            options={"request": req.model_dump(mode="json")},
            job_id=job_id,
            lock_key=import_lock(req.into),
            state="running" if here else "queued",
            owner=catalog.owner if here else None,
        )
    except BaseException:
        store.update(req.name, job_id=job_id, state="failed", detail="the run could not be queued")
        raise
    return row


def run_now(catalog: Catalog, req: LabelingFunctionCreate) -> LabelingFunctionRow:
    """begin() and the run's job in this thread (the CLI without a server)."""
    row = begin(catalog, req, here=True)
    execute(catalog, catalog.jobs.get(row.job_id))
    return LabelingFunctionStore(catalog.state).get(req.name)
