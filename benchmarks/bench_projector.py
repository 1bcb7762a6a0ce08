"""The projector at scale (issue 7): `python -m benchmarks.bench_projector [--n N] [--no-browser]`.

Builds an embedded index of N structured 512-d vectors with realistic payloads
(the generator of benchmarks.bench_index), then measures:

* the layout, UMAP (the default: fitted on a 20,000 sample, the rest placed by
  transform) and PCA: one pass over the index (vectors and colourable fields)
  in the projector's background thread, and the memory it takes;
* the clusters signal (HDBSCAN on a 10-d UMAP), its time, memory and agreement
  (adjusted Rand index) with the generator's planted clusters;
* reopening: a new projector reading the cached layout from disk;
* the binary endpoints through real HTTP: GET /projector/points and
  /projector/colors (bytes and latency);
* in Chromium (when installed), the page itself: navigation to a drawn, coloured
  map; drawing all N points; a zoom frame; hover lookups; box and lasso
  selections; turning a selection into asset ids; switching the colour field.

Quick profile: N = 100,000 (the issue's figure). --full: N = 1,000,000.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_index import DIM, Generator, payloads, point_id
from benchmarks.common import Profile, Table, loadavg, median, ms, report

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
HTTP_REPEATS = 5

# Runs in the page: the map's own code (main.js exports it) on the loaded layout.
PAGE_MEASURE = """async () => {
  const { map } = await import('/static/js/main.js');
  const s = map.scatter;
  const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  const time = (fn) => {
    const t = performance.now();
    const out = fn();
    return [performance.now() - t, out];
  };
  const draws = Array.from({ length: 15 }, () => s.render());
  const zooms = [1.3, 1.3, 1 / 1.3, 1 / 1.3].map((f) => {
    s.zoomAt(s.cssW / 2, s.cssH / 2, f);
    return s.render();
  });
  const [hoverMs] = time(() => {
    for (let i = 0; i < 1000; i++) s.nearest(Math.random() * s.cssW, Math.random() * s.cssH);
  });
  const [boxMs, box] = time(() => s.inRect(0, 0, s.cssW / 2, s.cssH));
  const circle = Array.from({ length: 80 }, (_, k) => [
    s.cssW / 2 + (s.cssH / 3) * Math.cos((2 * Math.PI * k) / 80),
    s.cssH / 2 + (s.cssH / 3) * Math.sin((2 * Math.PI * k) / 80)]);
  const [lassoMs, lasso] = time(() => s.inPolygon(circle));
  const [selectMs] = time(() => { map.select(lasso, 'replace'); return s.render(); });
  const selectedDraw = med(Array.from({ length: 5 }, () => s.render()));
  const [idsMs, ids] = time(() => map.selectedIds());
  const t0 = performance.now();
  await map.loadColors('meta.site');
  const recolourMs = performance.now() - t0;
  return { n: s.n, draw: med(draws), drawMax: Math.max(...draws), zoom: med(zooms), hover: hoverMs / 1000,
           box: boxMs, boxCount: box.length, lasso: lassoMs, lassoCount: lasso.length, select: selectMs,
           selectedDraw, ids: idsMs, idCount: ids.length, recolour: recolourMs,
           canvas: [s.canvas.width, s.canvas.height] };
}"""


class BenchEncoder:
    """Only the identity the catalog names its vectors by: the vectors come from the generator."""

    model_name = "bench"
    pretrained = None
    identity = "bench/none"
    image_size = 32
    dim = DIM


def build_catalog(home: Path, n: int) -> tuple[Any, Any, float]:
    from service.catalog.catalog import Catalog
    from service.config import Settings
    from service.index.base import FieldType, Point

    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    settings.index.optimize_after_sync = False
    catalog = Catalog(settings, encoder=BenchEncoder())
    for name in ("meta.site", "meta.split", "meta.label"):
        catalog.index.ensure_field(name, FieldType.keyword)
    catalog.index.ensure_field("meta.score", FieldType.float)
    catalog.index.ensure_field("meta.captured_at", FieldType.datetime)
    t0 = time.perf_counter()
    for c in Generator(n).chunks():
        rows = zip(c["row"], c["vectors"], payloads(c), strict=True)
        catalog.index.upsert([Point(id=point_id(int(r)), vector=v, payload=p) for r, v, p in rows])
        print(f"  upserted {int(c['row'][-1]) + 1:,}", end="\r", flush=True)
    catalog.index.flush()
    print(flush=True)
    return settings, catalog, time.perf_counter() - t0


def _rss_mib() -> float:
    """Resident memory now (the peak so far would hide the projector behind the upsert's)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure_layout(catalog: Any, directory: Path, method: str) -> dict[str, float]:
    from service.catalog.projector import Projector

    rss0 = peak = _rss_mib()
    projector = Projector(index=catalog.index, state=catalog.state, directory=directory)
    t0 = time.perf_counter()
    while (st := projector.status(method))["state"] != "ready":
        if st["state"] == "failed":
            raise RuntimeError(f"the {method} layout failed: {st['detail']}")
        peak = max(peak, _rss_mib())
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    layout = projector.layout(method)
    projector.close()
    t0 = time.perf_counter()
    again = Projector(index=catalog.index, state=catalog.state, directory=directory)
    assert again.status(method)["available"]
    reopen = time.perf_counter() - t0
    return {
        "layout_s": wall,
        "inside_s": layout.seconds,
        "columns": len(layout.columns),
        "rss_growth_mib": peak - rss0,
        "peak_rss_mib": peak,
        "reopen_s": reopen,
        "cache_mib": (directory / f"{method}.npz").stat().st_size / 2**20,
    }


def warm_umap() -> float:
    """Compile umap-learn's numba code once (a running server pays this on its first layout)."""
    import numpy as np

    from service.catalog.reduce import Streamed, UmapReduction

    t0 = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(6000, DIM)).astype(np.float32)
    for dims in (2, 10):  # the map's and the clusters' (fit > 4,096 takes pynndescent's path, as at scale)
        streamed = Streamed(UmapReduction(dims), fit=5000, batch=1000)
        streamed.add(x)
        streamed.result()
    return time.perf_counter() - t0


