"""Starting an annotation import: everything is parsed, validated and matched before any write.

For an upload (or inline records) the request itself does all of it — a malformed file is an
InvalidAnnotations (422) naming the line and field, and nothing is written — then spools the
ready values in the state store and queues a `label_import` job that writes them in batches.
A metadata field or a live Label Studio project is read by the job, which validates all of
it before its first write (service/labels/jobs.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from service.errors import Conflict, InvalidQuery
from service.index.filters import field_key
from service.labels import payload
from service.labels.matching import Matched, match
from service.labels.records import Record, check_record, check_unique
from service.labels.store import LabelSetStore
from service.state import ExportRow, JobRow, LabelSetRow, utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

SPOOL_BATCH = 2000
KIND = "label_import"


def import_lock(name: str) -> str:
    """One import into a set at a time (two would race on the same assets' values)."""
    return f"labels:{name}"


def prepare(catalog: Catalog, row: LabelSetRow, records: Sequence[Record], *, source: str | None) -> Matched:
    """Validate `records` for the set and match them to assets; InvalidAnnotations on any bad one."""
    classes = frozenset(row.classes) if row.classes_declared else None
    for rec in records:
        check_record(rec, task=row.task, classes=classes)
    check_unique(records)
    sources = [s.name for s in catalog.state.list_sources()]
    return match(catalog.index, records, source=source, sources=sources)


def values(row: LabelSetRow, matched: Matched) -> tuple[list[list[Any]], list[str]]:
    """The (asset id, labels.<set> value) pairs to write, and the class names they use."""
    now = rfc3339(utcnow()) or ""
    predictions = row.role == "predictions"
    used: set[str] = set()
    items: list[list[Any]] = []
    for pid, rec in matched.items:
        value = payload.value_of(rec, task=row.task, predictions=predictions, imported_at=now)
        if value.get("label") is not None:
            used.add(value["label"])
        used.update(value.get("classes") or ())
        used.update((value.get("scores") or {}).keys())
        items.append([pid, value])
    return items, sorted(used)


def begin_records(
    catalog: Catalog, name: str, records: Sequence[Record], *, source: str | None = None, here: bool = False
) -> JobRow:
    """Validate and match `records`, spool their values and queue the job that writes them."""
    sets = LabelSetStore(catalog.state)
    row = sets.get(name)
    _not_busy(catalog, name)
    matched = prepare(catalog, row, records, source=source)
    items, used = values(row, matched)
    job_id = str(uuid.uuid4())
    batches = [items[i : i + SPOOL_BATCH] for i in range(0, len(items), SPOOL_BATCH)]
    sets.put_batches(job_id, batches)
    options = {
        "set": name,
        "mode": "spool",
        "batches": len(batches),
        "classes": used,
        "counts": {"received": len(records), "unknown_asset": len(matched.unknown)},
        "unknown": matched.unknown[:1000],
    }
    try:
        return _create(catalog, name, options, job_id=job_id, here=here)
    except BaseException:
        sets.drop_batches(job_id)
        raise


def begin_field(catalog: Catalog, name: str, field: str, *, here: bool = False) -> JobRow:
    """Queue an import of metadata field `field`'s values as classification labels."""
    row = LabelSetStore(catalog.state).get(name)
    if row.task != "classification":
        raise InvalidQuery("from_field fills classification sets; this is a detection set", path="from_field")
    key = field_key(field, path="from_field")
    if not key.startswith("meta."):
        raise InvalidQuery(f"{field!r} is not a metadata field; name one like meta.label", path="from_field")
    _not_busy(catalog, name)
    return _create(catalog, name, {"set": name, "mode": "from_field", "field": key}, here=here)


def begin_label_studio(
    catalog: Catalog, name: str, *, url: str, token: str, project_id: int, here: bool = False
) -> JobRow:
    """Queue a pull of a Label Studio project's submitted annotations; the project must be one
    Loupe exported to, and Label Studio must answer for it now."""
    from service.export.label_studio import LabelStudioClient

    LabelSetStore(catalog.state).get(name)
    url = url.rstrip("/")
    if not exported_to(catalog, url=url, project_id=project_id):
        raise InvalidQuery(
            f"Loupe never exported to project {project_id} at {url}: its tasks carry no asset ids to map "
            "back; export assets there first (loupe export --to label-studio --project-id ...)",
            path="label_studio.project_id",
        )
    client = LabelStudioClient(url, token)
    try:
        client.project(project_id)
    finally:
        client.close()
    _not_busy(catalog, name)
    options = {"set": name, "mode": "label_studio", "url": url, "token": token, "project_id": project_id}
    return _create(catalog, name, options, here=here)


def exported_to(catalog: Catalog, *, url: str, project_id: int) -> bool:
    """Whether an export of this Loupe went to that project (its export records say so)."""
    from sqlalchemy import select

    where = f"{url}/projects/{project_id}/"
    q = select(ExportRow.id).where(ExportRow.target == "label-studio", ExportRow.location.startswith(where))
    with catalog.state.session() as s:
        return s.execute(q.limit(1)).first() is not None


def _not_busy(catalog: Catalog, name: str) -> None:
    active = catalog.jobs.holder(import_lock(name))
    if active is not None:
        raise Conflict(
            f"an import into label set {name!r} is {active.state} (job {active.id}); wait for it, "
            f"or cancel it with DELETE /api/v1/jobs/{active.id}"
        )


def _create(
    catalog: Catalog, name: str, options: dict[str, Any], *, job_id: str | None = None, here: bool
) -> JobRow:
    return catalog.jobs.create(
        KIND,
        options=options,
        job_id=job_id,
        lock_key=import_lock(name),
        state="running" if here else "queued",
        owner=catalog.owner if here else None,
    )
