"""What the API and CLI read back: computed signals (and whether they are stale), duplicate groups, keep.

Exclusion: keeping one member of a duplicate group marks the others
`signals.duplicate_excluded: true`; searches and exports leave such assets out unless
their filter names `signals.duplicate_excluded` itself (index.filters.without_excluded), as they leave
out assets gone from their source. Listing assets (GET /assets) still shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.errors import AssetNotFound, InvalidQuery, NotFound
from service.index.base import Filter
from service.index.filters import EXCLUDED_DUPLICATE, parse_filter
from service.index.spaces import resolve_space
from service.signals.neighbours import with_vector
from service.signals.plan import label_scope
from service.signals.schemas import FIELDS, DuplicateGroupPublic, DuplicatesPublic, SignalPublic
from service.signals.store import SignalRow, SignalStore
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

EXCLUDED = EXCLUDED_DUPLICATE
MEMBERS_MAX = 1000  # members listed per group


def signal_public(catalog: Catalog, row: SignalRow) -> SignalPublic:
    stale = 0
    if row.computed_at is not None:
        try:
            stale = _stale(catalog, row)
        except (InvalidQuery, NotFound):
            stale = 0  # a space removed since: nothing to compare with
    return SignalPublic(
        id=row.id,
        kind=row.kind,
        field=FIELDS[row.kind],
        filter=row.filter,
        space=row.space,
        params=dict(row.params or {}),
        state=row.state,
        job_id=row.job_id,
        assets=row.assets or 0,
        scored=row.scored or 0,
        computed_at=rfc3339(row.computed_at),
        stale=stale > 0,
        stale_count=stale,
        detail=row.detail,
    )


def _stale(catalog: Catalog, row: SignalRow) -> int:
    space = resolve_space(catalog.index, row.space)
    flt = parse_filter(row.filter)
    if row.kind == "label_issues":
        flt = label_scope(flt, str((row.params or {}).get("ground_truth", "")))
    since = parse_filter({"synced_at": {"gt": rfc3339(row.computed_at)}})
    parts = [p for p in (flt, since) if p is not None]
    return catalog.index.count(with_vector(Filter(must=parts), space))


def list_signals(catalog: Catalog, *, kind: str | None = None) -> list[SignalPublic]:
    return [signal_public(catalog, r) for r in SignalStore(catalog.state).list(kind=kind)]


def duplicate_groups(
    catalog: Catalog, *, filter: dict[str, Any] | None, limit: int, cursor: str | None
) -> DuplicatesPublic:
    """Groups whose kept asset matches `filter`, in the kept asset's id order; members under `filter`."""
    keeps_filter = (
        {"and": [filter, {"signals.duplicate_keep": True}]} if filter else {"signals.duplicate_keep": True}
    )
    keeps, nxt = catalog.index.scroll(
        filter=parse_filter(keeps_filter), limit=limit, cursor=cursor, fields=["signals"]
    )
    data = []
    for rec in keeps:
        group = (rec.payload.get("signals") or {}).get("duplicate_group")
        if not group:
            continue
        data.append(_group(catalog, str(group), filter))
    return DuplicatesPublic(data=data, next_cursor=nxt)


def _group(catalog: Catalog, group: str, filter: dict[str, Any] | None) -> DuplicateGroupPublic:
    raw = (
        {"and": [filter, {"signals.duplicate_group": group}]}
        if filter
        else {"signals.duplicate_group": group}
    )
    recs, _ = catalog.index.scroll(filter=parse_filter(raw), limit=MEMBERS_MAX, fields=["signals"])
    keep = ""
    members, excluded = [], []
    for rec in recs:
        sig = rec.payload.get("signals") or {}
        if sig.get("duplicate_keep"):
            keep = rec.id
        else:
            members.append(rec.id)
        if sig.get("duplicate_excluded"):
            excluded.append(rec.id)
    keep = keep or (members.pop(0) if members else "")
    return DuplicateGroupPublic(
        group=group, keep=keep, ids=[keep, *sorted(members)], excluded=sorted(excluded)
    )


def keep(catalog: Catalog, group: str, *, keep_id: str, exclude_others: bool) -> DuplicateGroupPublic:
    """Make `keep_id` the group's kept asset; the others are excluded (or all included again)."""
    current = _group(catalog, group, None)
    if not current.keep:
        raise NotFound(f"no duplicate group {group!r}; GET /api/v1/duplicates lists them")
    if keep_id not in current.ids:
        raise AssetNotFound(
            f"asset {keep_id!r} is not in duplicate group {group!r}; its members: {', '.join(current.ids)}"
        )
    others = [m for m in current.ids if m != keep_id]
    index = catalog.index
    index.set_payload(
        [keep_id], {"duplicate_of": keep_id, "duplicate_keep": True, "duplicate_chosen": True}, key="signals"
    )
    index.delete_keys([EXCLUDED], ids=[keep_id])
    if others:
        index.set_payload(
            others,
            {"duplicate_of": keep_id, "duplicate_keep": False, "duplicate_chosen": False},
            key="signals",
        )
        if exclude_others:
            index.set_payload(others, {"duplicate_excluded": True}, key="signals")
        else:
            index.delete_keys([EXCLUDED], ids=others)
    return _group(catalog, group, None)
