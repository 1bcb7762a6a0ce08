"""The vector index: the embedded engine by default, a Qdrant server or cluster by URL.

Backends are imported on demand, so choosing one never loads the other's client.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from service.config import Settings
from service.index.base import VectorIndex

_UNSAFE = re.compile(r"[^a-z0-9]+")


def open_index(settings: Settings, *, vector_name: str, dim: int) -> VectorIndex:
    """The index `settings` point at: EdgeIndex under `settings.index_path` unless
    `settings.qdrant_url` is set, then ServerIndex on that URL.

    Raises:
        IndexLocked: the embedded index is open in another process.
        IndexUnavailable: the Qdrant server cannot be reached.
        InvalidConfig: the index holds `vector_name` with another dimension.
    """
    if settings.qdrant_url:
        from service.index.server import ServerIndex

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerIndex(
            settings.qdrant_url,
            api_key=key,
            collection=settings.index.collection,
            vector_name=vector_name,
            dim=dim,
            settings=settings.index,
        )
    from service.index.edge import EdgeIndex

    return EdgeIndex(Path(settings.index_path), vector_name=vector_name, dim=dim, settings=settings.index)


def vector_name_for(model: str, pretrained: str | None) -> str:
    """A stable vector name per encoder model, safe as a Qdrant vector name.

    Readable (`vit-b-32.laion2b-s34b-b79k`) plus a short hash of the exact
    identity, so two names that normalise alike never share vectors. A local
    checkpoint is identified by its file name, size and first MiB rather than its
    path, so moving it (or installing the package elsewhere) keeps its vectors.
    """
    weights, identity = pretrained or "none", pretrained or ""
    checkpoint = Path(pretrained) if pretrained else None
    if checkpoint is not None and checkpoint.is_file():
        with open(checkpoint, "rb") as f:
            head = hashlib.sha256(f.read(1 << 20)).hexdigest()
        weights = checkpoint.stem
        identity = f"{checkpoint.name}:{checkpoint.stat().st_size}:{head}"
    readable = ".".join(_UNSAFE.sub("-", part.lower()).strip("-") for part in (model, weights))
    digest = hashlib.sha256(f"{model}\0{identity}".encode()).hexdigest()[:8]
    return f"{readable[:48]}.{digest}"


__all__ = ["VectorIndex", "open_index", "vector_name_for"]
