"""S3 connector (issue 4): objects/s listed, fetched and synced from a local SeaweedFS.

A private `weed mini` is started on 127.0.0.1 (and stopped by PID at the end),
N photo-like JPEGs from benchmarks.images are uploaded under a prefix, one in
ten with user metadata and one in ten with a sidecar. Measured, encoder
excluded: the listing (list_objects_v2 pages, sidecar matching, records), a
re-listing, fetch (the connector's GETs from a thread pool, as the pipeline
runs them) and fetch + decode. Then, when `service.catalog` imports, whole
syncs through the Catalog: with the deterministic fake encoder (pipeline and
index, no model) and, with `--model NAME`, a real open_clip tower with random
weights (encoder included); each followed by a re-sync of the unchanged bucket.

    python -m benchmarks.bench_s3 [--full] [--objects N] [--workers N] [--model ViT-S-32]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, loadavg, median, report
from benchmarks.datasets import files_of, image_set
from tests.integration.s3_servers import S3Server, start_seaweedfs, stop

BUCKET = "loupe-bench"
PREFIX = "bench/"


def upload(server: S3Server, root: Path, *, workers: int) -> tuple[float, int, int]:
    """(seconds, objects, bytes) to put every image of `root` (and the sidecars) under PREFIX."""
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    files = files_of(root)

    def put(item: tuple[int, Path]) -> int:
        i, path = item
        key = PREFIX + path.relative_to(root).as_posix()
        data = path.read_bytes()
        meta = {"camera": f"cam-{i % 7}"} if i % 10 == 0 else {}
        client.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=meta)
        if i % 10 == 5:
            body = f'{{"label": "l{i % 4}", "frame": {i}}}'.encode()
            client.put_object(Bucket=BUCKET, Key=key + ".json", Body=body)
        return len(data)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(put, enumerate(files)))
    return time.perf_counter() - t0, len(files), total


def pooled(fn: Callable[[Any], int], items: Iterable[Any], *, workers: int) -> tuple[float, int]:
    """(seconds, summed result) of `fn` over `items` in a thread pool."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(fn, items))
    return time.perf_counter() - t0, total


def connector_table(server: S3Server, *, n: int, workers: int, repeats: int) -> Table:
    """List, re-list, fetch, fetch + decode: the connector alone (encoder excluded)."""
    from connectors.registry import build

    conn: Any = build("bench", "s3", server.source_config(BUCKET, prefix=PREFIX))
    conn.check()
    table = Table(
        f"s3 connector on SeaweedFS, {n:,} JPEGs (640x480), {workers} fetch threads",
        ["stage", "objects", "median s", "objects/s", "MB/s"],
    )
    listings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        records = list(conn.list().records)
        listings.append(time.perf_counter() - t0)
    assert len(records) == n, f"listed {len(records)} of {n}"
    table.add("list (no GETs)", n, median(listings), n / median(listings), None)
    decode_one = _decoder()
    stages = [("fetch (GET + sidecar GET)", None), ("fetch + decode (224 px target)", decode_one)]
    for stage, then in stages if decode_one else stages[:1]:
        runs = [fetch_pass(conn, records, then=then, workers=workers) for _ in range(repeats)]
        seconds, nbytes = median([s for s, _ in runs]), runs[0][1]
        table.add(stage, n, seconds, n / seconds, nbytes / seconds / 1e6)
    table.notes.append(
        f"median of {repeats}; one in ten objects has a sidecar, so a fetch pass makes {n + n // 10:,} GETs"
    )
    return table


def fetch_pass(
    conn: Any, records: list[Any], *, then: Callable[[bytes], int] | None, workers: int
) -> tuple[float, int]:
    """(seconds, bytes) to fetch every record from a pool, optionally decoding each."""

    def one(record: Any) -> int:
        data = conn.fetch(record).data
        return then(data) if then else len(data)

    return pooled(one, records, workers=workers)


