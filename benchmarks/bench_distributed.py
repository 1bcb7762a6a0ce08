"""Distributed sync (issue 18): a sync on Ray Data against the in-process sync, same machine, same source.

Both sync folders of JPEGs with ViT-B-32 (random weights: the real compute cost; no
weights can be fetched here) into a fresh embedded index, interleaved `repeats` times,
with the encoder on every core (LOUPE_INGEST_THREADS = cores, in the actor too). The
Ray side runs on a real local cluster (`ray start --head`, 2 CPUs,
tests/integration/ray_head.py) with one encoder actor. Each engine syncs two sizes:
the slope of wall time against images is its cost per image, the intercept its fixed
cost per sync (for Ray: connecting, starting the actor and loading the model there).
The engine's overhead per image is the difference of the slopes. A projection to N
GPUs uses the measured per-image decode and driver-write costs and states its
assumptions.
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
from benchmarks.datasets import image_set

MODEL = "ViT-B-32"
KIND = "jpeg-small"
# Published ViT-B-32 throughput per GPU (clip-retrieval's inference notes): a consumer GPU, an A100.
GPU_RATES = {"consumer GPU": 1500.0, "A100": 2500.0}
PROJECTED_GPUS = (1, 2, 4, 8, 16, 32)
CORES_PER_GPU = 8  # the worker group's num-cpus in deploy/k8s/ray/rayjob-sync.yaml


def _settings(home: Path, address: str | None) -> Any:
    from service.config import IndexSettings, Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        model=MODEL,
        pretrained=None,
        index=IndexSettings(optimize_after_sync=False),
        ingest_threads=os.cpu_count(),
        sync={"ray_address": address, "ray_batch_size": 32, "ray_read_batch": 16, "ray_actors": 1},
    )


def one_sync(encoder: Any, root: Path, *, engine: str, address: str | None) -> dict[str, Any]:
    """Wall seconds and stage seconds per image of one sync into a fresh catalog."""
    from service.catalog.catalog import Catalog

    home = Path(tempfile.mkdtemp(prefix="loupe-bench-distributed-"))
    catalog = Catalog(_settings(home, address), encoder=encoder)
    try:
        catalog.add_source("bench", "local", {"path": str(root), "sidecars": False})
        t0 = time.perf_counter()
        job = catalog.sync("bench", engine=engine)
        wall = time.perf_counter() - t0
    finally:
        catalog.close()
        shutil.rmtree(home, ignore_errors=True)
    n = job.counts["added"]
    if job.state != "succeeded" or n == 0:
        raise RuntimeError(f"{engine} sync failed: {job.state} {job.detail} {job.errors[:3]}")
    return {"n": n, "wall": wall, "stages": {k: v / n for k, v in (job.timings or {}).items()}}


def measure(sizes: tuple[int, int], repeats: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    from service.encoder.clip import ClipEncoder
    from tests.integration.ray_head import RayHead

    roots = {n: image_set(KIND, n) for n in sizes}
    encoder = ClipEncoder(MODEL, None, device="cpu", query_threads=1, ingest_threads=os.cpu_count())
    head = RayHead().start()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    load = loadavg()
    try:
        for _ in range(repeats):
            for n in sizes:
                for engine in ("local", "ray"):
                    address = head.address if engine == "ray" else None
                    runs.setdefault((engine, n), []).append(
                        one_sync(encoder, roots[n], engine=engine, address=address)
                    )
    finally:
        import ray

        ray.shutdown()
        head.stop()

    def summary(engine: str) -> dict[str, Any]:
        small, large = (median([r["wall"] for r in runs[(engine, n)]]) for n in sizes)
        per_image = (large - small) / (sizes[1] - sizes[0])
        last = runs[(engine, sizes[1])]
        return {
            "n": sizes,
            "walls": (small, large),
            "per_image": per_image,
            "fixed": small - sizes[0] * per_image,
            "rate": sizes[1] / large,
            "stages": {k: median([r["stages"].get(k, 0.0) for r in last]) for k in last[0]["stages"]},
        }

    return summary("local"), summary("ray"), f"{load} -> {loadavg()}"


def tables(local: dict[str, Any], dist: dict[str, Any], load: str, repeats: int) -> list[Table]:
    small, large = local["n"]
    label = f"{KIND} images, {MODEL} random weights, {os.cpu_count()} cores, medians of {repeats}"
    main = Table(
        f"distributed (Ray, 1 actor) vs in-process sync, {label}",
        [
            "engine",
            f"wall s, {small} images",
            f"wall s, {large} images",
            f"img/s at {large}",
            "ms per image (slope)",
            "fixed s per sync (intercept)",
            "load before -> after",
        ],
    )
    for name, r in (("local", local), ("ray", dist)):
        main.add(name, *r["walls"], r["rate"], r["per_image"] * 1000, r["fixed"], load)
    main.notes.append(
        f"engine overhead per image: {(dist['per_image'] - local['per_image']) * 1000:+.1f} ms "
        f"({dist['per_image'] / local['per_image']:.2f}x the in-process cost per image); fixed cost of a "
        f"Ray sync beyond a local one: {dist['fixed'] - local['fixed']:.1f} s "
        "(connect, actor start, model load)"
    )
    stages = Table(
        f"where the time goes, ms per image at {large} images ({label})",
        ["engine", "list", "read*", "decode*", "encode", "upsert"],
    )
    for name, r in (("local", local), ("ray", dist)):
        st = {k: v * 1000 for k, v in r["stages"].items()}
        stages.add(name, *(st.get(k, 0.0) for k in ("list", "read", "decode", "encode", "upsert")))
    stages.notes.append(
        "* read and decode: summed over the fetch threads (local) or the Ray read tasks (ray); encode: "
        "the encoder's batches (in the actor for ray); upsert: the driver's index writes."
    )
    return [main, stages, projection(dist)]


def projection(dist: dict[str, Any]) -> Table:
    st = dist["stages"]
    encode_cpu = st.get("encode", 0.0)
    decode = st.get("read", 0.0) + st.get("decode", 0.0)
    upsert = st.get("upsert", 0.0)
    per_actor_cpu = 1 / encode_cpu if encode_cpu else float("nan")
    table = Table(
        "projection to N GPU actors (ViT-B-32 fp16), images/s",
        [
            "GPUs",
            *(f"{k}, Qdrant server" for k in GPU_RATES),
            "consumer GPU, embedded index",
            "50M images on consumer GPUs",
        ],
    )
    feed = CORES_PER_GPU / decode if decode else float("inf")  # what one GPU node's cores decode
    write_cap = 1 / upsert if upsert else float("inf")  # one driver writing the embedded index
    for gpus in PROJECTED_GPUS:
        rates = [gpus * min(rate, feed) for rate in GPU_RATES.values()]
        embedded = min(rates[0], write_cap)
        table.add(gpus, *rates, embedded, f"{50e6 / rates[0] / 3600:.1f} h")
    table.notes += [
        f"measured here per image: encode {encode_cpu * 1000:.1f} ms on one CPU actor "
        f"({per_actor_cpu:.1f} img/s per actor), read+decode {decode * 1000:.1f} ms on one core, "
        f"driver upsert {upsert * 1000:.2f} ms",
        f"assumed: a GPU actor encodes {', '.join(f'{v:,.0f}/s ({k})' for k, v in GPU_RATES.items())} "
        "(clip-retrieval's published ViT-B-32 numbers; not measurable here, no GPU); each GPU node has "
        f"{CORES_PER_GPU} cores decoding for its actor at the decode cost measured here; a Qdrant server "
        "takes the actors' writes without becoming the bound; throughput scales linearly in GPUs (Ray "
        "Data's streaming executor keeps every actor fed; no shared bottleneck besides the index)",
        "embedded index: the driver writes every batch, so it caps at 1 / (upsert per image); past that, "
        "use a Qdrant server (LOUPE_QDRANT_URL), where the actors write",
    ]
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--no-report", action="store_true", help="print only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    profile = Profile("full" if args.full else "quick")
    started = loadavg()
    sizes, repeats = profile.pick((16, 64), (64, 512)), profile.pick(2, 3)
    local, dist, load = measure(sizes, repeats)
    out = tables(local, dist, load, repeats)
    if args.no_report:
        print("\n".join(t.markdown() for t in out))
    else:
        report("distributed: sync on Ray vs in-process", profile, out, started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
