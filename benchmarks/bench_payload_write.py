"""What one payload write per point costs the embedded engine, by how many indexed fields a point
carries (issue 15, item 8: the signals' memory at 1,000,000).

A signal writes one `signals.<leaf>` float to every asset it scores. qdrant-edge never changes a
point inside an HNSW-indexed (immutable) segment: it moves the point, vector and payload, into an
appendable segment first. This benchmark measures what that move holds in the process: N random
512-d points are written and indexed (the optimizer builds their graph), then a fresh process
writes one float to each of them with `write_payloads(..., key="signals")` as
service/signals/compute.py does (in place in batches of 2,000, or through the optimizer's child)
and samples /proc/self/status: anonymous memory (heap: what the 3 GB target is about) and
file-backed memory (mapped segment files: page cache the kernel can drop). Two payloads: `bare`
(one keyword field) and `asset` (the seven fields a sync gives every asset, all seven indexed).

    python -m benchmarks.bench_payload_write [--full] [--n N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, bench_env, emit_json, loadavg, report

PAYLOADS = ("bare", "asset")
CASES = (("bare", "direct"), ("asset", "direct"), ("asset", "through"))
HOW = {"direct": "in place, batches of 2,000", "through": "through the optimizer's child"}


def _payload(kind: str, n: int) -> dict[str, Any]:
    if kind == "bare":
        return {"source": "bench"}
    return {
        "source": "bench",
        "key": f"img/{n:07d}.png",
        "status": "ok",
        "filename": f"{n:07d}.png",
        "width": 64,
        "height": 64,
        "synced_at": "2026-12-04T10:00:00Z",
    }


def _memory() -> tuple[float, float]:
    """RssAnon and RssFile of this process, GiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 2**20
    return out["RssAnon"], out["RssFile"]


def _ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def _open(path: Path, *, through: bool = False) -> Any:
    from service.config import IndexSettings
    from service.index.edge import EdgeIndex

    settings = IndexSettings(write_through_min=1 if through else 10**12)
    return EdgeIndex(path, vector_name="v", dim=512, settings=settings)


def build_worker(path: Path, n: int, kind: str) -> None:
    import numpy as np

    from service.index.base import Point

    index = _open(path)
    rng = np.random.default_rng(0)
    ids = _ids(n)
    t0 = time.monotonic()
    for at in range(0, n, 5000):
        v = rng.standard_normal((min(5000, n - at), 512), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        index.upsert([Point(ids[at + j], v[j], _payload(kind, at + j)) for j in range(len(v))])
    written = time.monotonic() - t0
    t0 = time.monotonic()
    index.optimize()
    emit_json({"upsert_s": written, "optimize_s": time.monotonic() - t0})
    index.close()


def write_worker(path: Path, n: int, *, through: bool) -> None:
    """`write_payloads` as a signal calls it, memory sampled at each progress call (every batch
    written; every 2 s while a write-through's child works), then the optimize a signal job asks
    for after it (nothing left to do after a write-through)."""
    import numpy as np

    index = _open(path, through=through)
    ids = _ids(n)
    values = np.random.default_rng(1).random(n)
    anon0, file0 = _memory()
    peak = [anon0, file0]

    def progress(done: int) -> None:
        anon, file = _memory()
        peak[0], peak[1] = max(peak[0], anon), max(peak[1], file)

    t0 = time.monotonic()
    index.write_payloads(
        [(ids[i], {"uniqueness": float(values[i])}) for i in range(n)], key="signals", progress=progress
    )
    seconds = time.monotonic() - t0
    progress(n)
    t0 = time.monotonic()
    index.optimize()
    optimize_s = time.monotonic() - t0
    progress(n)
    got = index.retrieve([ids[0], ids[-1]], fields=["signals"])
    assert sorted(r.payload["signals"]["uniqueness"] for r in got) == sorted([values[0], values[-1]])
    index.close()
    peak_anon, peak_file = peak
    emit_json(
        {
            "write_s": seconds,
            "optimize_s": optimize_s,
            "anon_before": anon0,
            "file_before": file0,
            "anon_peak": peak_anon,
            "file_peak": peak_file,
            "maxrss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
    )


def _child(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_payload_write", *args]
    out = subprocess.run(cmd, env=bench_env(), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_payload_write", description=__doc__)
    p.add_argument("--full", action="store_true", help="200,000 points (quick: 50,000)")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--worker", choices=["build", "write"], help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--kind", choices=PAYLOADS, default="asset", help=argparse.SUPPRESS)
    p.add_argument("--through", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    n = args.n or profile.pick(50_000, 200_000)
    if args.worker == "build":
        build_worker(Path(args.path), n, args.kind)
        return 0
    if args.worker == "write":
        write_worker(Path(args.path), n, through=args.through)
        return 0
    load = loadavg()
    table = Table(
        f"one signals float written to each of {n:,} indexed points",
        [
            "payload",
            "indexed fields",
            "how",
            "write s",
            "then optimize s",
            "anon before -> peak GiB",
            "anon per point",
            "file before -> peak GiB",
            "ru_maxrss GiB",
        ],
    )
    work = Path(tempfile.mkdtemp(prefix="loupe-bench-payload-"))
    try:
        for kind, how in CASES:
            path = work / f"{kind}-{how}"
            built = _child("--worker", "build", "--path", str(path), "--n", str(n), "--kind", kind)
            flags = ["--through"] if how == "through" else []
            w = _child("--worker", "write", "--path", str(path), "--n", str(n), *flags)
            per_point = (w["anon_peak"] - w["anon_before"]) * 2**30 / n
            table.add(
                kind,
                1 if kind == "bare" else 7,
                HOW[how],
                w["write_s"],
                w["optimize_s"],
                f"{w['anon_before']:.2f} -> {w['anon_peak']:.2f}",
                f"{per_point:,.0f} B",
                f"{w['file_before']:.2f} -> {w['file_peak']:.2f}",
                w["maxrss_gib"],
            )
            table.notes.append(
                f"{kind}, {how}: {n:,} points written in {built['upsert_s']:.0f} s, graph built in "
                f"{built['optimize_s']:.0f} s (setup, not counted)"
            )
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table.notes.append(
        "anon per point: the anonymous memory the write added, over the points moved. In place, the "
        "asset payload's seven indexed fields are entered into the appendable segment's in-memory "
        "payload indexes as its points arrive (file-backed growth: the moved vectors); 'then optimize' "
        "is the graph rebuild a signal job asks for after it. Through the optimizer's child, the child "
        "moves the points and rebuilds the graph, and this process loads the result"
    )
    report("Payload writes into indexed segments", profile, [table], started_load=load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
