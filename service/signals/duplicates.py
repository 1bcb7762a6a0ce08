"""Duplicate groups: exact (the same `signals.sha256`) and near (embedding distance under a threshold).

Pairs come from the neighbour graph (each asset's k nearest), never from all pairs: two
assets are near duplicates when one is among the other's k nearest at a distance
<= threshold (cosine distance, 1 - similarity, of the encoder's unit vectors). Groups are
the connected components of exact and near pairs (union-find), so a chain of close
copies is one group. The kept representative of a group is its largest image (width x
height), then the largest file, then the earliest synced, then the smallest id: a
resized or re-encoded copy is usually the smaller one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.signals.neighbours import NeighbourGraph


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


@dataclass(frozen=True)
class Group:
    group: str
    keep: str
    ids: list[str]  # the kept one first, then the others by id


def near_pairs(graph: NeighbourGraph, threshold: float) -> list[tuple[int, int]]:
    """(i, j) with j among i's nearest at distance <= threshold, i < j, each pair once."""
    rows, cols = np.nonzero((graph.dist <= threshold) & (graph.idx >= 0))
    js = graph.idx[rows, cols]
    a, b = np.minimum(rows, js), np.maximum(rows, js)
    pairs = {(int(x), int(y)) for x, y in zip(a, b, strict=True) if x != y}
    return sorted(pairs)


def exact_pairs(hashes: Sequence[str | None]) -> list[tuple[int, int]]:
    """Each asset paired with the first asset of the same content hash."""
    first: dict[str, int] = {}
    pairs = []
    for n, h in enumerate(hashes):
        if not h:
            continue
        if h in first:
            pairs.append((first[h], n))
        else:
            first[h] = n
    return pairs


def groups(
    ids: Sequence[str], payloads: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[int, int]]
) -> list[Group]:
    """The connected components of `pairs` with two members or more, largest first."""
    uf = UnionFind(len(ids))
    for a, b in pairs:
        uf.union(a, b)
    members: dict[int, list[int]] = {}
    for n in sorted({x for pair in pairs for x in pair}):
        members.setdefault(uf.find(n), []).append(n)
    out = []
    for found in members.values():
        keep = min(found, key=lambda n: _rank(ids[n], payloads[n]))
        rest = sorted(ids[n] for n in found if n != keep)
        out.append(Group(group=group_id(ids[keep]), keep=ids[keep], ids=[ids[keep], *rest]))
    return sorted(out, key=lambda g: (-len(g.ids), g.keep))


def _rank(pid: str, payload: Mapping[str, Any]) -> tuple[Any, ...]:
    pixels = (payload.get("width") or 0) * (payload.get("height") or 0)
    return (-pixels, -(payload.get("size_bytes") or 0), str(payload.get("synced_at") or ""), pid)


def group_id(keep: str) -> str:
    """A group's id: stable for the same kept asset."""
    return "dup-" + hashlib.sha1(keep.encode()).hexdigest()[:12]