def _decoder() -> Callable[[bytes], int] | None:
    """The pipeline's decode (bounded pixels, EXIF, JPEG draft mode), when it imports."""
    try:
        from service.catalog.decode import decode
        from service.config import IngestSettings
    except ImportError:
        return None
    limit = IngestSettings().max_pixels

    def one(data: bytes) -> int:
        decode(data, target=224, max_pixels=limit)
        return len(data)

    return one


def sync_rows(server: S3Server, *, n: int, encoder: Any, label: str, workers: int) -> list[list[Any]]:
    """A first sync and an unchanged re-sync through the Catalog into a fresh home."""
    from service.catalog.catalog import Catalog
    from service.config import IndexSettings, IngestSettings, Settings

    home = Path(tempfile.mkdtemp(prefix="loupe-bench-s3-"))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        index=IndexSettings(optimize_after_sync=False),
        ingest=IngestSettings(fetch_workers=workers),
    )
    catalog = Catalog(settings, encoder=encoder)
    rows = []
    try:
        catalog.add_source("bench", "s3", server.source_config(BUCKET, prefix=PREFIX))
        for what in ("first sync", "re-sync, nothing changed"):
            t0 = time.perf_counter()
            job = catalog.sync("bench")
            seconds = time.perf_counter() - t0
            if job.state != "succeeded":
                raise RuntimeError(f"benchmark sync failed: {job.detail} {job.errors[:3]}")
            counts = job.counts
            done = counts["added"] + counts["updated"] + counts["unchanged"]
            assert done == n, f"{what}: {counts}"
            rows.append([f"{what} ({label})", n, seconds, n / seconds, _counts(counts)])
    finally:
        catalog.close()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v and k != "seen")


def sync_table(server: S3Server, *, n: int, workers: int, model: str | None) -> Table | None:
    """Whole syncs through service.catalog, or None when the catalog cannot be imported."""
    try:
        from service.catalog.catalog import Catalog  # noqa: F401
        from tests.fakes import FakeEncoder
    except ImportError as exc:
        print(f"service.catalog is not importable ({exc}); reporting list + fetch only")
        return None
    table = Table(
        f"whole sync through the Catalog, {n:,} objects, {workers} fetch workers",
        ["run", "objects", "seconds", "objects/s", "counts"],
    )
    for row in sync_rows(server, n=n, encoder=FakeEncoder(), label="fake encoder", workers=workers):
        table.add(*row)
    if model:
        from service.encoder.clip import ClipEncoder

        encoder = ClipEncoder(model, None, device="cpu", query_threads=1)
        for row in sync_rows(server, n=n, encoder=encoder, label=f"{model}", workers=workers):
            table.add(*row)
    table.notes.append(
        "fake encoder = the pipeline and the embedded index without a model (encoder excluded);"
        f" {model or 'a --model run'} = open_clip random weights on CPU (encoder included)"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_s3", description=__doc__)
    p.add_argument("--full", action="store_true", help="10,000 objects instead of 3,000")
    p.add_argument("--objects", type=int, default=None, help="how many objects (overrides --full)")
    p.add_argument("--workers", type=int, default=8, help="fetch threads (the pipeline's pool)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None, help="also sync with this open_clip model (slow)")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    n = args.objects or profile.pick(3000, 10_000)
    started_load = loadavg()
    root = image_set("jpeg-small", n)
    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-weed-"))
    server = start_seaweedfs(data_dir)
    try:
        seconds, count, nbytes = upload(server, root, workers=4)
        tables = [connector_table(server, n=count, workers=args.workers, repeats=args.repeats)]
        tables[0].notes.append(
            f"setup: uploaded {count:,} objects ({nbytes / 1e6:.0f} MB) in {seconds:.1f} s "
            f"({count / seconds:.0f}/s, 4 threads)"
        )
        synced = sync_table(server, n=count, workers=args.workers, model=args.model)
        tables += [synced] if synced else []
    finally:
        stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
    report("S3 connector (SeaweedFS on loopback)", profile, tables, started_load=started_load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
