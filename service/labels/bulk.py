"""Labelling by hand in bulk: "label these as X" into a ground-truth set, with who and when.

The assets are named by ids, by a filter (every asset under it: a map lasso or a selection is a
filter), or by a search (the hits of that search body). Everything is checked before the first
write: the set must be a ground-truth classification set, the label one of its classes when it
declares them, every id an asset of the catalog. Each asset's `labels.<set>` value is replaced
by the label with `labeled_by` (the API key's fingerprint, or "anonymous") and `labeled_at`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidQuery
from service.index.base import Condition, Filter
from service.index.filters import only_present, parse_filter
from service.labels import payload, scores
from service.labels.imports import import_lock
from service.labels.records import AssetRef, Record, check_record
from service.labels.store import LabelSetStore
from service.schemas import SearchRequest
from service.state import utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

MAX_IDS = 100_000
WRITE_BATCH = 2000
PAGE = 2048


class BulkLabel(BaseModel):
    """POST /labelsets/{name}/labels: one label for many assets (ids, a filter or a search)."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    ids: list[str] | None = Field(default=None, max_length=MAX_IDS)
    filter: dict[str, Any] | None = Field(default=None, description="Every asset under this filter.")
    search: SearchRequest | None = Field(default=None, description="The hits of this search body.")


class BulkLabeled(BaseModel):
    set: str
    label: str
    labeled: int
    labeled_by: str
    labeled_at: str


def label(catalog: Catalog, name: str, body: BulkLabel, *, who: str) -> BulkLabeled:
    """Check everything, then write `body.label` onto the assets (see the module docstring)."""
    row = LabelSetStore(catalog.state).get(name)
    if row.role != "ground_truth" or row.task != "classification":
        raise InvalidQuery(
            f"label set {name!r} is a {row.role} {row.task} set; hand labels go into a ground-truth "
            "classification set",
            path="name",
        )
    classes = frozenset(row.classes) if row.classes_declared else None
    check_record(
        Record(where="body", ref=AssetRef(), label=body.label), task="classification", classes=classes
    )
    modes = [m for m in ("ids", "filter", "search") if getattr(body, m) is not None]
    if len(modes) != 1:
        raise InvalidQuery("give exactly one of `ids`, `filter` or `search`", path="body")
    ids = _targets(catalog, body)
    active = catalog.jobs.holder(import_lock(name))
    if active is not None:
        raise InvalidQuery(
            f"an import into {name!r} is {active.state} (job {active.id}); wait for it", path="name"
        )
    at = rfc3339(utcnow()) or ""
    value = payload.value_of(
        Record(where="body", ref=AssetRef(), label=body.label),
        task="classification",
        predictions=False,
        imported_at=at,
    )
    value.update(labeled_by=who, labeled_at=at)
    payload.ensure_indexes(catalog.index, name)
    for start in range(0, len(ids), WRITE_BATCH):
        batch = ids[start : start + WRITE_BATCH]
        scores.put(catalog.state, name, [(i, None) for i in batch])  # an imported vector goes too
        catalog.index.set_payload(batch, {name: value}, key=payload.ROOT)
    catalog.index.flush()
    LabelSetStore(catalog.state).imported(
        name, job_id=row.last_job_id or "", classes=[body.label], assets=payload.holders(catalog.index, name)
    )
    return BulkLabeled(set=name, label=body.label, labeled=len(ids), labeled_by=who, labeled_at=at)


def _targets(catalog: Catalog, body: BulkLabel) -> list[str]:
    if body.ids is not None:
        wanted = list(dict.fromkeys(body.ids))
        found: set[str] = set()
        for start in range(0, len(wanted), PAGE):
            found.update(r.id for r in catalog.index.retrieve(_checked(wanted[start : start + PAGE], start)))
        for j, asset in enumerate(wanted):
            if asset not in found:
                raise InvalidQuery(f"no asset with id {asset!r}; nothing was labelled", path=f"ids[{j}]")
        return wanted
    if body.search is not None:
        hits, _ = catalog.search(body.search)
        return [h["id"] for h in hits]
    flt = parse_filter(only_present(body.filter)) or Filter(must=[Condition(key="status", eq="ok")])
    out: list[str] = []
    cursor: str | None = None
    while True:
        recs, cursor = catalog.index.scroll(filter=flt, limit=PAGE, cursor=cursor, fields=["status"])
        out.extend(r.id for r in recs)
        if len(out) > MAX_IDS:
            raise InvalidQuery(f"the filter keeps more than {MAX_IDS} assets; narrow it", path="filter")
        if cursor is None:
            return out


def _checked(ids: list[str], offset: int) -> list[str]:
    import uuid

    for j, asset in enumerate(ids):
        try:
            uuid.UUID(asset)
        except ValueError:
            raise InvalidQuery(f"{asset!r} is not an asset id (a UUID)", path=f"ids[{offset + j}]") from None
    return ids
