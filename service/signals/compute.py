"""The `signal` job's work: build the neighbour graph, score, and write `signals.*` back in batches.

Incremental recompute (uniqueness, outliers, typicality): when the same signal over the
same scope succeeded before and fewer than half of its assets were synced since
(`synced_at` after its `computed_at`), only the new or changed assets are queried for
their neighbours, and they and those neighbours are rescored: a new point changes the
kNN distances of itself and of the points it enters the neighbourhood of, which are
(for a symmetric distance, up to ties at the k-th place) among its own k nearest. The
stored median keeps old and new scores on one scale; a full run refreshes it. Duplicates,
clusters and label issues are global (groups merge, clusters move, labels change with
every import) and always recompute the whole scope.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from service.index.base import Condition, FieldType, Filter, VectorSpec
from service.index.filters import parse_filter
from service.index.spaces import resolve_space
from service.labels import scores as label_scores
from service.signals import clusters, duplicates, scores
from service.signals.neighbours import build_graph, scan, with_vector
from service.signals.plan import Planned, label_scope
from service.signals.store import SignalStore
from service.state import utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.jobs.runner import JobContext

LEAF = {
    "uniqueness": "uniqueness",
    "outliers": "outlier",
    "typicality": "typicality",
    "label_issues": "label_issue",
}
DUPLICATE_KEYS = ("signals.duplicate_group", "signals.duplicate_of", "signals.duplicate_keep")


def run(ctx: JobContext) -> None:
    planned = Planned(**ctx.options["planned"])
    catalog = ctx.catalog
    store = SignalStore(catalog.state)
    store.put(planned.row_id, state="running", job_id=ctx.job.id)
    space = resolve_space(catalog.index, planned.space)
    flt = parse_filter(planned.filter)
    started = utcnow()
    if planned.kind == "clusters":
        result = _clusters(ctx, planned, space, flt)
    elif planned.kind == "duplicates":
        result = _duplicates(ctx, planned, space, flt)
    elif planned.kind == "label_issues":
        result = _label_issues(ctx, planned, space, flt)
    else:
        result = _knn_score(ctx, planned, space, flt, store)
    params = {**planned.params(), **result.pop("params", {})}
    store.put(
        planned.row_id,
        state="succeeded",
        computed_at=started,
        assets=result["assets"],
        scored=result["scored"],
        params=params,
        detail=None,
    )
    ctx.report(counts=result, progress=1.0)


def _progress(ctx: JobContext, total: int, *, share: float = 0.8) -> Any:
    def on_batch(done: int) -> None:
        ctx.report(counts={"assets": done}, progress=share * min(1.0, done / max(1, total)))

    return on_batch


def _write(ctx: JobContext, items: Sequence[tuple[str, dict[str, Any]]], *, start: float = 0.8) -> None:
    """The scores into `signals.*`: batch by batch, or (an embedded index, many points) by the
    optimizer's child, which keeps the moved points out of this process (`write_payloads`)."""

    def progress(done: int) -> None:  # also the cancel check
        ctx.report(progress=start + (1 - start) * min(1.0, done / max(1, len(items))))

    ctx.catalog.index.write_payloads(items, key="signals", progress=progress)


def _knn_score(
    ctx: JobContext, planned: Planned, space: VectorSpec, flt: Filter | None, store: SignalStore
) -> dict[str, Any]:
    index = ctx.catalog.index
    leaf = LEAF[planned.kind]
    index.ensure_field(f"signals.{leaf}", FieldType.float)
    total = index.count(with_vector(flt, space))
    only, median = _incremental(ctx, planned, space, flt, store, total)
    graph = build_graph(
        index,
        space=space,
        filter=flt,
        k=planned.k,
        on_batch=_progress(ctx, len(only) if only else total),
        only=only,
    )
    raw = scores.weighted_distance(graph.dist, planned.weights)
    if median is None:
        median = scores.typical(raw)
    fn = {"uniqueness": scores.uniqueness, "outliers": scores.outlier, "typicality": scores.typicality}
    values = fn[planned.kind](raw, median)
    _write(ctx, [(pid, {leaf: float(v)}) for pid, v in zip(graph.ids, values, strict=True)])
    flagged = int(np.sum(values >= (planned.threshold or 0.0)))
    return {
        "assets": total,
        "scored": len(graph.ids),
        "flagged": flagged,
        "params": {"median": median, "incremental": only is not None},
    }


def _incremental(
    ctx: JobContext, planned: Planned, space: VectorSpec, flt: Filter | None, store: SignalStore, total: int
) -> tuple[set[str] | None, float | None]:
    """The ids to rescore and the stored median, or (None, None) for a full run."""
    before = store.get(planned.row_id)
    if not planned.incremental or before is None or before.computed_at is None:
        return None, None
    params = before.params or {}
    same = all(params.get(key) == value for key, value in planned.params().items())
    if not same or "median" not in params:
        return None, None
    since = parse_filter({"synced_at": {"gt": rfc3339(before.computed_at)}})
    scope = Filter(must=[p for p in (flt, since) if p is not None])
    changed = {page_id for page in scan(ctx.catalog.index, space=space, filter=scope) for page_id in page.ids}
    if not changed or len(changed) * 2 > total:
        return None, None
    first = build_graph(ctx.catalog.index, space=space, filter=flt, k=planned.k, only=changed)
    touched = set(changed)
    for row in first.neighbour_ids:
        touched.update(row)
    return touched, float(params["median"])