def measure_fit_curve(sizes: list[int]) -> list[tuple[int, float, float]]:
    """UMAP (2-d) fit time by sample size, and the transform rate of a batch on each fitted model."""
    import numpy as np

    from service.catalog.reduce import TRANSFORM_BATCH, UmapReduction

    gen = Generator(max(sizes) + TRANSFORM_BATCH)
    x = np.concatenate([c["vectors"] for c in gen.chunks()])
    batch = x[-TRANSFORM_BATCH:]
    out = []
    for size in sizes:
        reduction = UmapReduction(2)
        t0 = time.perf_counter()
        reduction.fit(x[:size])
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        reduction.transform(batch)
        rate = len(batch) / (time.perf_counter() - t0)
        out.append((size, fit, rate))
        print(f"    sample {size:,}: fit {fit:.1f} s, transform {rate:,.0f} points/s", flush=True)
    return out


def planted_clusters(n: int) -> Any:
    """The generator's own cluster of every row (its first draw per chunk, see bench_index.Generator)."""
    import numpy as np

    from benchmarks.bench_index import CHUNK, CLUSTERS, SEED

    gen = Generator(n)
    parts = [
        np.random.default_rng([SEED, start]).choice(CLUSTERS, size=min(start + CHUNK, n) - start, p=gen.sizes)
        for start in range(0, n, CHUNK)
    ]
    return np.concatenate(parts)


