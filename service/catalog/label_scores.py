"""The class-probability vectors of label sets (`scores`), kept in the state store.

This module is the `label_scores` table itself; it lives in the catalog because the catalog reads
it for every asset it returns (the label packages build on the catalog, not the reverse), and
`service/labels/scores.py` adds the import's write of a batch (table and payload together).

An import that gives a probability vector ({class: p}) for an asset keeps it here, one row per
(set, asset) in `label_scores`, not in the asset's `labels.<set>` payload value: every payload
operation of the embedded engine decompresses, parses and rewrites a point's whole payload, so
the vector slowed everything that touches payloads without being filtered on. Measured on
100,000 assets and 10 classes, the evaluation job (read, score, write `evals.<id>.correct`) took
14.2 CPU s with `scores` in the payload and 9.3 CPU s without; a 1,000-class model would put
~25 KB in each payload. The uncertainty fields made from the vector (margin, entropy,
least_confidence) stay in the payload, where they are indexed.

Readers: the label_issues signal (service/signals/compute.py), and whatever returns assets over
REST (service/catalog/catalog.py), which puts `scores` back into `labels.<set>` with `attach`
so that the API shows what it showed before.

Writers replace: `put` replaces the rows of the assets it is given for that set (an asset
written without scores loses its old row, as a re-import replaces its annotation); `drop` goes
with a set's removal (and before a labeling function rewrites its set). Assets removed from the
catalog (a source removed or pruned) leave their rows behind until the set is removed: they
are never read, since readers start from the assets the index holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select

from service.state import LabelScoresRow, StateStore

# Ids per IN list: well under SQLite's (32,766) and PostgreSQL's (65,535) bound on parameters.
CHUNK = 1000


def put(state: StateStore, name: str, items: Iterable[tuple[str, Mapping[str, float] | None]]) -> None:
    """Replace set `name`'s rows of these assets, in one transaction: a vector gives the asset
    its row, None leaves it without one."""
    pairs = list(items)
    with state.session() as s:
        for at in range(0, len(pairs), CHUNK):
            chunk = pairs[at : at + CHUNK]
            ids = [asset for asset, _ in chunk]
            s.execute(
                delete(LabelScoresRow).where(
                    LabelScoresRow.set_name == name, LabelScoresRow.asset_id.in_(ids)
                )
            )
            rows = [{"set_name": name, "asset_id": a, "scores": dict(v)} for a, v in chunk if v]
            if rows:
                s.execute(insert(LabelScoresRow), rows)


def get(state: StateStore, name: str, ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The vectors of set `name` for those of `ids` that have one (one IN query per CHUNK ids)."""
    out: dict[str, dict[str, float]] = {}
    with state.session() as s:
        for at in range(0, len(ids), CHUNK):
            q = select(LabelScoresRow.asset_id, LabelScoresRow.scores).where(
                LabelScoresRow.set_name == name, LabelScoresRow.asset_id.in_(list(ids[at : at + CHUNK]))
            )
            out.update((asset, scores) for asset, scores in s.execute(q))
    return out


def drop(state: StateStore, name: str) -> None:
    """Every row of set `name`."""
    with state.session() as s:
        s.execute(delete(LabelScoresRow).where(LabelScoresRow.set_name == name))


def attach(state: StateStore, assets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put each asset's `scores` back into its classification values under `labels` (in place,
    copying the dicts it changes), in one IN query for the page; returns `assets`."""
    if len(assets) > CHUNK:
        for at in range(0, len(assets), CHUNK):
            attach(state, assets[at : at + CHUNK])
        return assets
    names: set[str] = set()
    for asset in assets:
        for name, value in (asset.get("labels") or {}).items():
            if isinstance(value, dict) and "count" not in value:  # detection values have no vector
                names.add(name)
    if not names:
        return assets
    by_id = {a["id"]: a for a in assets}
    q = select(LabelScoresRow.set_name, LabelScoresRow.asset_id, LabelScoresRow.scores).where(
        LabelScoresRow.set_name.in_(sorted(names)), LabelScoresRow.asset_id.in_(list(by_id))
    )
    with state.session() as s:
        found = list(s.execute(q))
    for name, asset_id, scores in found:
        labels = by_id[asset_id].get("labels") or {}
        value = labels.get(name)
        if isinstance(value, dict):
            by_id[asset_id]["labels"] = {**labels, name: {**value, "scores": scores}}
    return assets
