"""The distributed sync engine on Ray Data: one source, many workers and GPUs, the same sync.

The driver (the `sync` job's runner) lists the source and skips unchanged assets as
the local pipeline does (it *is* that pipeline, with `_process` replaced); the
changed assets of each chunk become a Ray dataset whose blocks are read and decoded
by Ray tasks and embedded by an actor pool (service/catalog/distributed_work.py).
The embedded index has one owner, so the driver writes each encoded block; a Qdrant
server is written by the actors directly. Exactly once: point ids are deterministic
(a retried block rewrites the same points), the driver counts each id once, the
cursor moves only after a whole chunk is written, and a killed driver leaves a job
the next sync (of either engine) resumes by skipping what is already written.

Ray is imported here and nowhere else (see pyproject's import contracts).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import socket
import threading
import time
import warnings
from typing import Any

import numpy as np

from service.catalog.distributed_work import EncodeActor, read_and_decode
from service.catalog.sync import SyncPipeline, _Ready, _Work
from service.config import Settings
from service.errors import EncoderError, InvalidConfig, LoupeError, SourceError

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_CONNECTED: list[str] = []  # the address this process's Ray driver is connected to ("" = started here)


def check_address(address: str | None) -> str | None:
    """A Ray address as given, or InvalidConfig naming the forms that work.

    Ray Data does not run over Ray Client (`ray://`; ray-project/ray#42739): the
    driver must be a node of the cluster, e.g. the KubeRay RayJob in deploy/k8s/ray.
    """
    if address is None or address in ("", "local"):
        return None
    if address == "auto":
        return address
    if address.startswith("ray://"):
        raise InvalidConfig(
            f"address {address!r}: Ray Data cannot run over Ray Client (ray://); give the cluster's "
            "GCS address HOST:PORT (the head's port 6379 by default) from a machine in the cluster, "
            "or run the sync as the RayJob of deploy/k8s/ray"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidConfig(
            f"address {address!r} is not HOST:PORT; use the Ray head's GCS address (e.g. 10.0.0.5:6379), "
            "'auto' for the cluster this machine is part of, or leave it unset for a Ray started in-process"
        )
    return address


def connect(address: str | None, *, timeout_s: float) -> None:
    """Connect this process to Ray once (again only when the address changes); fail fast.

    ray.init waits minutes for a GCS that does not answer, so a HOST:PORT is probed first.
    """
    import ray

    address = check_address(address)
    want = address or ""
    with _LOCK:
        if ray.is_initialized() and _CONNECTED and _CONNECTED[0] == want:
            return
        if ray.is_initialized():
            ray.shutdown()
        _CONNECTED.clear()
        if address not in (None, "auto"):
            _probe(address, timeout_s=timeout_s)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if address is None:
                ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InvalidConfig(
                f"cannot connect to Ray at {address or 'a local instance'}: {str(exc).splitlines()[0][:300]}"
            ) from None
        _CONNECTED.append(want)
    # Ray 2.60 takes task retries and actor restarts only as `ray_remote_args` (max_retries,
    # max_restarts, max_task_retries), which it calls deprecated; they are the fault-tolerance knobs
    # this engine needs. Set after Ray's import, which installs its own filter for that warning.
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _probe(address: str, *, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InvalidConfig(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}) within {timeout_s:g} s; "
            "check the head's address and port (LOUPE_SYNC__RAY_ADDRESS or --address)"
        ) from None


def check_resources(*, num_gpus: float, actors: int, wait_s: float = 0.0) -> None:
    """Refuse a pool the cluster cannot place (Ray would wait for it forever).

    `wait_s` gives an autoscaling cluster (a KubeRay GPU group scaled to zero) time to
    bring its first GPU node up; without it the answer is immediate.
    """
    import ray

    deadline = time.monotonic() + wait_s
    have = ray.cluster_resources().get("GPU", 0.0)
    while num_gpus > 0 and have < num_gpus and time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        have = ray.cluster_resources().get("GPU", 0.0)
    if num_gpus > 0 and have < num_gpus:
        raise InvalidConfig(
            f"LOUPE_SYNC__RAY_NUM_GPUS={num_gpus:g} per encoder actor, but the Ray cluster has "
            f"{have:g} GPUs; add a GPU worker group or set it to 0 to encode on CPUs"
        )
    if num_gpus > 0 and have < num_gpus * actors:
        log.warning(
            "%d actors x %g GPUs asked, %g in the cluster now: the pool grows as GPUs join",
            actors,
            num_gpus,
            have,
        )


class RaySync(SyncPipeline):
    """A sync whose changed assets are read, decoded and encoded on a Ray cluster."""

    def __init__(
        self,
        *,
        settings: Settings,
        address: str | None,
        kind: str,
        config: dict[str, Any],
        vector_name: str,
        **kw: Any,
    ) -> None:
        super().__init__(settings=settings.ingest, **kw)
        self.address = check_address(address)
        self.full_settings = settings
        self.sync_settings = settings.sync
        self.list_chunk = settings.sync.ray_chunk
        self.source_spec = {"name": self.source, "kind": kind, "config": json.dumps(config, sort_keys=True)}
        self.vector_name = vector_name
        # One process owns an embedded index: only a Qdrant server can take writes from the workers.
        self.workers_write = settings.qdrant_url is not None

    def run(self, *, cursor: str | None = None, full: bool = False, prune: bool = False) -> Any:
        s = self.sync_settings
        connect(self.address, timeout_s=s.ray_connect_timeout_s)
        check_resources(num_gpus=s.ray_num_gpus, actors=s.ray_actors, wait_s=s.ray_wait_for_gpus_s)
        return super().run(cursor=cursor, full=full, prune=prune)

    def _worker_settings(self) -> Settings:
        gpu = self.sync_settings.ray_num_gpus > 0
        # The state store and API keys stay with the driver; the encoder runs at normal priority.
        return self.full_settings.model_copy(
            update={
                "device": "cuda" if gpu else "cpu",
                "database_url": None,
                "api_keys": None,
                "ingest_nice": 0,
            }
        )

    def _dataset(self, todo: list[_Work]) -> Any:
        import ray

        s = self.sync_settings
        items = [{"id": w.id, "record": pickle.dumps(w.record), "existed": w.existed} for w in todo]
        blocks = max(1, math.ceil(len(items) / s.ray_read_batch))
        ds: Any = ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(
            read_and_decode,
            batch_size=s.ray_read_batch,
            fn_kwargs={
                "source": self.source_spec,
                "target": self.encoder.image_size,
                "max_pixels": self.settings.max_pixels,
                "max_bytes": self.settings.max_bytes,
            },
            num_cpus=1,
            max_retries=s.ray_max_retries,
        )
        return ds.map_batches(
            EncodeActor,
            batch_size=s.ray_batch_size,
            # An autoscaling pool: it starts as soon as one actor is up and grows to `ray_actors`
            # as the cluster's GPUs (or CPUs) allow, instead of waiting for all of them.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=s.ray_actors),
            num_cpus=s.ray_cpus_per_actor,
            num_gpus=s.ray_num_gpus or None,
            fn_constructor_kwargs={
                "settings": self._worker_settings(),
                "vector_name": self.vector_name,
                "dim": self.index_dim,
                "write": self.workers_write,
            },
            max_restarts=s.ray_max_retries,
            max_task_retries=s.ray_max_retries,
        )

    @property
    def index_dim(self) -> int:
        return int(self.encoder.dim)  # type: ignore[attr-defined]

    def _process(self, todo: list[_Work]) -> None:
        if not todo:
            return
        self.on_progress(self.report)  # what the listing found, while the actors start
        by_id = {w.id: w for w in todo}
        written: set[str] = set()  # a block retried after a worker died comes back once more: count it once
        try:
            for batch in self._dataset(todo).iter_batches(batch_size=None, batch_format="numpy"):
                self._commit_block(batch, by_id, written)
        except LoupeError:
            raise
        except Exception as exc:
            raise _reason(exc) from None
        # Never silently: an asset the engine did not hand back is a report line.
        for w in (w for w in todo if w.id not in written):
            self.report.fail(w.record.key, "the Ray engine returned no result for this asset")
            self.report.done += 1

    def _commit_block(self, batch: dict[str, Any], by_id: dict[str, _Work], written: set[str]) -> None:
        r = self.report
        ready: list[_Ready] = []
        vectors: list[np.ndarray] = []
        for i, pid in enumerate(batch["id"]):
            pid = str(pid)
            work = by_id.get(pid)
            if work is None or pid in written:
                continue
            if batch["fatal"][i]:
                raise SourceError(str(batch["error"][i]))
            written.add(pid)
            r.done += 1
            for stage in ("read", "decode", "encode", "upsert"):
                r.timed(stage, float(batch[f"t_{stage}"][i]))
            if batch["error"][i]:
                r.fail(work.record.key, str(batch["error"][i]))
                continue
            payload = {} if self.workers_write else json.loads(batch["payload"][i])
            ready.append(_Ready(work=work, tensor=None, payload=payload))
            vectors.append(batch["vector"][i])
        if ready and not self.workers_write:
            t0 = time.monotonic()
            self._write(ready, vectors)
            r.timed("upsert", time.monotonic() - t0)
        self._count_written(ready)
        self.on_progress(r)  # the job's report: raises JobCancelled / JobLost, which stop the dataset


def _reason(exc: BaseException) -> LoupeError:
    """A Ray failure as a LoupeError: the one a worker raised (a model that cannot load), or one naming it.

    Ray wraps a task's exception (RayTaskError, whose `cause` is the original) and reports an
    actor that failed to start by the text of its traceback only.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, LoupeError):
            ours = next(
                c
                for c in type(seen).__mro__
                if issubclass(c, LoupeError) and c.__module__ == "service.errors"
            )
            return ours(seen.detail)
        seen = getattr(seen, "cause", None) or seen.__cause__
    found = re.search(r"\b(EncoderError|InvalidConfig|SourceError): (.+)", str(exc))
    if found is not None:
        kind = {"EncoderError": EncoderError, "InvalidConfig": InvalidConfig, "SourceError": SourceError}
        return kind[found.group(1)](f"a Ray worker failed: {found.group(2).strip()[:500]}")
    last = str(exc).strip().splitlines()[-1][:500] if str(exc).strip() else ""
    return LoupeError(f"the Ray engine failed: {type(exc).__name__}: {last}")