def measure_clusters(catalog: Any, n: int) -> dict[str, Any]:
    """The clusters signal, run as its job runs it, with a sampler of this process's memory."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from service.index.base import Condition, Filter
    from service.signals.plan import run_now
    from service.signals.schemas import SignalRequest
    from service.signals.store import SignalStore

    rss0 = _rss_mib()
    peak = [rss0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    row = run_now(catalog, "clusters", SignalRequest.model_validate({}))
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    if row.state != "succeeded":
        raise RuntimeError(f"the clusters signal failed: {row.detail}")
    rows = {point_id(i): i for i in range(n)}
    found = np.full(n, -2)
    cursor = None
    flt = Filter(must=[Condition(key="signals.cluster", exists=True)])
    while True:
        recs, cursor = catalog.index.scroll(filter=flt, limit=4096, cursor=cursor, fields=["signals"])
        for r in recs:
            found[rows[r.id]] = int(r.payload["signals"]["cluster"])
        if cursor is None:
            break
    truth = planted_clusters(n)
    kept = found >= 0
    return {
        "seconds": seconds,
        "rss_growth_mib": peak[0] - rss0,
        "peak_rss_mib": peak[0],
        "clusters": int(len(np.unique(found[kept]))),
        "planted": int(len(np.unique(truth))),
        "noise": float(np.mean(found == -1)),
        "ari": float(adjusted_rand_score(truth, found)),
        "ari_clustered": float(adjusted_rand_score(truth[kept], found[kept])) if kept.any() else 0.0,
        "reduction": SignalStore(catalog.state).list(kind="clusters")[0].params["reduction"],
    }


class Server:
    """uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def measure_http(url: str) -> list[tuple[str, float, int]]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        while not client.get("/api/v1/projector").json()["available"]:
            time.sleep(0.1)
        for name, path in [
            ("GET /projector (status)", "/api/v1/projector"),
            ("GET /projector/points", "/api/v1/projector/points"),
            ("GET /projector/colors (label)", "/api/v1/projector/colors?field=meta.label"),
            ("GET /projector/colors (captured_at)", "/api/v1/projector/colors?field=meta.captured_at"),
        ]:
            times, size = [], 0
            for _ in range(HTTP_REPEATS):
                t0 = time.perf_counter()
                resp = client.get(path)
                times.append(time.perf_counter() - t0)
                resp.raise_for_status()
                size = len(resp.content)
            out.append((name, ms(median(times)), size))
    return out


def measure_page(url: str) -> dict[str, Any] | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("  chromium is not installed: page timings skipped", flush=True)
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        t0 = time.perf_counter()
        page.goto(f"{url}/#map")
        page.wait_for_selector("#map-legend .legend-item", timeout=120_000)
        loaded = time.perf_counter() - t0
        result: dict[str, Any] = page.evaluate(PAGE_MEASURE)
        result["load_s"] = loaded
        artifacts = Path(__file__).resolve().parents[1] / "tests" / ".artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(artifacts / "bench-projector.png"))
        browser.close()
    return result


