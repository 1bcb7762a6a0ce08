"""What the distributed sync runs on Ray workers: read+decode tasks and the encoder actors.

Nothing here imports ray: Ray Data calls these with batches (dicts of numpy arrays), so
they run (and are tested) as plain functions too. A read task rebuilds the source's
connector from its stored (kind, config), fetches and decodes each asset exactly as the
local pipeline does (service/catalog/sync.py, decode.py) and ships the reduced RGB
pixels; an encoder actor loads the model once (service/encoder.load_encoder) and embeds
them, and against a Qdrant server it also writes the points itself.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from functools import lru_cache
from typing import Any

import numpy as np

from connectors import registry
from connectors.base import AssetRecord, Connector
from service.catalog.decode import decode
from service.catalog.sync import SyncPipeline, _Ready, _Work, asset_payload, fetch_checked
from service.config import Settings
from service.errors import LoupeError, SourceError

log = logging.getLogger(__name__)
Batch = dict[str, Any]
# Columns every stage passes on (Arrow needs the same columns in every block).
PASSED = ("id", "key", "existed", "payload", "error", "fatal", "t_read", "t_decode")


@lru_cache(maxsize=8)
def _connector(name: str, kind: str, config_json: str) -> Connector:
    # One connector per worker process and source: S3 clients and SQL engines are costly to build.
    return registry.build(name, kind, json.loads(config_json))


def read_and_decode(
    batch: Batch, *, source: dict[str, str], target: int, max_pixels: int, max_bytes: int
) -> Batch:
    """Fetch and decode one block of assets; a bad asset becomes an error row, never a failed task.

    `source` is {"name", "kind", "config" (JSON)}. SourceError (the source as a whole
    failed) marks the row `fatal`: the driver then fails the sync as a local one would.
    """
    conn = _connector(source["name"], source["kind"], source["config"])
    out: dict[str, list[Any]] = {k: [] for k in (*PASSED, "pixels", "width", "height")}
    for pid, blob_rec, existed in zip(batch["id"], batch["record"], batch["existed"], strict=True):
        record: AssetRecord = pickle.loads(blob_rec)
        row = {"id": pid, "key": record.key, "existed": bool(existed), "payload": "", "error": ""}
        row.update(fatal=False, t_read=0.0, t_decode=0.0, pixels=b"", width=0, height=0)
        t0 = time.monotonic()
        try:
            blob = fetch_checked(conn, record, max_bytes=max_bytes)
            t1 = time.monotonic()
            decoded = decode(blob.data, target=target, max_pixels=max_pixels)
            image = decoded.image
            row.update(pixels=image.tobytes(), width=image.width, height=image.height)
            row["payload"] = json.dumps(asset_payload(source["name"], record, decoded, blob))
            row.update(t_read=t1 - t0, t_decode=time.monotonic() - t1)
        except SourceError as exc:
            row.update(error=exc.detail, fatal=True)
        except LoupeError as exc:
            row["error"] = exc.detail
        except Exception as exc:  # one bad asset never stops a sync
            log.exception("unexpected failure on %s", record.key)
            row["error"] = f"{type(exc).__name__}: {exc}"
        for k, v in row.items():
            out[k].append(v)
    return {
        k: np.array(v, dtype=object) if k in ("pixels", "payload") else np.array(v) for k, v in out.items()
    }


class EncodeActor:
    """One model copy on one Ray actor (CPU, or a GPU in fp16): pixels in, vectors out.

    With `write` (a Qdrant server), the actor upserts its batch itself through the local
    pipeline's own write step, so re-embedded assets keep their exports and labels there too.
    """

    def __init__(self, *, settings: Settings, vector_name: str, dim: int, write: bool) -> None:
        from service.encoder import load_encoder  # torch: only on the workers that encode

        self.encoder = load_encoder(settings)
        if self.encoder.dim != dim:
            from service.errors import EncoderError

            raise EncoderError(
                f"the worker's model {settings.model} embeds in {self.encoder.dim} dimensions but the "
                f"index holds {dim}; install the same model and weights on every Ray node"
            )
        self.writer: SyncPipeline | None = None
        if write:
            from service.index import open_index

            self.writer = SyncPipeline(
                source="",
                connector=None,  # type: ignore[arg-type]  # the writer only writes
                index=open_index(settings, vector_name=vector_name, dim=dim),
                encoder=self.encoder,
                settings=settings.ingest,
            )

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch["id"])
        ok = [i for i in range(n) if not batch["error"][i]]
        vectors = np.zeros((n, self.encoder.dim), np.float32)
        t_encode = np.zeros(n)
        t_upsert = np.zeros(n)
        if ok:
            t0 = time.monotonic()
            tensors = [self.encoder.prepare(_image(batch, i)) for i in ok]
            vectors[ok] = self.encoder.encode_prepared(tensors)
            t1 = time.monotonic()
            t_encode[ok] = (t1 - t0) / len(ok)
            if self.writer is not None:
                ready = [_ready_row(batch, i) for i in ok]
                self.writer._write(ready, [vectors[i] for i in ok])
                t_upsert[ok] = (time.monotonic() - t1) / len(ok)
        out = {k: batch[k] for k in PASSED}
        if self.writer is not None:
            out["payload"] = np.array([""] * n, dtype=object)  # written already: nothing to carry back
        out.update(vector=vectors, t_encode=t_encode, t_upsert=t_upsert)
        return out


def _image(batch: Batch, i: int) -> Any:
    from PIL import Image

    size = (int(batch["width"][i]), int(batch["height"][i]))
    return Image.frombytes("RGB", size, bytes(batch["pixels"][i]))


def _ready_row(batch: Batch, i: int) -> _Ready:
    record = AssetRecord(key=str(batch["key"][i]), uri="", version="")
    work = _Work(record=record, id=str(batch["id"][i]), existed=bool(batch["existed"][i]))
    return _Ready(work=work, tensor=None, payload=json.loads(batch["payload"][i]))
