"""What every connector is: a source of `AssetRecord`s and of their bytes.

A connector lists assets (metadata only, cheap) and opens the bytes of one
asset on demand. The catalog pipeline decides what changed, fetches bytes
concurrently, decodes, encodes and writes the index; connectors know nothing
of that, nor of HTTP or torch. Kinds are found by name in connectors.registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One asset as its source lists it.

    Attributes:
        key: unique within the source (a relative path, an object key, a row key).
        uri: where the bytes are (`file://`, `s3://bucket/key`, `sql://source/key`).
        version: a change token (size+mtime, ETag, row hash); an asset whose
            version is unchanged since the last sync is neither fetched nor encoded.
        size_bytes, modified_at, media_type: what the listing knows of the bytes.
        metadata: user metadata (sidecars, object metadata, row columns), JSON-safe.
        cursor: for incremental sources, the cursor value of this record; the
            pipeline saves the last committed one so a killed sync resumes.
        hints: connector-private data carried from `list` to `fetch` (a sidecar
            key, a row's bytes column); never stored or shown.
    """

    key: str
    uri: str
    version: str
    size_bytes: int | None = None
    modified_at: datetime | None = None
    media_type: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    cursor: str | None = None
    hints: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Vectors the source carries for user vector spaces (the sql connector's `vector_column`), by
    # space name: a list of numbers, or the cell as it came when it is not one (the sync says why).
    vectors: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Blob:
    """The bytes of one asset, with metadata learned while fetching them.

    `metadata` is merged over the listing's (e.g. S3 user metadata, which only
    a GET returns, or a sidecar read only when the asset changed).
    """

    data: bytes
    metadata: Mapping[str, Any] = field(default_factory=dict)
    media_type: str | None = None


class ConnectorConfig(BaseModel):
    """Base of every connector's config model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")

    def public(self) -> dict[str, Any]:
        """The config as the API and CLI may show it: secrets masked."""
        return self.model_dump(mode="json")  # SecretStr dumps as "**********"

    def stored(self) -> dict[str, Any]:
        """The config as the state store keeps it, secrets in clear (nested models too)."""
        return _unmasked(self)


def _unmasked(model: BaseModel) -> dict[str, Any]:
    data = model.model_dump(mode="json")
    for name, value in model:
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            data[name] = _unmasked(value)
    return data


@dataclass(slots=True)
class Listing:
    """What a connector lists in one sync.

    `complete` says whether every existing asset is listed: only then may the
    pipeline mark the keys it did not see as missing.
    """

    records: Iterator[AssetRecord]
    complete: bool = True


@runtime_checkable
class Connector(Protocol):
    """A source of assets.

    Implementations take `(name, config)` in their constructor.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]

    def check(self) -> None:
        """Fail at once when the source cannot be used.

        Raises:
            InvalidConfig: the config names something that is not there (a path, a table).
            SourceUnavailable: the source cannot be reached or is busy (transient: 503).
            SourceError: the source refuses us (credentials, permissions).
        """
        ...

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        """List the source's assets (or, for incremental sources, those past `cursor`).

        Args:
            cursor: the last committed cursor of an earlier sync, if any.
            full: re-list everything even where an incremental cursor exists.

        Raises:
            SourceError: the listing as a whole failed (SourceUnavailable: for now).
        """
        ...

    def fetch(self, record: AssetRecord) -> Blob:
        """The bytes of one asset.

        Raises:
            AssetError: this asset could not be read (the sync goes on).
            SourceError: the source as a whole went away (the sync stops).
        """
        ...


@runtime_checkable
class PresignsUrls(Protocol):
    """Optional: a connector whose assets can be handed out as time-limited URLs."""

    def presigned_url(self, record: AssetRecord, *, expires_s: int) -> str | None:
        """A URL to GET the asset's bytes directly, or None when not allowed."""
        ...
