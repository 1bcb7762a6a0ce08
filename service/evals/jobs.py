"""The `evaluation` job kind: read, score, write each asset's outcome back, keep the results.

The index's two writes overlap the Python work (the engine runs them without Python's lock):
the outcome fields are indexed by a worker thread while the scrolled payloads are taken apart
and scored, and the outcomes are written as soon as they are known, while the metrics of the
slices are computed (100,000 assets, three slice fields: 6.3 s -> see RESULTS.md). One worker,
so the write waits for the indexes; the job waits for the worker before it ends, so a failed
or cancelled one clears its fields only after the last write.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from service.evals.evaluate import Outcomes, read, score
from service.evals.outcomes import clear, outcome_filters, prepare, write
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

    index = catalog.index
    written = [0.0]  # the fraction of the outcomes written, set by the worker
    writing: list[Future[None]] = []  # the worker's tasks: index the fields, then write
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation-write") as worker:
        try:
            t0 = time.perf_counter()
            rows = read(
                index,
                checked,
                on_batch=progress,
                on_scrolled=lambda: writing.append(worker.submit(prepare, index, checked)),
            )
            t1 = time.perf_counter()
            job.report(counts={"assets": rows.assets, "matched": len(rows.ids)}, progress=0.5)

            def start_writing(outcomes: Outcomes) -> None:
                done = written.__setitem__
                task = worker.submit(write, index, checked, rows.ids, outcomes, on_batch=lambda f: done(0, f))
                writing.append(task)

            result, _ = score(index, checked, rows, on_outcomes=start_writing)
            t2 = time.perf_counter()
            job.report(progress=0.7)
            for task in writing:
                while wait([task], timeout=0.5).not_done:
                    job.report(progress=0.7 + 0.3 * written[0])  # and the check for a cancel
                task.result()  # the write's error, if it failed
        except BaseException:
            worker.shutdown(wait=True, cancel_futures=True)
            raise
    # Seconds per stage, as `loupe jobs show` prints them for a sync; `write` is what the job
    # waited for the write after scoring (most of it ran during the scoring).
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
