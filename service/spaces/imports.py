"""Vector imports: the whole file checked first (refused whole, nothing written), then a job writes it.

A file with a malformed entry, a vector of the wrong dimension, NaN or infinite
components, an all-zero vector in a cosine space or an asset named twice is refused at
once (422 naming the line or row). Asset ids the catalog does not hold are not an error of
the file: the job counts them (`unknown_asset`), lists them with their line, and imports
the rest. Vectors are written with the index's vector update (the encoder's vector and the
payload stay as they are); importing again replaces them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from service.errors import InvalidQuery
from service.index.base import VectorIndex, VectorSpec
from service.index.spaces import resolve_space, rows_with_problems
from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext, execute
from service.spaces.formats import format_of, read_batches
from service.spaces.registry import import_lock, mark_present
from service.state import JobRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

COUNTS = ("received", "imported", "unknown_asset", "invalid")
MAX_ERRORS = 1000
PRESENCE = ("vectors", "vectors_stale")  # all a write reads of an asset


def import_dir(catalog: Catalog) -> Path:
    return catalog.settings.home / "vector-imports"


def begin_import(
    catalog: Catalog, *, space: str, filename: str | None, data: IO[bytes], run_here: bool = False
) -> JobRow:
    """Keep the upload, check all of it, and queue its job (202); InvalidQuery when refused.

    `run_here`: run the job to its end in this thread instead (the CLI without a server).
    """
    spec = _user_space(catalog, space)
    fmt = format_of(filename)
    job_id = str(uuid.uuid4())
    folder = import_dir(catalog)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}{Path(filename or '').suffix.lower()}"
    with open(path, "wb") as out:
        shutil.copyfileobj(data, out, length=1 << 20)
    try:
        total = validate(path, fmt, spec)
        job = catalog.jobs.create(
            "vector_import",
            options={"space": space, "path": str(path), "format": fmt, "total": total, "filename": filename},
            lock_key=import_lock(space),
            job_id=job_id,
            state="running" if run_here else "queued",
            owner=catalog.owner if run_here else None,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return execute(catalog, job) if run_here else job


def _user_space(catalog: Catalog, space: str) -> VectorSpec:
    from service.spaces.registry import get_space

    info = get_space(catalog, space)  # SpaceNotFound (404) for an unknown one
    if info.encoder:
        raise InvalidQuery(
            f"{space!r} is the encoder's space, which syncs fill; import into a user space "
            "(POST /api/v1/vector-spaces creates one)",
            path="space",
        )
    return resolve_space(catalog.index, space)


def validate(path: Path, fmt: str, spec: VectorSpec) -> int:
    """Check every entry; the number of entries, or InvalidQuery naming the first bad line."""
    unit = "line" if fmt == "jsonl" else "row"
    first_line: dict[str, int] = {}
    total = 0
    for batch in read_batches(path, fmt, dim=spec.dim):
        bad, zero = rows_with_problems(batch.vectors, spec)
        if len(bad):
            raise InvalidQuery("has NaN or infinite components", path=f"{unit} {batch.lines[bad[0]]}: vector")
        if len(zero):
            raise InvalidQuery(
                f"is all zeros, which has no direction under the cosine distance of {spec.name!r}",
                path=f"{unit} {batch.lines[zero[0]]}: vector",
            )
        for line, pid in zip(batch.lines.tolist(), batch.ids, strict=True):
            earlier = first_line.setdefault(pid, line)
            if earlier != line:
                raise InvalidQuery(
                    f"asset {pid} is also at {unit} {earlier}; name each asset once per file",
                    path=f"{unit} {line}",
                )
        total += len(batch.ids)
    if total == 0:
        raise InvalidQuery("holds no vectors", path="file")
    return total


def write_file(
    index: VectorIndex,
    *,
    path: Path,
    fmt: str,
    spec: VectorSpec,
    on_batch: Callable[[dict[str, int], list[dict[str, str]]], None] = lambda _c, _e: None,
) -> dict[str, int]:
    """Write a validated file's vectors into `spec`'s named vector, batch by batch; the counts.

    Each batch: which of its assets exist (one retrieve), their vectors (the engine's vector
    update: the encoder's vector and the payload stay), their `vectors` lists. `on_batch` sees
    the counts and errors so far after each (a job reports there, and may be stopped there).
    """
    unit = "line" if fmt == "jsonl" else "row"
    counts = dict.fromkeys(COUNTS, 0)
    errors: list[dict[str, str]] = []
    for batch in read_batches(path, fmt, dim=spec.dim):
        found = {r.id: r.payload for r in index.retrieve(batch.ids, fields=PRESENCE)}
        items = []
        for line, pid, vector in zip(batch.lines.tolist(), batch.ids, batch.vectors, strict=True):
            if pid in found:
                items.append((pid, vector))
                continue
            counts["unknown_asset"] += 1
            if len(errors) < MAX_ERRORS:
                errors.append({"key": f"{unit} {line}", "reason": f"no asset with id {pid} in the catalog"})
        index.update_vectors(spec.name, items)
        mark_present(index, {pid: found[pid] for pid, _ in items}, spec.name)
        counts["received"] += len(batch.ids)
        counts["imported"] += len(items)
        on_batch(counts, errors)
    return counts


def _run(ctx: JobContext) -> None:
    catalog, opts = ctx.catalog, ctx.options
    spec = resolve_space(catalog.index, opts["space"])
    total = max(1, int(opts.get("total") or 1))

    def report(counts: dict[str, int], errors: list[dict[str, str]]) -> None:
        progress = min(1.0, counts["received"] / total)
        ctx.report(counts=counts, progress=progress, errors=errors, error_count=counts["unknown_asset"])

    write_file(catalog.index, path=Path(opts["path"]), fmt=opts["format"], spec=spec, on_batch=report)
    catalog.index.flush()
    catalog.optimize_soon()  # the space's own search graph


def _closed(catalog: object, row: JobRow) -> None:
    """The upload is kept until its job ends (a restarted server resumes from it)."""
    path = (row.options or {}).get("path")
    if path:
        Path(path).unlink(missing_ok=True)


def import_summary(job: dict[str, Any]) -> str:
    c = job.get("counts", {})
    return (
        f"vector import {job['state']}: {c.get('received', 0)} received, {c.get('imported', 0)} imported, "
        f"{c.get('unknown_asset', 0)} unknown asset(s)"
    )


VECTOR_IMPORT = register(JobKind(name="vector_import", run=_run, counts=COUNTS, closed=_closed))
