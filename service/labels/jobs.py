"""The `label_import` job kind: writes an import's values, all or nothing, in batches.

Spooled imports (uploads, inline records) were validated by the request; the job writes
their batches and resumes after a restart from the last batch written (writes are
idempotent). A metadata field or a Label Studio project is read and validated whole first;
any bad record fails the job before its first write. Once writing has begun a cancel is not
taken: a half-written import is what the all-or-nothing rule forbids, and the writes take
seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service import collector
from service.errors import JobLost, LoupeError
from service.index.base import Condition, Filter
from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext
from service.labels import payload, scores
from service.labels.formats.label_studio import task_record
from service.labels.imports import KIND, prepare, values
from service.labels.records import AssetRef, Record
from service.labels.schemas import IMPORT_COUNTS
from service.labels.store import LabelSetStore
from service.state import JobRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

WRITE_BATCH = 2000
TASK_PAGE = 500


def _run(ctx: JobContext) -> None:
    opts = ctx.options
    sets = LabelSetStore(ctx.catalog.state)
    row = sets.get(opts["set"])
    counts: dict[str, int] = dict(opts.get("counts") or {})
    errors: list[dict[str, str]] = list(opts.get("unknown") or [])
    if opts["mode"] == "spool":
        ctx.report(counts=counts, errors=errors, error_count=counts.get("unknown_asset", 0), progress=0.0)
        n = int(opts["batches"])
        payload.ensure_indexes(ctx.catalog.index, row.name)
        start = int(ctx.checkpoint.get("next", 0))
        counts["imported"] = int(ctx.checkpoint.get("imported", 0))
        for seq in range(start, n):
            items = sets.batch(ctx.job.id, seq) or []
            with collector.paused():  # a batch's operations: thousands of objects, no cycle
                scores.write(
                    ctx.catalog.state, ctx.catalog.index, row.name, [(pid, value) for pid, value in items]
                )
            counts["imported"] += len(items)
            ctx.save_checkpoint(next=seq + 1, imported=counts["imported"])
            _progress(ctx, counts=counts, progress=(seq + 1) / n)
        used = list(opts.get("classes") or [])
    else:
        records = _field_records(ctx, opts["field"]) if opts["mode"] == "from_field" else _ls_records(ctx)
        counts["received"] = len(records)
        try:
            matched = prepare(ctx.catalog, row, records, source=None)
        except LoupeError:
            ctx.remember(counts={**counts, "invalid": 1})
            raise
        counts["unknown_asset"] = len(matched.unknown)
        errors = matched.unknown[:1000]
        ctx.report(counts=counts, errors=errors, error_count=len(matched.unknown), progress=0.0)
        items, used = values(row, matched)
        payload.ensure_indexes(ctx.catalog.index, row.name)
        counts["imported"] = 0
        for start in range(0, len(items), WRITE_BATCH):
            chunk = items[start : start + WRITE_BATCH]
            scores.write(
                ctx.catalog.state, ctx.catalog.index, row.name, [(pid, value) for pid, value in chunk]
            )
            counts["imported"] += len(chunk)
            _progress(ctx, counts=counts, progress=counts["imported"] / max(1, len(items)))
    ctx.catalog.index.flush()
    sets.imported(
        row.name, job_id=ctx.job.id, classes=used, assets=payload.holders(ctx.catalog.index, row.name)
    )
    ctx.remember(counts=counts, errors=errors, error_count=len(errors))
    skipped = counts.get("unknown_asset", 0)
    ctx.outcome = (
        "succeeded",
        f"{counts['imported']} imported; {skipped} named no asset of the catalog" if skipped else None,
    )


def _progress(ctx: JobContext, *, counts: dict[str, int], progress: float) -> None:
    """Save progress without taking a cancel (see the module docstring); stop if the job was lost."""
    ctx.remember(counts=counts, progress=progress)
    signal = ctx.queue.update(ctx.job.id, owner=ctx.catalog.owner, **ctx.final_fields())
    if signal == "lost":
        raise JobLost(f"job {ctx.job.id} was taken over by another runner")


def _field_records(ctx: JobContext, key: str) -> list[Record]:
    """Every asset's value of a metadata field, as a classification record."""
    index = ctx.catalog.index
    flt = Filter(must=[Condition(key=key, exists=True)])
    out: list[Record] = []
    cursor: str | None = None
    leaf = key.split(".")[1:]
    while True:
        recs, cursor = index.scroll(filter=flt, limit=2048, cursor=cursor, fields=["meta"])
        for r in recs:
            value: Any = r.payload.get("meta") or {}
            for part in leaf:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, bool) or not isinstance(value, str | int):
                value = None if value is None or isinstance(value, dict | list) else str(value)
            out.append(Record(where=f"asset {r.id} ({key})", ref=AssetRef(asset_id=r.id), label=value))
        ctx.report(counts={"received": len(out)})
        if cursor is None:
            return out


def _ls_records(ctx: JobContext) -> list[Record]:
    """The project's tasks with a submitted annotation, read page by page."""
    from service.export.label_studio import LabelStudioClient

    opts = ctx.options
    client = LabelStudioClient(opts["url"], opts["token"])
    out: list[Record] = []
    try:
        page, seen = 1, 0
        while True:
            params = {"project": opts["project_id"], "page": page, "page_size": TASK_PAGE, "fields": "all"}
            resp = client.request(
                "GET", "/api/tasks/", what="read the project's tasks", missing_ok=page > 1, params=params
            )
            if resp.status_code == 404:
                break
            body = resp.json()
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            for task in tasks:
                rec = task_record(task, where=f"task {task.get('id')}")
                if rec is not None:
                    out.append(rec)
            seen += len(tasks)
            total = body.get("total") if isinstance(body, dict) else None
            ctx.report(counts={"received": len(out)})
            if not tasks or (total is not None and seen >= total):
                break
            page += 1
    finally:
        client.close()
    return out


def _closed(catalog: object, row: JobRow) -> None:
    """The spool goes with the job, however it ended."""
    cat: Catalog = catalog  # type: ignore[assignment]
    LabelSetStore(cat.state).drop_batches(row.id)


LABEL_IMPORT = register(JobKind(name=KIND, run=_run, counts=IMPORT_COUNTS, lane="labels", closed=_closed))