def tables(
    n: int,
    upsert_s: float,
    lays: dict[str, dict[str, float]],
    warm_s: float | None,
    clus: dict[str, Any] | None,
    curve: list[tuple[int, float, float]],
    http: list[Any],
    page: dict[str, Any] | None,
) -> list[Table]:
    t1 = Table(f"projector layout, {n:,} points x {DIM}", ["step", *lays])
    t1.add("upsert (context, not the projector)", *[f"{upsert_s:.1f} s" for _ in lays])
    rows = [
        ("layout: status -> ready (scan + fit + transform + columns + cache write)", "layout_s", "{:.1f} s"),
        ("  of which inside the computation", "inside_s", "{:.1f} s"),
        ("peak RSS growth while computing", "rss_growth_mib", "{:.0f} MiB"),
        ("peak RSS of the process (holds the index too)", "peak_rss_mib", "{:.0f} MiB"),
        ("cache file on disk", "cache_mib", "{:.1f} MiB"),
        ("reopen: new projector, cached layout available", "reopen_s", "{:.2f} s"),
    ]
    for label, key, fmt in rows:
        t1.add(label, *[fmt.format(lay[key]) for lay in lays.values()])
    t1.add("colour columns", *[int(lay["columns"]) for lay in lays.values()])
    if warm_s is not None:
        t1.notes.append(
            f"umap-learn's numba code compiled before the clock started: {warm_s:.0f} s (once per process)."
        )
    t1.notes.append(
        "UMAP: fitted on the first 20,000 vectors of the scan, the rest placed by transform in batches."
    )
    tabs = [t1]
    if curve:
        tf = Table(
            "UMAP fit time by sample size (2-d, cosine, seed 0)", ["sample", "fit s", "transform points/s"]
        )
        for size, fit, rate in curve:
            tf.add(f"{size:,}", f"{fit:.1f}", f"{rate:,.0f}")
        tf.notes.append(
            "transform rate: one batch of 16,384 generator vectors placed on the fitted model; "
            "a layout of N points costs about fit + (N - sample) / rate + the scan."
        )
        tabs.append(tf)
    if clus is not None:
        tc = Table(f"clusters signal, {n:,} points ({clus['reduction']} then HDBSCAN)", ["what", "value"])
        tc.add("run_now('clusters'): scan + reduce + HDBSCAN + write", f"{clus['seconds']:.1f} s")
        tc.add("peak RSS growth", f"{clus['rss_growth_mib']:.0f} MiB")
        tc.add("peak RSS of the process", f"{clus['peak_rss_mib']:.0f} MiB")
        tc.add("clusters found / planted", f"{clus['clusters']} / {clus['planted']}")
        tc.add("noise (-1) share", f"{clus['noise']:.3f}")
        tc.add("adjusted Rand index vs planted (noise as a cluster)", f"{clus['ari']:.3f}")
        tc.add("adjusted Rand index vs planted (clustered points only)", f"{clus['ari_clustered']:.3f}")
        tabs.append(tc)
    t2 = Table("projector endpoints over HTTP (median of 5)", ["request", "ms", "bytes"])
    for name, latency, size in http:
        t2.add(name, latency, size)
    tabs.append(t2)
    if page is not None:
        t3 = Table(
            f"the map in Chromium, {page['n']:,} points, canvas {page['canvas'][0]}x{page['canvas'][1]}",
            ["what", "ms"],
        )
        t3.add("navigate to /#map until drawn and coloured", ms(page["load_s"]))
        t3.add("draw all points (median of 15)", page["draw"])
        t3.add("draw all points (slowest of 15)", page["drawMax"])
        t3.add("zoom frame (median of 4)", page["zoom"])
        t3.add("hover: nearest point (per lookup)", page["hover"])
        t3.add(f"box select, left half ({page['boxCount']:,} points)", page["box"])
        t3.add(f"lasso select, 80-vertex circle ({page['lassoCount']:,} points)", page["lasso"])
        t3.add("apply the selection and redraw", page["select"])
        t3.add("draw with a selection (median of 5)", page["selectedDraw"])
        t3.add(f"selection -> {page['idCount']:,} asset ids", page["ids"])
        t3.add("switch colour field (fetch + colour + draw)", page["recolour"])
        t3.notes.append(
            "Canvas 2D, points written into one ImageData buffer; no WebGL, no GPU (--disable-gpu)."
        )
        tabs.append(t3)
    return tabs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true", help="N = 1,000,000")
    p.add_argument("--n", type=int, default=None, help="points (overrides the profile)")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    p.add_argument("--methods", default="umap,pca", help="layouts to measure, comma-separated")
    p.add_argument("--no-clusters", action="store_true", help="skip the clusters signal")
    p.add_argument(
        "--fit-curve", default="5000,10000,20000,40000", help="UMAP sample sizes to time ('' to skip)"
    )
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    n = args.n or profile.pick(100_000, 1_000_000)
    methods = [m for m in args.methods.split(",") if m]
    started = loadavg()
    home = Path(tempfile.mkdtemp(prefix="loupe-bench-projector-"))
    try:
        print(f"  building an index of {n:,} points ...", flush=True)
        settings, catalog, upsert_s = build_catalog(home, n)
        warm_s = None
        if "umap" in methods or not args.no_clusters:
            print("  compiling umap-learn (numba) ...", flush=True)
            warm_s = warm_umap()
        lays = {}
        for method in methods:
            print(f"  computing the {method} layout ...", flush=True)
            lays[method] = measure_layout(catalog, home / "projector", method)
            print(f"    {lays[method]}", flush=True)
        clus = None
        if not args.no_clusters:
            print("  running the clusters signal ...", flush=True)
            try:
                clus = measure_clusters(catalog, n)
                print(f"    {clus}", flush=True)  # all of it now: a run stopped later keeps these
            except Exception:  # the layouts' figures still get reported
                traceback.print_exc()
        curve = []
        if args.fit_curve:
            print("  UMAP fit time by sample size ...", flush=True)
            try:
                curve = measure_fit_curve([int(v) for v in args.fit_curve.split(",")])
            except Exception:
                traceback.print_exc()
        from service.api.app import create_app

        with Server(create_app(settings, catalog=catalog)) as server:
            http = measure_http(server.url)
            page = None if args.no_browser else measure_page(server.url)
        catalog.close()
        tabs = tables(n, upsert_s, lays, warm_s, clus, curve, http, page)
        report("bench_projector", profile, tabs, started_load=started)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
