"""A second model fills a user space: a source's catalogued assets encoded by another open_clip model.

`loupe sync NAME --space S --model M [--pretrained P]` (or POST /sources/{name}/sync with
`space`, `model`, `pretrained`) runs the `space_sync` job: the space is created with the
model's dimension on first use (cosine; the model is recorded on it), then every asset of
the source that lacks a fresh vector in it is read, decoded, encoded by that model and
written as the space's named vector only: the encoder's vector and the payload stay as they
are. Assets the source changed since (marked stale) are encoded again; `full` redoes all.
The space keeps the model it was made with: another model needs another space.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from connectors.base import AssetRecord
from service.catalog.decode import decode
from service.catalog.jobs import sync_lock
from service.errors import Conflict, InvalidConfig, InvalidQuery, LoupeError
from service.index.base import Condition, Filter, VectorSpec
from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext, execute
from service.spaces.registry import create_space, mark_present
from service.state import JobRow, SpaceRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

COUNTS = ("seen", "added", "updated", "unchanged", "failed")
FIELDS = ("key", "uri", "version", "media_type", "vectors", "vectors_stale")
MAX_ERRORS = 1000


def space_sync_options(
    catalog: Catalog, source: str, *, space: str | None, model: str | None, pretrained: str | None, full: bool
) -> dict[str, Any]:
    """Check what can be checked before the model loads; the job's options."""
    if space is None or model is None:
        missing = "model" if model is None else "space"
        raise InvalidQuery(
            "a sync into a vector space needs both `space` (the user space) and `model` (the open_clip "
            "model that fills it)",
            path=missing,
        )
    catalog.state.get_source(source)
    if space == catalog.index.vector_name:
        raise Conflict(f"{space!r} is the encoder's space; name a user space for the second model")
    with catalog.state.session() as s:
        row = s.get(SpaceRow, space)
    if row is not None and (row.model, row.pretrained) != (model, pretrained):
        weights = row.pretrained or "no weights"
        made = f"the model {row.model} ({weights})" if row.model else "imported vectors"
        raise Conflict(f"the space {space!r} holds vectors of {made}; sync {model} into another space")
    return {"space": space, "model": model, "pretrained": pretrained, "full": full}


def submit_space_sync(catalog: Catalog, source: str, **options: Any) -> JobRow:
    """Queue the job (202); Conflict while a sync of the source is queued or running."""
    opts = space_sync_options(catalog, source, **options)
    return catalog.jobs.create("space_sync", source=source, options=opts, lock_key=sync_lock(source))


def run_space_sync_now(catalog: Catalog, source: str, **options: Any) -> JobRow:
    """Run it to its end in this thread (the CLI without a server)."""
    opts = space_sync_options(catalog, source, **options)
    job = catalog.jobs.create(
        "space_sync",
        source=source,
        options=opts,
        lock_key=sync_lock(source),
        state="running",
        owner=catalog.owner,
    )
    return execute(catalog, job)


def _run(ctx: JobContext) -> None:
    from service.encoder import load_encoder  # torch: only when a space sync runs

    catalog, opts = ctx.catalog, ctx.options
    settings = catalog.settings.model_copy(update={"model": opts["model"], "pretrained": opts["pretrained"]})
    encoder = load_encoder(settings)
    spec = _ensure_space(catalog, opts, dim=encoder.dim)
    connector = catalog.connector(ctx.job.source)
    counts = dict.fromkeys(COUNTS, 0)
    errors: list[dict[str, str]] = []
    todo = _todo(catalog, ctx.job.source, spec.name, full=bool(opts.get("full")), counts=counts)
    ctx.report(counts=counts, progress=0.0 if todo else 1.0)
    batch = catalog.settings.ingest.batch_size
    max_pixels = catalog.settings.ingest.max_pixels

    def prepare(rec: Any) -> Any:
        record = AssetRecord(key=rec.payload["key"], uri=rec.payload["uri"], version="")
        try:
            blob = connector.fetch(record)
            return encoder.prepare(decode(blob.data, target=encoder.image_size, max_pixels=max_pixels).image)
        except LoupeError as exc:
            return exc

    with ThreadPoolExecutor(catalog.settings.ingest.fetch_workers, thread_name_prefix="loupe-space") as pool:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            ready = []
            for rec, tensor in zip(chunk, pool.map(prepare, chunk), strict=True):
                if isinstance(tensor, LoupeError):
                    counts["failed"] += 1
                    if len(errors) < MAX_ERRORS:
                        errors.append({"key": rec.payload["key"], "reason": tensor.detail})
                else:
                    ready.append((rec, tensor))
            if ready:
                vectors = encoder.encode_prepared([t for _, t in ready])
                items = [(r.id, v) for (r, _), v in zip(ready, vectors, strict=True)]
                catalog.index.update_vectors(spec.name, items)
                mark_present(catalog.index, {r.id: r.payload for r, _ in ready}, spec.name)
            for rec, _ in ready:
                counts["updated" if spec.name in (rec.payload.get("vectors") or []) else "added"] += 1
            ctx.report(
                counts=counts,
                progress=min(1.0, (start + len(chunk)) / max(1, len(todo))),
                errors=errors,
                error_count=counts["failed"],
            )
    catalog.index.flush()
    catalog.optimize_soon()


def _ensure_space(catalog: Catalog, opts: dict[str, Any], *, dim: int) -> VectorSpec:
    name = opts["space"]
    spec = catalog.index.vector_specs().get(name)
    if spec is None:
        create_space(
            catalog, name=name, dim=dim, distance="cosine", model=opts["model"], pretrained=opts["pretrained"]
        )
        return catalog.index.vector_specs()[name]
    if spec.dim != dim:
        raise InvalidConfig(f"the space {name!r} has dimension {spec.dim}, but {opts['model']} makes {dim}")
    return spec


def _todo(catalog: Catalog, source: str, space: str, *, full: bool, counts: dict[str, int]) -> list[Any]:
    """The source's present assets that need a vector: lacking one, stale, or all with `full`."""
    flt = Filter(must=[Condition(key="source", eq=source), Condition(key="status", eq="ok")])
    out: list[Any] = []
    cursor: str | None = None
    while True:
        recs, cursor = catalog.index.scroll(filter=flt, limit=4096, cursor=cursor, fields=FIELDS)
        for rec in recs:
            counts["seen"] += 1
            fresh = space in (rec.payload.get("vectors") or []) and space not in (
                rec.payload.get("vectors_stale") or []
            )
            if fresh and not full:
                counts["unchanged"] += 1
            else:
                out.append(rec)
        if cursor is None:
            return out


SPACE_SYNC = register(JobKind(name="space_sync", run=_run, counts=COUNTS, lane="ingest"))
