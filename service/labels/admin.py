"""What the API and the CLI do with label sets: create, list, remove, and start imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service import collector
from service.errors import Conflict, InvalidQuery
from service.labels import formats, imports, payload, scores
from service.labels.formats.loupe import parse_list
from service.labels.schemas import AnnotationImport, LabelSetCreate, LabelSetPublic
from service.labels.store import LabelSetStore, set_public
from service.state import JobRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def create(catalog: Catalog, body: LabelSetCreate) -> LabelSetPublic:
    """A new, empty set with its payload indexes; LabelSetExists (409) when the name is taken.

    The indexes are made now, before any import: creating one reads every point, so an
    import into an existing set does not pay for them, and the bulk load goes into them.
    """
    row = LabelSetStore(catalog.state).create(body)
    payload.ensure_indexes(catalog.index, body.name)
    return set_public(row)


def get(catalog: Catalog, name: str) -> LabelSetPublic:
    return set_public(LabelSetStore(catalog.state).get(name))


def all_sets(catalog: Catalog) -> list[LabelSetPublic]:
    return [set_public(r) for r in LabelSetStore(catalog.state).all()]


def remove(catalog: Catalog, name: str) -> None:
    """Forget the set, remove `labels.<name>` from every asset (one delete by filter) and drop
    its probability vectors (service/catalog/label_scores.py)."""
    sets = LabelSetStore(catalog.state)
    sets.get(name)
    active = catalog.jobs.holder(imports.import_lock(name))
    if active is not None:
        raise Conflict(
            f"an import into label set {name!r} is {active.state} (job {active.id}); "
            "remove the set once it has finished"
        )
    payload.remove_set(catalog.index, name)
    catalog.index.flush()
    scores.drop(catalog.state, name)
    sets.remove(name)


def begin_json(catalog: Catalog, name: str, body: AnnotationImport, *, here: bool = False) -> JobRow:
    """Start the import a JSON body asks for: inline records, a metadata field, or Label Studio."""
    modes = [m for m in ("annotations", "from_field", "label_studio") if getattr(body, m) is not None]
    if len(modes) != 1:
        raise InvalidQuery(
            "give exactly one of `annotations` (with format loupe), `from_field` or `label_studio`",
            path="body",
        )
    if body.annotations is not None:
        if body.format not in (None, "loupe"):
            raise InvalidQuery("inline annotations are in the loupe format", path="format")
        return imports.begin_records(
            catalog, name, parse_list(body.annotations), source=body.source, here=here
        )
    if body.from_field is not None:
        return imports.begin_field(catalog, name, body.from_field, here=here)
    assert body.label_studio is not None
    ls = body.label_studio
    return imports.begin_label_studio(
        catalog, name, url=ls.url, token=ls.token.get_secret_value(), project_id=ls.project_id, here=here
    )


def begin_upload(
    catalog: Catalog, name: str, data: bytes, *, fmt: str, source: str | None, here: bool = False
) -> JobRow:
    """Parse an uploaded file of format `fmt` whole, then start its import."""
    row = LabelSetStore(catalog.state).get(name)
    with collector.paused():
        records = formats.parse(
            fmt, data, task=row.task, classes=list(row.classes) if row.classes_declared else None
        )
        return imports.begin_records(catalog, name, records, source=source, here=here)
