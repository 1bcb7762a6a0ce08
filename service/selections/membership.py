"""Which selections an asset is in: the `selections` keyword list on its payload, indexed.

The index merges payload keys rather than appending to lists, so each asset's list is read
back and assets with the same list are written together (usually a handful of writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from service.index.base import FieldType, VectorIndex
from service.index.filters import parse_filter

FIELD = "selections"
BATCH = 2048


def add(
    index: VectorIndex, name: str, ids: Sequence[str], *, on_batch: Callable[[int], None] = lambda n: None
) -> None:
    """Put `name` into the `selections` list of each asset of `ids`."""
    index.ensure_field(FIELD, FieldType.keyword)
    for start in range(0, len(ids), BATCH):
        groups: dict[tuple[str, ...], list[str]] = {}
        for rec in index.retrieve(list(ids[start : start + BATCH])):
            kept = tuple(s for s in rec.payload.get(FIELD) or [] if s != name)
            groups.setdefault(kept, []).append(rec.id)
        for kept, members in groups.items():
            index.set_payload(members, {FIELD: [*kept, name]})
        on_batch(min(len(ids), start + BATCH))


def remove(index: VectorIndex, name: str) -> int:
    """Take `name` out of every asset's list (the key goes when the list empties); how many."""
    flt = parse_filter({FIELD: name})
    done = 0
    while True:
        # Each pass rewrites the page it read, so the filter no longer matches it: always from the start.
        recs, _ = index.scroll(filter=flt, limit=BATCH, fields=[FIELD])
        if not recs:
            return done
        groups: dict[tuple[str, ...], list[str]] = {}
        for rec in recs:
            groups.setdefault(tuple(s for s in rec.payload.get(FIELD) or [] if s != name), []).append(rec.id)
        for rest, members in groups.items():
            if rest:
                index.set_payload(members, {FIELD: list(rest)})
            else:
                index.delete_keys([FIELD], ids=members)
        done += len(recs)
