"""The s3 connector: every image under a bucket prefix on AWS S3 or any S3-compatible store.

    connectors.s3_config   S3Connection (endpoint, region, credentials, timeouts, tries) and S3Config
    connectors.s3_client   S3Client: one thread-safe boto3 client per connection, calls retried
    connectors.s3_errors   botocore's errors as ours, marked transient or terminal
    here                   S3Connector, the `s3` kind: `check`, `list` (no GETs but one for a
                           manifest), `fetch`, `presigned_url`

What an asset's metadata holds after `fetch` (later sources win on a clash):
user metadata (`x-amz-meta-*`, flat, names lower-cased), then the manifest row,
then the sidecar JSON; S3's own facts sit under `"s3"`: bucket, etag,
storage_class, content_type, version_id, and `tags` when `object_tags` is on.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing
from connectors.s3_client import S3Client, S3Object
from connectors.s3_config import S3Config
from connectors.sidecar import (
    MAX_SIDECAR_BYTES,
    is_image_key,
    media_type,
    parse_sidecar,
    sidecar_keys,
)
from service.errors import AssetError, SourceError

MAX_MANIFEST_BYTES = 256 << 20


def _row_digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _parse_manifest(raw: bytes, *, is_csv: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL or CSV manifest; ValueError names what is wrong."""
    text = raw.decode("utf-8-sig")
    if is_csv:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            # a blank cell means no value, not an empty string
            yield reader.line_num, {k: v for k, v in row.items() if k and v not in (None, "")}
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number} is not a JSON object")
        yield number, row


class S3Connector:
    """Lists image objects under a bucket prefix; fetches them with a shared S3Client.

    A record's version is `etag:size`, plus `+<sidecar etag>` and `+m<row digest>`
    when a sidecar or manifest row exists, so a changed sidecar or row re-embeds.
    The listing is read whole before records are yielded because sidecars may be
    listed after their image and stores differ in listing order.
    """

    kind: ClassVar[str] = "s3"
    config_model: ClassVar[type[ConnectorConfig]] = S3Config

    def __init__(self, name: str, config: S3Config) -> None:
        self.name = name
        self.config = config
        self.client = S3Client.from_config(config, pool_size=config.max_concurrency + 2)

    def check(self) -> None:
        self.client.probe(self.config.bucket, prefix=self.config.prefix)

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        # S3 has no change feed we can page through, so every listing is full and complete.
        return Listing(records=self._records(), complete=True)

    def fetch(self, record: AssetRecord) -> Blob:
        bucket = self.config.bucket
        blob = self.client.get(bucket, record.key)
        metadata: dict[str, Any] = {**blob.metadata, **record.metadata}
        sidecar_key = record.hints.get("sidecar")
        if sidecar_key:
            metadata.update(self._sidecar(sidecar_key))
        facts = {**record.metadata.get("s3", {}), **blob.metadata.get("s3", {})}
        if self.config.object_tags:
            facts["tags"] = self.client.tags(bucket, record.key)
        metadata["s3"] = facts
        return Blob(data=blob.data, metadata=metadata, media_type=blob.media_type)

    def presigned_url(self, record: AssetRecord, *, expires_s: int) -> str | None:
        """A GET URL for the asset when the source allows presigned URLs, else None.

        The URL lives `expires_s` seconds, cut to the source's `presign_expiry_s`.
        """
        if not self.config.allow_presigned:
            return None
        expires = min(expires_s, self.config.presign_expiry_s)
        return self.client.presign(self.config.bucket, record.key, expires_s=expires)

    # -- listing ---------------------------------------------------------

    def _wanted(self, key: str) -> bool:
        relative = key[len(self.config.prefix) :].lstrip("/")

        def matches(patterns: list[str]) -> bool:
            return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(key, p) for p in patterns)

        return matches(self.config.include) and not matches(self.config.exclude)

    def _records(self) -> Iterator[AssetRecord]:
        manifest = self._manifest() if self.config.manifest else {}
        images: list[S3Object] = []
        json_etags: dict[str, str] = {}
        for obj in self.client.objects(self.config.bucket, prefix=self.config.prefix):
            if is_image_key(obj.key):
                if self._wanted(obj.key):
                    images.append(obj)
            elif self.config.sidecars and obj.key.endswith(".json"):
                json_etags[obj.key] = obj.etag
        for obj in images:
            yield self._record(obj, json_etags=json_etags, manifest=manifest)

    def _record(
        self, obj: S3Object, *, json_etags: Mapping[str, str], manifest: Mapping[str, dict[str, Any]]
    ) -> AssetRecord:
        version = f"{obj.etag}:{obj.size}"
        facts = {"bucket": self.config.bucket, "etag": obj.etag, "storage_class": obj.storage_class}
        metadata: dict[str, Any] = {}
        row = manifest.get(obj.key)
        if row is None:
            row = manifest.get(obj.key[len(self.config.prefix) :].lstrip("/"))
        if row is not None:
            metadata.update(row)
            version += f"+m{_row_digest(row)}"
        metadata["s3"] = {k: v for k, v in facts.items() if v}
        hints: dict[str, Any] = {}
        sidecar = next((k for k in sidecar_keys(obj.key) if k in json_etags), None)
        if sidecar is not None:
            version += f"+{json_etags[sidecar]}"
            hints["sidecar"] = sidecar
        return AssetRecord(
            key=obj.key,
            uri=f"s3://{self.config.bucket}/{obj.key}",
            version=version,
            size_bytes=obj.size,
            modified_at=obj.modified,
            media_type=media_type(obj.key),
            metadata=metadata,
            hints=hints,
        )

    def _manifest(self) -> dict[str, dict[str, Any]]:
        """Manifest rows by key (one GET); a missing or malformed manifest stops the sync."""
        key = self.config.manifest or ""
        where = f"manifest s3://{self.config.bucket}/{key}"
        try:
            raw = self.client.get(self.config.bucket, key, max_bytes=MAX_MANIFEST_BYTES).data
            rows: dict[str, dict[str, Any]] = {}
            for number, row in _parse_manifest(raw, is_csv=key.lower().endswith(".csv")):
                row_key = row.pop("key", None)
                if not isinstance(row_key, str) or not row_key:
                    raise ValueError(f"line {number} has no string 'key' field")
                rows[row_key] = row
        except AssetError as exc:
            raise SourceError(f"{where}: {exc.detail}; fix the source's manifest setting") from None
        except (ValueError, csv.Error) as exc:
            raise SourceError(f"{where} cannot be read: {exc}") from None
        return rows

    def _sidecar(self, key: str) -> dict[str, Any]:
        """The sidecar's metadata; an unreadable one becomes `_sidecar_error`, as in `local`."""
        try:
            blob = self.client.get(self.config.bucket, key, max_bytes=MAX_SIDECAR_BYTES)
            return parse_sidecar(blob.data)
        except AssetError as exc:
            return {"_sidecar_error": exc.detail}
        except ValueError as exc:
            return {"_sidecar_error": str(exc)}
