"""The `evaluation` job kind: read, score, write each asset's outcome back, keep the results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from service.evals.evaluate import read, score
from service.evals.outcomes import clear, outcome_filters, write
from service.evals.runner import plan
from service.evals.schemas import EvaluationRequest
from service.evals.store import EvaluationStore
from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext
from service.state import JobRow, utcnow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def _run(job: JobContext) -> None:
    catalog = job.catalog
    store = EvaluationStore(catalog.state)
    request = EvaluationRequest.model_validate(job.options["request"])
    # The sets checked again (one may have been removed while the job waited in the queue); the
    # index's counts were checked when it was queued, and an empty result says so by itself.
    checked = plan(catalog, request, evaluation_id=job.job.id, counts=False)
    store.update(checked.evaluation_id, state="running")
    total = max(1, catalog.index.count(None))

    def progress(n: int) -> None:
        job.report(counts={"assets": n}, progress=0.5 * min(1.0, n / total))

    t0 = time.perf_counter()
    rows = read(catalog.index, checked, on_batch=progress)
    t1 = time.perf_counter()
    job.report(counts={"assets": rows.assets, "matched": len(rows.ids)}, progress=0.5)
    result, outcomes = score(catalog.index, checked, rows)
    t2 = time.perf_counter()
    job.report(progress=0.7)
    write(catalog.index, checked, rows.ids, outcomes, on_batch=lambda f: job.report(progress=0.7 + 0.3 * f))
    # Seconds per stage, as `loupe jobs show` prints them for a sync.
    stages = {"read": t1 - t0, "score": t2 - t1, "write": time.perf_counter() - t2}
    job.remember(timings={k: round(v, 3) for k, v in stages.items()})
    result["counts"] = {"assets": rows.assets, "matched": len(rows.ids)}
    result["outcomes"] = outcome_filters(checked)
    store.update(checked.evaluation_id, result=result)


def _closed(catalog: object, row: JobRow) -> None:
    """The evaluation follows its job; one that did not succeed leaves no outcome fields behind."""
    cat: Catalog = catalog  # type: ignore[assignment]
    store = EvaluationStore(cat.state)
    if row.state != "succeeded":
        clear(cat.index, row.id)
    fields: dict[str, Any] = {"state": row.state, "detail": row.detail, "finished_at": utcnow()}
    store.update(row.id, **fields)


EVALUATION = register(
    JobKind(name="evaluation", run=_run, counts=("assets", "matched"), lane="evaluation", closed=_closed)
)
