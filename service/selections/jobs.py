"""The `selection` job kind, and starting one: check, record the selection and its job, run it."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext, cancel, execute
from service.selections import greedy, membership, pool
from service.selections.plan import Plan, plan
from service.selections.schemas import SelectionCounts, SelectionPublic, SelectionRequest
from service.selections.store import SelectionRow, SelectionStore, exists_error
from service.state import JobRow, utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def begin(catalog: Catalog, request: SelectionRequest, *, here: bool = False) -> SelectionRow:
    """Check the request, record the selection and queue its job (with `here`, owned by this
    process for the caller to `execute`); nothing is written when a check fails."""
    store = SelectionStore(catalog.state)
    if store.exists(request.name):
        raise exists_error(request.name)
    plan(catalog, request)
    job_id = str(uuid.uuid4())
    row = store.create(
        SelectionRow(
            name=request.name,
            job_id=job_id,
            state="queued",
            budget=request.budget,
            request=request.model_dump(mode="json", exclude_none=True),
            ids=[],
            counts={},
            created_at=utcnow(),
        )
    )
    catalog.jobs.create(
        "selection",
        options={"request": request.model_dump(mode="json")},
        job_id=job_id,
        lock_key=f"selection:{request.name}",
        state="running" if here else "queued",
        owner=catalog.owner if here else None,
    )
    return row


def run_now(catalog: Catalog, request: SelectionRequest) -> SelectionRow:
    """begin() and the selection's job in this thread (the CLI without a server)."""
    row = begin(catalog, request, here=True)
    execute(catalog, catalog.jobs.get(row.job_id))
    return SelectionStore(catalog.state).get(row.name)


def choose(catalog: Catalog, checked: Plan, *, report: Any = None) -> tuple[list[str], dict[str, int], float]:
    """The chosen ids in order, the counts, and the seconds spent choosing (after reading)."""
    tell = report or (lambda **_: None)
    found = pool.read(catalog.index, checked, on_batch=lambda n: tell(counts={"candidates": n}, progress=0.1))
    tell(counts={"candidates": found.size, "seeds": found.seed_count}, progress=0.4)
    over = found.candidates
    objectives = [
        (greedy.normalise(values, invert=w.invert, minmax=w.normalise, over=over), w.strength)
        for w, values in zip(checked.weights, found.values, strict=True)
    ]
    for query, strength in checked.similar:
        assert found.vectors is not None
        similarity = greedy.normalise(found.vectors @ query, invert=False, minmax=True, over=over)
        objectives.append((similarity, strength))
    started = time.perf_counter()
    weight = greedy.combine(objectives, len(found.ids))
    # A spread batch (never beside a diversity strategy) is greedy like diversity, but against
    # its own picks only: no seeds.
    spread = checked.spread is not None
    picked = greedy.pick(
        weight,
        budget=checked.budget,
        vectors=found.vectors,
        seeds=None if spread else found.seeds,
        diversity=checked.spread if spread else checked.diversity,
        groups=found.groups if checked.balance is not None else None,
        target=checked.balance.target if checked.balance is not None else "uniform",
        on_pick=lambda n: tell(counts={"selected": n}, progress=0.4 + 0.5 * n / max(1, checked.budget)),
        candidates=found.candidates,
    )
    seconds = time.perf_counter() - started
    counts = {"candidates": found.size, "seeds": found.seed_count, "selected": len(picked)}
    return [found.ids[int(i)] for i in np.asarray(picked, dtype=np.int64)], counts, seconds


def _run(job: JobContext) -> None:
    catalog = job.catalog
    request = SelectionRequest.model_validate(job.options["request"])
    store = SelectionStore(catalog.state)
    store.update(request.name, state="running")
    # Checked again: a set may have been removed, or assets chosen by another selection, meanwhile.
    checked = plan(catalog, request)
    ids, counts, _ = choose(catalog, checked, report=job.report)
    job.report(counts=counts, progress=0.9)
    membership.add(catalog.index, request.name, ids)
    detail = None
    if counts["candidates"] < request.budget:
        detail = (
            f"the budget ({request.budget}) is larger than the {counts['candidates']} candidates: "
            f"all {counts['candidates']} were selected"
        )
    else:
        detail = spread_note(checked)
    job.remember(counts=counts)
    store.update(request.name, ids=ids, counts=counts, detail=detail)


def spread_note(checked: Plan) -> str | None:
    """What a batch spread by default says (service.selections.plan.BATCH_SPREAD), and how to
    turn it off or widen it."""
    if checked.spread is None:
        return None
    return (
        "uncertainty batch spread within itself: the most uncertain first, then each pick weighed by "
        f"its distance to the batch's earlier picks (strength {checked.spread:g}); "
        'add {"kind": "diversity", "strength": 0} for the exact top N, or {"kind": "diversity"} to '
        "spread it from what is labelled too"
    )


def _closed(catalog: object, row: JobRow) -> None:
    """The selection follows its job; one that did not succeed leaves no membership behind."""
    cat: Catalog = catalog  # type: ignore[assignment]
    store = SelectionStore(cat.state)
    name = str((row.options or {}).get("request", {}).get("name"))
    if not store.exists(name) or store.get(name).job_id != row.id:
        return  # removed meanwhile (or the name reused by a newer selection)
    fields: dict[str, Any] = {"state": row.state, "finished_at": utcnow()}
    if row.state != "succeeded":
        membership.remove(cat.index, name)
        fields.update(ids=[], detail=row.detail)
    store.update(name, **fields)


def delete(catalog: Catalog, name: str) -> None:
    """Remove a selection: its job cancelled if it has not finished, its name off every asset."""
    store = SelectionStore(catalog.state)
    row = store.get(name)
    if row.state in ("queued", "running"):
        cancel(catalog, row.job_id)
    store.delete(name)
    membership.remove(catalog.index, name)


def selection_public(row: SelectionRow) -> SelectionPublic:
    request: dict[str, Any] = dict(row.request or {})
    return SelectionPublic(
        name=row.name,
        job_id=row.job_id,
        state=row.state,  # type: ignore[arg-type]
        budget=row.budget,
        count=len(row.ids or []),
        ids=list(row.ids or []),
        strategies=list(request.get("strategies") or []),
        filter=request.get("filter"),
        exclude_labeled=request.get("exclude_labeled"),
        space=request.get("space"),
        include_selected=bool(request.get("include_selected")),
        include_exported=bool(request.get("include_exported")),
        counts=SelectionCounts(**(row.counts or {})),
        detail=row.detail,
        created_at=rfc3339(row.created_at),
        finished_at=rfc3339(row.finished_at),
    )


SELECTION = register(
    JobKind(
        name="selection",
        run=_run,
        counts=("candidates", "seeds", "selected"),
        lane="selection",
        closed=_closed,
    )
)
