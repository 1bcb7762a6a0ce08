"""The space registry: user spaces recorded in the state store, their vectors in the index.

The index is the truth about dimension and distance (its named vectors); a registry row
adds what the index does not know (who made it, with which model). The encoder's space is
never a row: it is the encoder's named vector, listed first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.errors import Conflict, NotFound
from service.index.base import Condition, Distance, Filter, HasVector, VectorIndex, VectorSpec
from service.spaces.schemas import VectorSpacePublic
from service.state import SpaceRow, utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

SCROLL = 4096


class SpaceNotFound(NotFound):
    pass


class SpaceExists(Conflict):
    pass


def import_lock(name: str) -> str:
    """The lock key that keeps one import (or model sync) of a space running at a time."""
    return f"space:{name}"


def list_spaces(catalog: Catalog) -> list[VectorSpacePublic]:
    """The encoder's space, then every user space by name, with their counts."""
    index, encoder = catalog.index, catalog.encoder
    out = [
        _public(
            index,
            VectorSpec(index.vector_name, index.dim, Distance.cosine),
            encoder=True,
            model=encoder.model_name,
            pretrained=encoder.pretrained,
        )
    ]
    specs = index.vector_specs()
    with catalog.state.session() as s:
        rows = list(s.scalars(select(SpaceRow).order_by(SpaceRow.name)))
    for row in rows:
        spec = specs.get(row.name)
        if spec is not None:  # a row whose vectors another process removed is left out
            out.append(_public(index, spec, row=row))
    return out


def get_space(catalog: Catalog, name: str) -> VectorSpacePublic:
    for space in list_spaces(catalog):
        if space.name == name:
            return space
    raise SpaceNotFound(f"no vector space named {name!r}; GET /api/v1/vector-spaces lists them")


def create_space(
    catalog: Catalog,
    *,
    name: str,
    dim: int,
    distance: str,
    model: str | None = None,
    pretrained: str | None = None,
) -> VectorSpacePublic:
    """Record a user space and give every point room for its vectors; SpaceExists when taken."""
    spec = VectorSpec(name, dim, Distance(distance))
    if name in catalog.index.vector_specs():
        raise SpaceExists(
            f"a vector space named {name!r} exists already; pick another name or remove it first"
        )
    row = SpaceRow(
        name=name, dim=dim, distance=distance, model=model, pretrained=pretrained, created_at=utcnow()
    )
    try:
        with catalog.state.session() as s:
            s.add(row)
    except IntegrityError:
        raise SpaceExists(f"a vector space named {name!r} exists already; pick another name") from None
    try:
        catalog.index.add_vector(spec)
    except BaseException:
        with catalog.state.session() as s:
            stored = s.get(SpaceRow, name)
            if stored is not None:
                s.delete(stored)
        raise
    return _public(catalog.index, spec, row=row)


def delete_space(catalog: Catalog, name: str) -> None:
    """Drop a user space and its vectors; the encoder's space cannot be removed."""
    index = catalog.index
    if name == index.vector_name:
        raise Conflict(
            f"{name!r} is the encoder's space: it holds the vectors text and image search use; "
            "it cannot be removed (remove a user space instead)"
        )
    with catalog.state.session() as s:
        row = s.get(SpaceRow, name)
    if row is None:
        raise SpaceNotFound(f"no vector space named {name!r}; GET /api/v1/vector-spaces lists them")
    active = catalog.jobs.holder(import_lock(name))
    if active is not None:
        raise Conflict(
            f"job {active.id} is writing vectors of {name!r}; cancel it or wait, then remove the space"
        )
    index.remove_vector(name)
    forget_space(index, name)
    with catalog.state.session() as s:
        stored = s.get(SpaceRow, name)
        if stored is not None:
            s.delete(stored)


def forget_space(index: VectorIndex, name: str) -> None:
    """Take `name` out of every asset's `vectors` and `vectors_stale` lists."""
    for key in ("vectors", "vectors_stale"):
        flt = Filter(must=[Condition(key=key, eq=name)])
        while True:
            recs, _ = index.scroll(filter=flt, limit=SCROLL, fields=["vectors", "vectors_stale"])
            if not recs:
                break
            _rewrite(index, ((r.id, r.payload) for r in recs), drop=name)


def mark_present(index: VectorIndex, payloads: Mapping[str, Mapping[str, Any]], space: str) -> None:
    """Record on these assets that they have a fresh vector in `space`."""
    _rewrite(index, payloads.items(), add=space)


def _rewrite(
    index: VectorIndex,
    items: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    add: str | None = None,
    drop: str | None = None,
) -> None:
    # Assets share few distinct lists, so one set_payload per distinct result, over many ids.
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = defaultdict(list)
    for pid, payload in items:
        have = [v for v in payload.get("vectors") or [] if v != drop]
        stale = [v for v in payload.get("vectors_stale") or [] if v not in (drop, add)]
        if add is not None and add not in have:
            have.append(add)
        groups[(tuple(have), tuple(stale))].append(pid)
    for (have_t, stale_t), ids in groups.items():
        index.set_payload(ids, {"vectors": list(have_t), "vectors_stale": list(stale_t)})


def user_spaces(index: VectorIndex) -> Sequence[str]:
    """The named vectors beside the encoder's (user spaces, and earlier encoders' vectors)."""
    return [name for name in index.vector_specs() if name != index.vector_name]


def _public(
    index: VectorIndex,
    spec: VectorSpec,
    *,
    row: SpaceRow | None = None,
    encoder: bool = False,
    model: str | None = None,
    pretrained: str | None = None,
) -> VectorSpacePublic:
    stale = 0 if encoder else index.count(Filter(must=[Condition(key="vectors_stale", eq=spec.name)]))
    return VectorSpacePublic(
        name=spec.name,
        dim=spec.dim,
        distance=spec.distance.value,
        encoder=encoder,
        model=model if row is None else row.model,
        pretrained=pretrained if row is None else row.pretrained,
        count=index.count(Filter(must=[HasVector(spec.name)])),
        stale=stale,
        created_at=None if row is None else rfc3339(row.created_at),
    )
