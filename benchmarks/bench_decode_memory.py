"""Decode memory (issue 13): peak RSS of a sync over large PNGs, with and without a pixel budget.

A folder of 20-89 MP PNGs (smooth colour fields with shapes, a quarter with
alpha; generated once under /tmp, about 3 MB per image) is synced with loupe-tiny
into a fresh catalog, each configuration in its own process, which samples its
RSS every 10 ms during the sync and reports the peak (and getrusage's). The
`before` run is an older revision's code (`git archive` of service/ and
connectors/), so the same measurement compares the code as it was.

    python -m benchmarks.bench_decode_memory [--full] [--before REV] [--budgets default,none]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The last commit before the pixel budget (LOUPE_INGEST__MAX_PIXELS_IN_FLIGHT).
BEFORE = "845447b"
MIN_MP, MAX_MP = 20, 89  # Pillow's bomb warning starts just above 89.4 MP


# -- the measured process (imports only the stdlib and the code under test) --------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(data: Path, budget: str) -> dict[str, Any]:
    """Sync `data` with loupe-tiny under `budget` ("default", "none" or pixels); RSS and timings."""
    from service.catalog.catalog import Catalog
    from service.config import IndexSettings, IngestSettings, Settings

    ingest: dict[str, Any] = {}
    if budget != "default":
        if "max_pixels_in_flight" not in IngestSettings.model_fields:
            if budget != "none":
                raise SystemExit("this revision has no max_pixels_in_flight; use --budgets default")
        else:
            ingest["max_pixels_in_flight"] = None if budget == "none" else int(budget)
    home = Path(tempfile.mkdtemp(prefix="loupe-bench-decode-"))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        model="loupe-tiny",
        pretrained=None,
        index=IndexSettings(optimize_after_sync=False),
        ingest=IngestSettings(**ingest),
    )
    catalog = Catalog(settings)
    catalog.add_source("big", "local", {"path": str(data)})
    ready = _rss_mib()
    peak, stop = [ready], threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    job = catalog.sync("big")
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    catalog.close()
    return {
        "state": job.state,
        "added": job.counts.get("added", 0),
        "failed": job.counts.get("failed", 0),
        "errors": (job.errors or [])[:3],
        "wall_s": wall,
        "rss_ready_mib": ready,
        "rss_peak_mib": peak[0],
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "budget": ingest.get("max_pixels_in_flight", getattr(settings.ingest, "max_pixels_in_flight", None)),
        "fetch_workers": settings.ingest.fetch_workers,
        "timings": dict(getattr(job, "timings", None) or {}),
    }


# -- the driver ------------------------------------------------------------------------------


def large_pngs(n: int, *, seed: int = 13, root: Path | None = None) -> Path:
    """`n` PNGs of MIN_MP..MAX_MP (every fourth RGBA), generated once and reused."""
    import numpy as np
    from PIL import Image, ImageDraw

    root = root or Path(tempfile.gettempdir()) / f"loupe-bench-large-png-{n}-s{seed}"
    if (root / ".complete").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    megapixels = np.linspace(MIN_MP, MAX_MP, n)
    rng.shuffle(megapixels)
    for i, mp in enumerate(megapixels):
        aspect = float(rng.uniform(1.0, 1.8))
        height = int((mp * 1e6 / aspect) ** 0.5)
        width = int(mp * 1e6 / height)
        mode = "RGBA" if i % 4 == 3 else "RGB"
        coarse = rng.integers(0, 256, size=(4, 5, len(mode)), dtype=np.uint8)
        img = Image.fromarray(coarse, mode).resize((width, height), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            r = int(rng.integers(height // 20, height // 4))
            fill = tuple(int(c) for c in rng.integers(0, 256, len(mode)))
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
        img.save(root / f"big_{i:03d}.png", compress_level=1)
        del img, draw
    (root / ".complete").write_text(str(n))
    return root


def code_of(rev: str | None) -> Path:
    """A directory whose service/ and connectors/ are revision `rev` (None: this clone)."""
    if rev is None:
        return ROOT
    out = Path(tempfile.mkdtemp(prefix=f"loupe-bench-{rev}-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "service", "connectors"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def measure(code: Path, data: Path, budget: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    # The code under test first: ahead of the editable install's finder (a meta path hook).
    env["PYTHONPATH"] = str(code)
    cmd = [sys.executable, __file__, "--child", str(data), "--budget", budget]
    out = subprocess.run(cmd, env=env, cwd=code, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true")
    p.add_argument("--before", default=BEFORE, help="revision to measure as 'before' ('' to skip)")
    p.add_argument("--budgets", default="default,none", help="this clone's budgets: default, none, or pixels")
    p.add_argument("--data", type=Path, default=None, help="where the PNGs are generated (default /tmp)")
    p.add_argument("--no-report", action="store_true", help="print only, do not append to RESULTS.md")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--budget", default="default", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.budget)), flush=True)
        return 0

    from benchmarks.common import Profile, Table, loadavg, report

    profile = Profile("full" if args.full else "quick")
    started = loadavg()
    n = profile.pick(40, 160)
    t0 = time.perf_counter()
    data = large_pngs(n, root=args.data)
    made = time.perf_counter() - t0
    files = sorted(data.glob("*.png"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    runs = [(f"before ({args.before})", code_of(args.before), "default")] if args.before else []
    runs += [(f"after, budget {b}", ROOT, b) for b in args.budgets.split(",") if b]
    table = Table(
        f"sync of {n} PNGs of {MIN_MP}-{MAX_MP} MP ({mb:.0f} MB on disk), loupe-tiny, one process per row",
        ["code", "pixels in flight", "added", "RSS ready MiB", "peak RSS MiB", "peak - ready", "s", "img/s"],
    )
    for label, code, budget in runs:
        print(f"  {label} ...", flush=True)
        r = measure(code, data, budget)
        if r["state"] != "succeeded" or r["added"] != n:
            raise RuntimeError(f"{label}: {r['state']}, {r['added']} added, {r['errors']}")
        pixels = "unbounded" if r["budget"] is None else f"{r['budget'] / 1e6:.0f} MP"
        peak = max(r["rss_peak_mib"], r["maxrss_mib"])
        table.add(
            label,
            pixels,
            r["added"],
            r["rss_ready_mib"],
            peak,
            peak - r["rss_ready_mib"],
            r["wall_s"],
            n / r["wall_s"],
        )
        if r["timings"]:
            table.notes.append(
                f"{label}: seconds per stage " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
            )
    table.notes.append(
        f"fetch_workers {r['fetch_workers']} (default); every fourth image RGBA; images generated in "
        f"{made:.0f} s (once, then reused); peak RSS = max of 10 ms samples and getrusage"
    )
    if args.no_report:
        print(table.markdown())
    else:
        report("decode memory: peak RSS over large PNGs", profile, [table], started_load=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