def _label_issues(ctx: JobContext, planned: Planned, space: VectorSpec, flt: Filter | None) -> dict[str, Any]:
    index = ctx.catalog.index
    gt, pred = planned.ground_truth or "", planned.predictions
    index.ensure_field("signals.label_issue", FieldType.float)
    scope = label_scope(flt, gt)
    total = index.count(with_vector(scope, space))

    def keep(payload: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """The ground-truth label (interned: a few classes over every asset) and the prediction."""
        label = _label(payload, gt)
        value = (payload.get("labels") or {}).get(pred) if pred else None
        return (None if label is None else sys.intern(label)), value

    graph = build_graph(
        index,
        space=space,
        filter=scope,
        k=planned.k,
        fields=["labels"],
        on_batch=_progress(ctx, total),
        kept=keep,
    )
    labels = [label for label, _ in graph.payloads]
    raw = scores.weighted_distance(graph.dist)
    median = scores.typical(raw)
    vote = scores.neighbour_vote(labels, graph.idx, graph.dist, median)
    confidence = None
    if pred:
        # The probability vectors are in the state store, not the payload (service/catalog/label_scores.py).
        vectors = label_scores.get(ctx.catalog.state, pred, graph.ids)
        confidence = [
            scores.self_confidence(lab or "", _prediction(value, vectors.get(pid)), planned.classes)
            for pid, (lab, value) in zip(graph.ids, graph.payloads, strict=True)
        ]
    values = scores.label_issue(vote, confidence)
    _write(ctx, [(pid, {"label_issue": float(v)}) for pid, v in zip(graph.ids, values, strict=True)])
    return {
        "assets": total,
        "scored": len(graph.ids),
        "flagged": int(np.sum(values >= (planned.threshold or 0.0))),
        "params": {"median": median},
    }


def _prediction(value: dict[str, Any] | None, vector: dict[str, float] | None) -> dict[str, Any] | None:
    """An asset's prediction (its `labels.<set>` value) with its `scores` from the state store."""
    if value is None or vector is None:
        return value
    return {**value, "scores": vector}


def _label(payload: dict[str, Any], name: str) -> str | None:
    entry = (payload.get("labels") or {}).get(name) or {}
    label = entry.get("label")
    return str(label) if label is not None else None


def _duplicates(ctx: JobContext, planned: Planned, space: VectorSpec, flt: Filter | None) -> dict[str, Any]:
    index = ctx.catalog.index
    index.ensure_field("signals.duplicate_group", FieldType.keyword)
    index.ensure_field("signals.duplicate_of", FieldType.keyword)
    index.ensure_field("signals.duplicate_keep", FieldType.bool)
    total = index.count(with_vector(flt, space))
    fields = ["width", "height", "size_bytes", "synced_at", "signals"]
    graph = build_graph(
        index, space=space, filter=flt, k=planned.k, fields=fields, on_batch=_progress(ctx, total)
    )
    hashes = [(p.get("signals") or {}).get("sha256") for p in graph.payloads]
    near = duplicates.near_pairs(graph, planned.threshold or 0.0)
    exact = duplicates.exact_pairs(hashes)
    found = duplicates.groups(graph.ids, graph.payloads, [*near, *exact])
    kept_by_user = {
        pid
        for pid, p in zip(graph.ids, graph.payloads, strict=True)
        if (p.get("signals") or {}).get("duplicate_chosen")
    }
    items: list[tuple[str, dict[str, Any]]] = []
    in_group: set[str] = set()
    for group in found:
        chosen = [m for m in group.ids if m in kept_by_user]
        keep = chosen[0] if chosen else group.keep  # a choice made in the Duplicates view stands
        for member in group.ids:
            written: dict[str, Any] = {"duplicate_group": group.group, "duplicate_of": keep}
            items.append((member, {**written, "duplicate_keep": member == keep}))
            in_group.add(member)
    # Old groups under this scope go; an exclusion stays only while its asset is still in a group.
    # Only the old groups' members are touched: the engine moves every point a payload operation
    # matches out of its indexed segment, keys or not (at 1,000,000 a scope-wide delete moved them
    # all, and left the whole graph to rebuild).
    members = Condition(key="signals.duplicate_group", exists=True)
    index.delete_keys(list(DUPLICATE_KEYS), filter=Filter(must=[with_vector(flt, space), members]))
    freed = [
        pid
        for pid, p in zip(graph.ids, graph.payloads, strict=True)
        if pid not in in_group and (p.get("signals") or {}).get("duplicate_excluded")
    ]
    if freed:
        index.delete_keys(["signals.duplicate_excluded", "signals.duplicate_chosen"], ids=freed)
    _write(ctx, items)
    return {
        "assets": total,
        "scored": len(in_group),
        "groups": len(found),
        "exact_pairs": len(exact),
        "near_pairs": len(near),
    }


def _clusters(ctx: JobContext, planned: Planned, space: VectorSpec, flt: Filter | None) -> dict[str, Any]:
    index = ctx.catalog.index
    index.ensure_field("signals.cluster", FieldType.integer)
    total = index.count(with_vector(flt, space))
    reduced = clusters.reduction()
    ids: list[str] = []
    for page in scan(index, space=space, filter=flt):
        reduced.add(page.vectors)
        ids.extend(page.ids)
        ctx.report(counts={"assets": len(ids)}, progress=0.6 * len(ids) / max(1, total))
    labels = clusters.cluster(reduced.result(), min_cluster_size=planned.k)
    ctx.report(progress=0.8)
    _write(ctx, [(pid, {"cluster": int(c)}) for pid, c in zip(ids, labels, strict=True)])
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
    return {
        "assets": total,
        "scored": len(ids),
        "clusters": int(sizes.size),
        "noise": int(np.sum(labels < 0)),
        "params": {"reduction": reduced.reduction.name, "sizes": [int(s) for s in sizes[:50]]},
    }
