"""What every export shares: the Exporter protocol, the target registry, the selection -> assets
resolution, asset URLs and metadata, and the step that records where each asset went.

An export runs in three steps, each an Exporter method:

    check(request)        the request's own shape, before anything is created (InvalidQuery)
    prepare(ctx)          reach the destination: a file's directory, Label Studio's auth and project
                          (ExportError when it cannot); nothing is recorded yet
    run(ctx, batches)     write or push the selected assets, calling ctx.record() only for
                          assets the destination holds
    close()               let go of the client prepare() opened

`check` and a first `prepare` run in the request (so a wrong token is an error, not a
failed export); `prepare` and `run` run again in the export's job (service/export/jobs.py),
which a restarted server resumes: `ctx.checkpoint` holds what an earlier run saved.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from connectors import base as connectors
from service.catalog.assets import asset_from_payload
from service.errors import InvalidQuery, LoupeError
from service.export.schemas import ExportCounts, ExportRequest
from service.index.filters import only_present, parse_filter, without_excluded
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog
    from service.jobs.runner import JobContext

PAGE = 500
MAX_ERRORS_SHOWN = 5
PROGRESS_EVERY_S = 0.5
# Modules whose import registers the targets; imported on first use so that the
# registry is complete however `service.export` was entered.
_TARGET_MODULES = ("service.export.files", "service.export.label_studio")


@dataclass(frozen=True, slots=True)
class Selected:
    """One selected asset (the public asset shape) and its search score, if any."""

    asset: dict[str, Any]
    score: float | None = None

    @property
    def id(self) -> str:
        return str(self.asset["id"])


@dataclass
class ExportContext:
    """One export's surroundings: the catalog, the request, its counts, and helpers."""

    catalog: Catalog
    request: ExportRequest
    export_id: str
    base_url: str  # Loupe's public URL, for content URLs
    counts: ExportCounts = field(default_factory=ExportCounts)
    errors: list[str] = field(default_factory=list)
    location: str | None = None
    _connectors: dict[str, connectors.Connector | None] = field(default_factory=dict)
    job: JobContext | None = None  # the export's job: progress goes there too, and a cancel comes back
    _reported_at: float = 0.0

    # -- URLs and fields ---------------------------------------------------

    def content_url(self, asset_id: str) -> str:
        return f"{self.base_url}/api/v1/assets/{asset_id}/content"

    def image_url(self, asset: Mapping[str, Any]) -> str:
        """A presigned URL when asked for and the source gives one, else Loupe's content URL."""
        expiry = self.request.presign_expiry_s
        conn = self._connector(str(asset.get("source"))) if expiry else None
        if expiry and isinstance(conn, connectors.PresignsUrls):
            record = connectors.AssetRecord(key=asset["key"], uri=asset["uri"], version="")
            url = conn.presigned_url(record, expires_s=expiry)
            if url:
                return url
        return self.content_url(str(asset["id"]))

    def _connector(self, source: str) -> connectors.Connector | None:
        if source not in self._connectors:
            try:
                self._connectors[source] = self.catalog.connector(source)
            except LoupeError:  # the source was removed since its assets were synced
                self._connectors[source] = None
        return self._connectors[source]

    def metadata(self, asset: Mapping[str, Any]) -> dict[str, Any]:
        """The asset's metadata, narrowed to `request.fields` when given (dotted paths allowed)."""
        meta = asset.get("metadata") or {}
        if self.request.fields is None:
            return dict(meta)
        out: dict[str, Any] = {}
        for name in self.request.fields:
            found, value = lookup(meta, name)
            if found:
                out[name] = value
        return out

    # -- bookkeeping ---------------------------------------------------------

    def fail(self, asset_id: str, reason: str) -> None:
        self.counts.failed += 1
        if len(self.errors) < 1000:
            self.errors.append(f"{asset_id}: {reason}")

    def record(self, assets: Sequence[Selected], *, project: str | None, **extra: Any) -> None:
        """Add {target, project, export_id, at} to each asset's `exports` payload."""
        entry = {
            "target": self.request.target,
            "project": project,
            "export_id": self.export_id,
            "at": rfc3339(datetime.now(UTC)),
            **extra,
        }
        record_exports(self.catalog, [a.id for a in assets], entry)

    def progress(self, *, force: bool = False) -> None:
        """Save the counts to the export row and its job (at most twice a second).

        Raises:
            JobCancelled: the export was cancelled; what was recorded so far stays recorded.
        """
        now = time.monotonic()
        if force or now - self._reported_at >= PROGRESS_EVERY_S:
            self._reported_at = now
            counts = self.counts.model_dump()
            self.catalog.state.update_export(self.export_id, counts=counts, location=self.location)
            if self.job is not None:
                self.job.report(counts=counts, progress=self.fraction_done())

    def fraction_done(self) -> float:
        c = self.counts
        return 0.0 if not c.selected else min(1.0, (c.sent + c.skipped + c.failed) / c.selected)

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What an earlier run of this export saved for a resumed one (empty on a first run)."""
        return self.job.checkpoint if self.job is not None else {}

    def save_checkpoint(self, **values: Any) -> None:
        if self.job is not None:
            self.job.save_checkpoint(**values)

    def detail(self) -> str | None:
        if not self.errors:
            return None
        shown = "; ".join(self.errors[:MAX_ERRORS_SHOWN])
        more = self.counts.failed - min(len(self.errors), MAX_ERRORS_SHOWN)
        return f"{self.counts.failed} asset(s) failed: {shown}" + (f"; and {more} more" if more > 0 else "")


class Exporter(Protocol):
    """A labeling target. One instance per export (it may keep a client or a file open)."""

    target: str

    def check(self, request: ExportRequest) -> None:
        """Refuse a request this target cannot serve.

        Raises:
            InvalidQuery: the request is wrong for this target; the message names the field.
        """
        ...

    def prepare(self, ctx: ExportContext) -> None:
        """Reach the destination (and set ctx.location when it is known); records nothing.

        Raises:
            ExportError: the destination cannot be reached, refuses the credentials, or lacks
                the named project.
            InvalidQuery: the destination as given cannot be used (e.g. a missing directory).
        """
        ...

    def run(self, ctx: ExportContext, batches: Iterable[list[Selected]]) -> None:
        """Send every batch, count sent/skipped/failed in ctx.counts, ctx.record() what landed.

        Raises:
            ExportError: the destination failed as a whole (what landed before stays recorded).
        """
        ...

    def close(self) -> None:
        """Let go of what prepare() opened (a client); safe to call more than once."""
        ...


# -- registry --------------------------------------------------------------

_REGISTRY: dict[str, Callable[[], Exporter]] = {}


def register(target: str) -> Callable[[Callable[[], Exporter]], Callable[[], Exporter]]:
    """Class decorator: make `target` name this exporter."""

    def add(factory: Callable[[], Exporter]) -> Callable[[], Exporter]:
        _REGISTRY[target] = factory
        return factory

    return add


def targets() -> list[str]:
    for module in _TARGET_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY)


def exporter_for(target: str) -> Exporter:
    """A new exporter for `target`; InvalidQuery naming the valid targets otherwise."""
    valid = targets()
    if target not in _REGISTRY:
        raise InvalidQuery(
            f"unknown export target {target!r}; valid targets: {', '.join(valid)}", path="target"
        )
    return _REGISTRY[target]()


# -- selection -------------------------------------------------------------


def validate_selection(request: ExportRequest, *, catalog: Catalog | None = None) -> None:
    """Check ids, filters and the selection up front, so a bad request is a 4xx and not a failed export."""
    # Asked of the index, not of the selections' table: a selection is the assets carrying its name.
    if request.selection is not None and catalog is not None:
        if catalog.index.count(parse_filter({"selections": request.selection})) == 0:
            raise InvalidQuery(
                f"no asset is in a selection named {request.selection!r} (one still running has none "
                "yet); GET /api/v1/selections lists them",
                path="selection",
            )
    for i, asset_id in enumerate(request.ids or []):
        try:
            uuid.UUID(asset_id)
        except ValueError:
            raise InvalidQuery(
                f"{asset_id!r} is not an asset id (asset ids are UUIDs)", path=f"ids[{i}]"
            ) from None
    if request.filter is not None:
        parse_filter(request.filter)
    if request.search is not None:
        parse_filter(request.search.filter, path="search.filter")


def select(catalog: Catalog, request: ExportRequest, *, ctx: ExportContext) -> Iterator[list[Selected]]:
    """The selected assets in batches, counting them; unknown ids count as failed."""
    if request.search is not None:
        hits, _ = catalog.search(request.search)
        batches: Iterable[list[Selected]] = [[Selected(h["asset"], float(h["score"])) for h in hits]]
    elif request.ids is not None:
        batches = _by_ids(catalog, request.ids[: request.limit], ctx=ctx)
    elif request.selection is not None:
        batches = _by_filter(catalog, {"selections": request.selection}, limit=request.limit or None)
    else:
        batches = _by_filter(catalog, request.filter or {}, limit=request.limit or None)
    for batch in batches:
        ctx.counts.selected += len(batch)
        if batch:
            yield batch


def _by_ids(catalog: Catalog, ids: Sequence[str], *, ctx: ExportContext) -> Iterator[list[Selected]]:
    unique = list(dict.fromkeys(ids))  # a repeated id is one asset, exported once
    for start in range(0, len(unique), PAGE):
        chunk = unique[start : start + PAGE]
        found = {r.id: r for r in catalog.index.retrieve(chunk)}
        for asset_id in chunk:
            if asset_id not in found:
                ctx.counts.selected += 1
                ctx.fail(asset_id, "no such asset in the catalog")
        yield [Selected(asset_from_payload(i, found[i].payload)) for i in chunk if i in found]


def _by_filter(catalog: Catalog, raw: dict[str, Any], *, limit: int | None) -> Iterator[list[Selected]]:
    # Like a search, a filter alone leaves out assets gone from their source unless it asks for them.
    flt = without_excluded(only_present(raw))
    cursor: str | None = None
    left = limit
    while left is None or left > 0:
        page, cursor = catalog.list_assets(filter=flt, limit=min(PAGE, left or PAGE), cursor=cursor)
        if left is not None:
            left -= len(page)
        yield [Selected(a) for a in page]
        if cursor is None:
            return


def lookup(meta: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """`meta[name]`, walking dots (`camera.model`); `meta.`/`metadata.` prefixes are optional."""
    for prefix in ("meta.", "metadata."):
        if name.startswith(prefix) and name[len(prefix) :].split(".")[0] in meta:
            name = name[len(prefix) :]
    if name in meta:
        return True, meta[name]
    node: Any = meta
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


# -- recording ---------------------------------------------------------------


def record_exports(catalog: Catalog, ids: Sequence[str], entry: Mapping[str, Any]) -> None:
    """Append `entry` to the `exports` list of each asset.

    The index merges payload keys, so each asset's list is read back first and
    assets with the same history are written together (usually one write per batch).
    """
    groups: dict[str, tuple[list[Any], list[str]]] = {}
    for start in range(0, len(ids), PAGE):
        for rec in catalog.index.retrieve(list(ids[start : start + PAGE])):
            old = list(rec.payload.get("exports") or [])
            key = json.dumps(old, sort_keys=True, default=str)
            groups.setdefault(key, (old, []))[1].append(rec.id)
    for old, members in groups.values():
        catalog.index.set_payload(members, {"exports": [*old, dict(entry)]})


def already_exported(asset: Mapping[str, Any], *, target: str, project: str, **match: Any) -> bool:
    """Whether the asset's `exports` history holds this target and project (and `match` keys, where set)."""
    for entry in asset.get("exports") or []:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("target") != target or str(entry.get("project")) != project:
            continue
        if all(entry.get(k) in (None, v) for k, v in match.items()):
            return True
    return False
