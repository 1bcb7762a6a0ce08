"""The `labeling_function` job kind: compute a function's labels, then replace its set's labels."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext
from service.labelfns import apply
from service.labelfns.plan import check
from service.labelfns.schemas import LabelingFunctionCreate
from service.labelfns.store import LabelingFunctionStore
from service.labels import payload, scores
from service.labels.records import AssetRef, Record
from service.labels.store import LabelSetStore
from service.state import JobRow, utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

KIND = "labeling_function"
COUNTS = ("labeled", "abstained")
WRITE_BATCH = 2000


def _run(ctx: JobContext) -> None:
    catalog = ctx.catalog
    req = LabelingFunctionCreate.model_validate(ctx.options["request"])
    store = LabelingFunctionStore(catalog.state)
    # Checked again: a set or an example may have gone while the job waited in the queue.
    plan = check(catalog, req)
    store.update(req.name, job_id=ctx.job.id, state="running")

    def step(_what: str, progress: float) -> None:
        ctx.report(progress=min(0.9, progress))

    compute = apply.by_rules if req.rules is not None else apply.propagation
    out = compute(catalog.index, plan, step)
    ctx.report(counts={"labeled": len(out.labels), "abstained": out.abstained}, progress=0.9)
    # From here on no cancel is taken: the set's old labels are replaced in one pass.
    _write(catalog, req.into, out.labels, job_id=ctx.job.id)
    store.update(req.name, job_id=ctx.job.id, result=out.summary(plan.truth))
    ctx.remember(counts={"labeled": len(out.labels), "abstained": out.abstained}, progress=1.0)
    if out.threshold is None:
        ctx.outcome = (
            "succeeded",
            f"no threshold reaches precision {req.target_precision} on {plan.truth!r}; nothing was labelled",
        )


def _write(catalog: Catalog, into: str, labels: list[apply.Label], *, job_id: str) -> None:
    """Replace the set's labels. Values are rounded to 4 decimals and written once per distinct
    value (one set-payload over all its assets): a confident vote is {label: 1.0} on thousands
    of assets, and one write per asset was most of a large run's time. The vote shares
    (`scores`) go to the state store (service/catalog/label_scores.py), as an import's do."""
    index = catalog.index
    now = rfc3339(utcnow()) or ""
    payload.clear_set(index, into)
    scores.drop(catalog.state, into)
    payload.ensure_indexes(index, into)
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    vectors: list[tuple[str, dict[str, float]]] = []
    for asset, label, score, shares in labels:
        rec = Record(
            where=asset,
            ref=AssetRef(asset_id=asset),
            label=label,
            score=round(min(1.0, max(0.0, score)), 4),
            scores={c: round(p, 4) for c, p in shares.items()} or None,
        )
        value = payload.value_of(rec, task="classification", predictions=True, imported_at=now)
        value = {k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()}
        if "scores" in value:
            vectors.append((asset, value.pop("scores")))
        key = json.dumps(value, sort_keys=True)
        groups.setdefault(key, (value, []))[1].append(asset)
    scores.put(catalog.state, into, vectors)
    for value, ids in groups.values():
        for start in range(0, len(ids), WRITE_BATCH):
            index.set_payload(ids[start : start + WRITE_BATCH], {into: value}, key=payload.ROOT)
    index.flush()
    used = sorted({label for _, label, _, _ in labels})
    LabelSetStore(catalog.state).imported(
        into, job_id=job_id, classes=used, assets=payload.holders(index, into)
    )


def _closed(catalog: object, row: JobRow) -> None:
    """The function's run follows its job."""
    cat: Catalog = catalog  # type: ignore[assignment]
    name = (row.options or {}).get("request", {}).get("name")
    if name:
        LabelingFunctionStore(cat.state).update(
            name, job_id=row.id, state=row.state, detail=row.detail, finished_at=utcnow()
        )


LABELING_FUNCTION = register(JobKind(name=KIND, run=_run, counts=COUNTS, lane="labels", closed=_closed))
