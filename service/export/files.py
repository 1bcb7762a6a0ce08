"""File targets: manifests and import files for labeling tools, written to a path or kept for download.

    jsonl              one JSON object per asset: id, source, key, uri, url, score, media_type,
                       width, height, metadata
    csv                the same columns, metadata flattened to `meta.<key>` columns (non-scalar
                       values as JSON)
    label-studio-json  a JSON array of Label Studio tasks (the live target's task shape, for the
                       default label config), for Label Studio's file import
    labelbox           Labelbox data-row NDJSON: row_data (the image URL), global_key (the asset
                       id), external_id (source/key), media_type, metadata_fields [{name, value}]
    coco               a COCO image list {"info", "licenses", "images", "annotations": [],
                       "categories": []}, which CVAT and COCO tools import; image ids are 1..N,
                       file_name is the asset key, `loupe_id` links back

A file is written beside its destination and renamed into place when complete, and
assets are recorded as exported (project = the path) only then.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from service.errors import ExportError, InvalidQuery, LoupeError
from service.export import label_studio_tasks as tasks
from service.export.base import ExportContext, Selected, register
from service.export.schemas import ExportRequest
from service.timestamps import rfc3339

MANIFEST_COLUMNS = ("id", "source", "key", "uri", "url", "score", "media_type", "width", "height")


class FileFormat(Protocol):
    """One file layout; an instance writes one file."""

    suffix: str
    media_type: str

    def begin(self, out: IO[str], ctx: ExportContext) -> None: ...
    def row(self, out: IO[str], item: Selected, ctx: ExportContext) -> None: ...
    def end(self, out: IO[str], ctx: ExportContext) -> None: ...


def manifest_row(item: Selected, ctx: ExportContext) -> dict[str, Any]:
    a = item.asset
    return {
        "id": item.id,
        "source": a.get("source"),
        "key": a.get("key"),
        "uri": a.get("uri"),
        "url": ctx.image_url(a),
        "score": item.score,
        "media_type": a.get("media_type"),
        "width": a.get("width"),
        "height": a.get("height"),
        "metadata": ctx.metadata(a),
    }


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, allow_nan=False)


class JsonlFormat:
    suffix, media_type = ".jsonl", "application/x-ndjson"

    def begin(self, out: IO[str], ctx: ExportContext) -> None:
        pass

    def row(self, out: IO[str], item: Selected, ctx: ExportContext) -> None:
        out.write(_json(manifest_row(item, ctx)) + "\n")

    def end(self, out: IO[str], ctx: ExportContext) -> None:
        pass


class CsvFormat:
    """Rows are spooled as JSON lines, because the metadata columns are known only at the end."""

    suffix, media_type = ".csv", "text/csv"

    def __init__(self) -> None:
        self._keys: dict[str, None] = {}

    def begin(self, out: IO[str], ctx: ExportContext) -> None:
        self._spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")
        for name in ctx.request.fields or []:
            self._keys[name] = None

    def row(self, out: IO[str], item: Selected, ctx: ExportContext) -> None:
        row = manifest_row(item, ctx)
        self._keys.update(dict.fromkeys(row["metadata"]))
        self._spool.write(_json(row) + "\n")

    def end(self, out: IO[str], ctx: ExportContext) -> None:
        columns = [*MANIFEST_COLUMNS, *(f"meta.{k}" for k in self._keys)]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        self._spool.seek(0)
        for line in self._spool:
            row = json.loads(line)
            meta = row.pop("metadata")
            row.update({f"meta.{k}": _cell(v) for k, v in meta.items()})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        self._spool.close()


def _cell(value: Any) -> Any:
    return _json(value) if isinstance(value, dict | list) else value


class JsonArrayFormat:
    """A JSON array written element by element, so memory stays flat."""

    suffix, media_type = ".json", "application/json"
    _first = True

    def begin(self, out: IO[str], ctx: ExportContext) -> None:
        out.write(self.opening())

    def opening(self) -> str:
        return "["

    def closing(self, ctx: ExportContext) -> str:
        return "\n]\n"

    def element(self, item: Selected, ctx: ExportContext) -> dict[str, Any]:
        raise NotImplementedError

    def row(self, out: IO[str], item: Selected, ctx: ExportContext) -> None:
        text = _json(self.element(item, ctx))  # built first: a failing asset writes nothing
        out.write(("\n" if self._first else ",\n") + text)
        self._first = False

    def end(self, out: IO[str], ctx: ExportContext) -> None:
        out.write(self.closing(ctx))


class LabelStudioJsonFormat(JsonArrayFormat):
    def element(self, item: Selected, ctx: ExportContext) -> dict[str, Any]:
        meta = item.asset.get("metadata") or {}
        return tasks.build_task(
            asset=item.asset,
            image_url=ctx.image_url(item.asset),
            score=item.score,
            metadata=ctx.metadata(item.asset),
            shape=tasks.TaskShape(),
            prediction=tasks.model_label(meta, None),
        )


class CocoFormat(JsonArrayFormat):
    def __init__(self) -> None:
        self._next_id = 1

    def opening(self) -> str:
        info = {
            "description": "Loupe export",
            "version": "1.0",
            "year": datetime.now(UTC).year,
            "date_created": rfc3339(datetime.now(UTC)),
        }
        return (
            '{"info": ' + _json(info) + ', "licenses": [], "categories": [], "annotations": [], "images": ['
        )

    def closing(self, ctx: ExportContext) -> str:
        return "\n]}\n"

    def element(self, item: Selected, ctx: ExportContext) -> dict[str, Any]:
        a = item.asset
        if not a.get("width") or not a.get("height"):
            raise ValueError("its image size is unknown (sync the source again)")
        image = {
            "id": self._next_id,
            "file_name": a.get("key"),
            "width": int(a["width"]),
            "height": int(a["height"]),
            "coco_url": ctx.image_url(a),
            "date_captured": a.get("modified_at") or "",
            "loupe_id": item.id,
            "source": a.get("source"),
            "metadata": ctx.metadata(a),
        }
        if item.score is not None:
            image["score"] = item.score
        self._next_id += 1
        return image


class LabelboxFormat(JsonlFormat):
    media_type = "application/x-ndjson"
    suffix = ".ndjson"

    def row(self, out: IO[str], item: Selected, ctx: ExportContext) -> None:
        a = item.asset
        fields = [
            {"name": k, "value": _metadata_value(v)} for k, v in ctx.metadata(a).items() if v is not None
        ]
        row = {
            "row_data": ctx.image_url(a),
            "global_key": item.id,
            "external_id": f"{a.get('source')}/{a.get('key')}",
            "media_type": "IMAGE",
            "metadata_fields": fields,
        }
        out.write(_json(row) + "\n")


def _metadata_value(value: Any) -> Any:
    # Labelbox metadata holds strings, numbers and datetimes; anything else goes as JSON text.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return value
    return _json(value)


class FileExporter:
    """Writes one file in a FileFormat; the registry makes one per target."""

    def __init__(self, target: str, make_format: Callable[[], FileFormat]) -> None:
        self.target = target
        self.format = make_format()
        self.dest: Path | None = None

    def check(self, request: ExportRequest) -> None:
        if request.label_studio is not None:
            raise InvalidQuery(f"applies to target label-studio, not {self.target}", path="label_studio")
        if request.path is not None:
            _check_destination(Path(request.path), overwrite=request.overwrite)

    def prepare(self, ctx: ExportContext) -> None:
        if ctx.request.path:
            self.dest = Path(ctx.request.path)
            ctx.location = str(self.dest)
        else:
            self.dest = download_path(ctx.catalog.settings.home, ctx.export_id, self.format.suffix)
            try:
                self.dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ExportError(f"cannot create {self.dest.parent}: {exc.strerror or exc}") from None
            ctx.location = f"{ctx.base_url}/api/v1/exports/{ctx.export_id}/download"

    def close(self) -> None:
        pass  # the file is opened and closed within run()

    def run(self, ctx: ExportContext, batches: Iterable[list[Selected]]) -> None:
        assert self.dest is not None, "prepare() first"
        written: list[Selected] = []
        fd, tmp = tempfile.mkstemp(dir=self.dest.parent, prefix=f".{self.dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                self.format.begin(out, ctx)
                for batch in batches:
                    written.extend(self._rows(out, batch, ctx))
                    ctx.progress()
                self.format.end(out, ctx)
            os.replace(tmp, self.dest)
        except OSError as exc:
            raise ExportError(f"cannot write {self.dest}: {exc.strerror or exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        ctx.counts.sent = len(written)
        for start in range(0, len(written), 1000):
            ctx.record(written[start : start + 1000], project=ctx.request.path, location=ctx.location)

    def _rows(self, out: IO[str], batch: list[Selected], ctx: ExportContext) -> list[Selected]:
        done: list[Selected] = []
        for item in batch:
            try:
                self.format.row(out, item, ctx)
            except (ValueError, TypeError) as exc:  # one asset that cannot be written is a report line
                ctx.fail(item.id, str(exc))
                continue
            except LoupeError as exc:  # e.g. its source refused to presign a URL
                ctx.fail(item.id, exc.detail)
                continue
            done.append(item)
        return done


def _check_destination(dest: Path, *, overwrite: bool) -> None:
    """A path the server can write: absolute, in an existing writable directory, new unless
    `overwrite` (an API caller must not replace files it did not mean to)."""
    if not dest.is_absolute():
        raise InvalidQuery(f"must be an absolute path, got {str(dest)!r}", path="path")
    if not dest.parent.is_dir():
        raise InvalidQuery(f"directory {dest.parent} does not exist; create it first", path="path")
    if dest.is_dir():
        raise InvalidQuery(f"{dest} is a directory; name a file", path="path")
    if dest.exists() and not overwrite:
        raise InvalidQuery(
            f"{dest} exists; pass overwrite: true to replace it, or name a new file", path="path"
        )
    if not os.access(dest.parent, os.W_OK):
        raise InvalidQuery(f"directory {dest.parent} is not writable", path="path")


def download_path(home: Path, export_id: str, suffix: str) -> Path:
    return home / "exports" / f"{export_id}{suffix}"


FORMATS: dict[str, Callable[[], FileFormat]] = {
    "jsonl": JsonlFormat,
    "csv": CsvFormat,
    "label-studio-json": LabelStudioJsonFormat,
    "labelbox": LabelboxFormat,
    "coco": CocoFormat,
}


def _factory(target: str, make: Callable[[], FileFormat]) -> Callable[[], FileExporter]:
    return lambda: FileExporter(target, make)


for _target, _make in FORMATS.items():
    register(_target)(_factory(_target, _make))
