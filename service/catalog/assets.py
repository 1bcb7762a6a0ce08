"""Assets: deterministic ids, index payloads, and the asset shape the API returns."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import AssetRecord
from service.catalog.decode import Decoded
from service.timestamps import rfc3339

# Fixed namespace: asset ids must stay the same across versions and machines.
ASSET_NAMESPACE = uuid.UUID("6f1d8a52-3c1b-5f0e-9a57-4c6f75706521")


_NAMESPACE_BYTES = ASSET_NAMESPACE.bytes


def asset_id(source: str, key: str) -> str:
    """The id of `key` in `source`: the same on every sync, so re-runs are idempotent.

    It is `str(uuid.uuid5(ASSET_NAMESPACE, f"{source}\\x00{key}"))`, spelled out (SHA-1 of the
    namespace and name, version and variant bits set) at half its cost: a sync or an
    import of 100,000 records computes 100,000 of them.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{source}\x00{key}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_payload(
    *,
    source: str,
    record: AssetRecord,
    decoded: Decoded,
    extra_metadata: Mapping[str, Any],
    exports: list[Any],
    media_type: str | None,
) -> dict[str, Any]:
    """The index payload of one encoded asset.

    Built-in fields sit at the top (indexed, filterable by their names); user
    metadata under `meta` (pixel-derived EXIF facts first, then the source's own,
    which wins).
    """
    meta: dict[str, Any] = {k: v for k, v in decoded.metadata.items() if k != "orientation"}
    if "orientation" in decoded.metadata:
        meta["exif_orientation"] = decoded.metadata["orientation"]
    meta.update(record.metadata)
    meta.update(extra_metadata)
    return {
        "source": source,
        "key": record.key,
        "uri": record.uri,
        "filename": record.key.rsplit("/", 1)[-1],
        "media_type": media_type or record.media_type,
        "size_bytes": record.size_bytes,
        "width": decoded.width,
        "height": decoded.height,
        "modified_at": rfc3339(record.modified_at),
        "synced_at": rfc3339(datetime.now(UTC)),
        "version": record.version,
        "status": "ok",
        "meta": meta,
        "exports": exports,
    }


def asset_from_payload(point_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The public asset shape of DESIGN.md from an index payload."""
    return {
        "id": point_id,
        "source": payload.get("source"),
        "key": payload.get("key"),
        "uri": payload.get("uri"),
        "media_type": payload.get("media_type"),
        "size_bytes": payload.get("size_bytes"),
        "width": payload.get("width"),
        "height": payload.get("height"),
        "modified_at": payload.get("modified_at"),
        "synced_at": payload.get("synced_at"),
        "status": payload.get("status", "ok"),
        "metadata": payload.get("meta") or {},
        "exports": payload.get("exports") or [],
        "vectors": payload.get("vectors") or [],  # the spaces it has a vector in (service/spaces)
        # What wave-2 features wrote on the asset (DESIGN.md): label sets and evaluation outcomes
        # by name, signals, selections; only present once something wrote them.
        **{root: payload[root] for root in _FEATURE_ROOTS if root in payload},
    }


_FEATURE_ROOTS = ("labels", "evals", "signals", "selections")
