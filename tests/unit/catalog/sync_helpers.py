"""An in-memory source and a pipeline over the embedded index, for the sync pipeline's unit tests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from PIL import Image

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing
from service.catalog.sync import SyncPipeline, SyncReport
from service.config import IngestSettings, Settings
from service.index import open_index
from service.index.base import VectorIndex
from tests.fakes import FakeEncoder
from tests.images import gradient


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    gradient(seed, size).save(buf, "PNG")
    return buf.getvalue()


class MemorySource:
    """A complete listing of `files` (key -> (version, bytes)) that a test edits between syncs."""

    kind: ClassVar[str] = "memory"
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}

    def put(self, key: str, data: bytes, version: str = "1") -> None:
        self.files[key] = (version, data)

    def check(self) -> None:
        return None

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        records = [
            AssetRecord(key=k, uri=f"memory://{k}", version=v, size_bytes=len(d), media_type="image/png")
            for k, (v, d) in sorted(self.files.items())
        ]
        return Listing(records=iter(records), complete=True)

    def fetch(self, record: AssetRecord) -> Blob:
        return Blob(data=self.files[record.key][1], media_type="image/png")


@contextmanager
def embedded_index(settings: Settings) -> Iterator[VectorIndex]:
    index = open_index(settings, vector_name="fake", dim=FakeEncoder.dim)
    try:
        yield index
    finally:
        index.close()


def run_sync(
    index: VectorIndex,
    source: MemorySource,
    *,
    encoder: Any | None = None,
    prune: bool = False,
    **ingest: Any,
) -> SyncReport:
    pipeline = SyncPipeline(
        source="mem",
        connector=source,
        index=index,
        encoder=encoder or FakeEncoder(),
        settings=IngestSettings(**ingest),
    )
    return pipeline.run(prune=prune)


def image_size(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as img:
        return img.size[0] * img.size[1]
