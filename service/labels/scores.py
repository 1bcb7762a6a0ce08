"""An import's write of a batch of label values: their class-probability vectors (`scores`)
into the state store's `label_scores` table (service/catalog/label_scores.py, which says why
they are kept there and who reads them), the rest into the payload (service/labels/payload.py).
The table's own operations are re-exported here for the label packages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.catalog.label_scores import CHUNK, attach, drop, get, put
from service.index.base import VectorIndex
from service.labels import payload
from service.state import StateStore

__all__ = ["CHUNK", "attach", "drop", "get", "put", "write"]


def write(
    state: StateStore, index: VectorIndex, name: str, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """Write a batch of `labels.<name>` values as an import does: their `scores` into the table
    (put), the rest into the payload (payload.write, which leaves `scores` out)."""
    put(state, name, [(asset, value.get("scores")) for asset, value in items])
    payload.write(index, name, items)
