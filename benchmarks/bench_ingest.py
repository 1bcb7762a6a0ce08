"""Ingest (issue 8 part 3): a full sync's images/s against the encoder alone on the same tensors.

ViT-B-32 with random weights (the real compute cost; no weights can be
fetched here). For each image kind the encoder-alone run and the sync run are
interleaved `repeats` times and the medians compared. CPU seconds per image
of both runs are recorded too: on a machine whose cores the encoder already
fills, `cpu(encoder) / cpu(sync)` is the highest ratio any scheduling can
reach, so it tells a fixable pipeline stall from work that must be done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, loadavg, median, report
from benchmarks.datasets import files_of, image_set

MODEL = "ViT-B-32"
TARGET = 0.90
KINDS = ("jpeg-small", "jpeg-12mp", "png")


def load_encoder(ingest_threads: int | None = None) -> Any:
    from service.encoder.clip import ClipEncoder

    return ClipEncoder(MODEL, None, device="cpu", query_threads=1, ingest_threads=ingest_threads)


def predecode(encoder: Any, files: list[Path]) -> tuple[list[Any], float]:
    """Tensors of `files` as the pipeline makes them, and single-thread CPU seconds per image."""
    from service.catalog.decode import decode
    from service.config import IngestSettings

    limit = IngestSettings().max_pixels
    t0 = time.thread_time()
    tensors = [
        encoder.prepare(decode(f.read_bytes(), target=encoder.image_size, max_pixels=limit).image)
        for f in files
    ]
    return tensors, (time.thread_time() - t0) / max(len(files), 1)


def encoder_alone(encoder: Any, tensors: list[Any], batch: int) -> tuple[float, float]:
    """(images/s, CPU s per image) of encode_prepared over the tensors in pipeline-sized batches."""
    c0, t0 = time.process_time(), time.perf_counter()
    for start in range(0, len(tensors), batch):
        encoder.encode_prepared(tensors[start : start + batch])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(tensors) / wall, cpu / len(tensors)


def full_sync(encoder: Any, root: Path, **ingest: Any) -> tuple[float, float, dict[str, float]]:
    """(images/s, CPU s per image, stage seconds) of one sync into a fresh catalog."""
    from service.catalog.catalog import Catalog
    from service.config import IndexSettings, IngestSettings, Settings

    home = Path(tempfile.mkdtemp(prefix="loupe-bench-ingest-"))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        model=MODEL,
        pretrained=None,
        index=IndexSettings(optimize_after_sync=False),
        ingest=IngestSettings(**ingest),
    )
    reports: list[Any] = []
    catalog = Catalog(settings, encoder=encoder)
    try:
        catalog.add_source("bench", "local", {"path": str(root), "sidecars": False})
        c0, t0 = time.process_time(), time.perf_counter()
        job = catalog.sync("bench", on_progress=reports.append)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        catalog.close()
        shutil.rmtree(home, ignore_errors=True)
    n = job.counts["added"]
    if job.state != "succeeded" or n == 0:
        raise RuntimeError(f"benchmark sync failed: {job.state} {job.detail} {job.errors[:3]}")
    stages = dict(reports[-1].timings) if reports else {}
    return n / wall, cpu / n, {k: v / n for k, v in stages.items()}


def measure_kind(encoder: Any, kind: str, n: int, repeats: int, **ingest: Any) -> dict[str, Any]:
    """Interleaved encoder-alone and sync runs of one image kind; medians and per-stage times."""
    root = image_set(kind, n)
    files = files_of(root)
    tensors, decode_cpu = predecode(encoder, files)
    batch = ingest.get("batch_size", 32)
    enc, sync, stages = [], [], []
    load_before = loadavg()
    for _ in range(repeats):
        enc.append(encoder_alone(encoder, tensors, batch))
        rate, cpu, st = full_sync(encoder, root, **ingest)
        sync.append((rate, cpu))
        stages.append(st)
    enc_rate, enc_cpu = median([r for r, _ in enc]), median([c for _, c in enc])
    sync_rate, sync_cpu = median([r for r, _ in sync]), median([c for _, c in sync])
    stage = {k: median([s.get(k, 0.0) for s in stages]) for k in stages[0]}
    mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    return {
        "kind": kind,
        "n": n,
        "mb": mb,
        "enc": enc_rate,
        "sync": sync_rate,
        "enc_cpu": enc_cpu,
        "sync_cpu": sync_cpu,
        "decode_cpu": decode_cpu,
        "stages": stage,
        "load": f"{load_before} -> {loadavg()}",
    }


def tables(results: list[dict[str, Any]], label: str) -> list[Table]:
    main = Table(
        f"sync vs encoder alone, {MODEL} random weights, {label}",
        [
            "images",
            "n",
            "MB/img",
            "encoder img/s",
            "sync img/s",
            "ratio",
            "target",
            "bound cpu(enc)/cpu(sync)",
            "load (1/5/15 min) before -> after",
        ],
    )
    stages = Table(
        f"where the time goes, ms per image ({label})",
        [
            "images",
            "list",
            "read*",
            "decode+prepare*",
            "encode",
            "upsert",
            "decode CPU 1 thread",
            "CPU/img enc",
            "CPU/img sync",
        ],
    )
    for r in results:
        ratio = r["sync"] / r["enc"]
        main.add(
            r["kind"],
            r["n"],
            r["mb"],
            r["enc"],
            r["sync"],
            ratio,
            "met" if ratio >= TARGET else "missed",
            r["enc_cpu"] / r["sync_cpu"],
            r["load"],
        )
        st = {k: v * 1000 for k, v in r["stages"].items()}
        stages.add(
            r["kind"],
            st.get("list", 0.0),
            st.get("read", 0.0),
            st.get("decode", 0.0),
            st.get("encode", 0.0),
            st.get("upsert", 0.0),
            r["decode_cpu"] * 1000,
            r["enc_cpu"] * 1000,
            r["sync_cpu"] * 1000,
        )
    stages.notes.append(
        "* read and decode run in the fetch pool: summed thread time, overlapping the encoder; "
        "list, encode and upsert are wall time of the consuming thread. CPU = process CPU seconds."
    )
    return [main, stages]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--no-report", action="store_true", help="print only, do not append to RESULTS.md")
    p.add_argument("--decode-workers", type=int, default=None, help="LOUPE_INGEST__DECODE_WORKERS")
    p.add_argument("--fetch-workers", type=int, default=None, help="LOUPE_INGEST__FETCH_WORKERS")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    started = loadavg()
    n, repeats = profile.pick(48, 256), profile.pick(3, 3)
    from service.config import IngestSettings

    ingest = {"decode_workers": args.decode_workers, "fetch_workers": args.fetch_workers}
    ingest = {k: v for k, v in ingest.items() if v is not None}
    cfg = IngestSettings(**ingest)
    encoder = load_encoder()
    results = [measure_kind(encoder, k, n, repeats, **ingest) for k in args.kinds.split(",")]
    label = (
        f"batch {cfg.batch_size}, fetch_workers {cfg.fetch_workers}, "
        f"decode_workers {cfg.decode_workers or 'all'}, {os.cpu_count()} cores"
    )
    out = tables(results, label)
    if args.no_report:
        print("\n".join(t.markdown() for t in out))
    else:
        report("ingest: sync vs encoder alone", profile, out, started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
