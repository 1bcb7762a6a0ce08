"""Run Loupe's benchmark suite: `python -m benchmarks.run [--full] [--only NAME[,NAME]] [--nice N]`.

Each benchmark runs in its own process (torch thread settings, memory and
open indexes never leak from one to the next), prints its tables and appends
them to benchmarks/RESULTS.md with the machine, versions and load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchmarks.common import BENCH_DIR, Table, append_results, loadavg, machine, machine_line

# name -> (module, what it measures); order = cheapest first.
BENCHES: dict[str, tuple[str, str]] = {
    "fiftyone": ("benchmarks.bench_fiftyone", "side by side with FiftyOne (issue 8 part 2)"),
    "ingest": ("benchmarks.bench_ingest", "sync throughput vs the encoder alone (part 3)"),
    "decode-memory": ("benchmarks.bench_decode_memory", "peak RSS of a sync over 20-89 MP PNGs (issue 13)"),
    "encoder": ("benchmarks.bench_encoder_options", "ONNX, int8, threads (part 4)"),
    "index": ("benchmarks.bench_index", "the embedded index at scale (part 5)"),
    "api": ("benchmarks.bench_api", "API load, re-sync, queries during a sync (parts 6-8)"),
    "s3": ("benchmarks.bench_s3", "S3 connector against a local SeaweedFS (issue 4)"),
    "sql": ("benchmarks.bench_sql", "SQL connector listing (issue 5)"),
    "projector": ("benchmarks.bench_projector", "the 2-D map of the catalog (issue 7)"),
    "jobs": ("benchmarks.bench_jobs", "the durable job queue on SQLite and PostgreSQL (issue 13)"),
    "distributed": ("benchmarks.bench_distributed", "a sync on Ray Data vs the in-process sync (issue 18)"),
    "diagnostics": ("benchmarks.bench_diagnostics", "evaluations at scale, beside FiftyOne (issue 14)"),
    "vectors": ("benchmarks.bench_vectors", "vector imports from Parquet, search in a user space (issue 17)"),
    "curation": ("benchmarks.bench_curation", "signals, FiftyOne Brain beside, diversity at 1M (issue 15)"),
    "active_learning": ("benchmarks.bench_active_learning", "labels saved by selections (issue 15)"),
    "payload-write": ("benchmarks.bench_payload_write", "memory a signal's payload write moves (issue 15)"),
    "labeling": ("benchmarks.bench_labeling", "propagation's precision vs its target, speed (issue 16)"),
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--full", action="store_true", help="the issue's sizes (hours), not the quick profile")
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHES)}")
    p.add_argument("--nice", type=int, default=0, help="run the benchmarks at this niceness")
    return p.parse_args(argv)


def _selected(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    return names


def _command(module: str, *, full: bool, nice: int) -> list[str]:
    cmd = [sys.executable, "-m", module] + (["--full"] if full else [])
    return (["nice", "-n", str(nice)] + cmd) if nice else cmd


def _available(module: str) -> bool:
    return (BENCH_DIR / f"{module.rsplit('.', 1)[-1]}.py").exists()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    names = _selected(args.only)
    profile = "full" if args.full else "quick"
    info = machine()
    append_results(f"\n## Suite run ({profile}): {', '.join(names)}\n\nMachine: {machine_line(info)}\n")
    summary = Table(f"suite summary ({profile})", ["benchmark", "what", "exit", "seconds", "load after"])
    failed = 0
    for name in names:
        module, what = BENCHES[name]
        if not _available(module):
            summary.add(name, what, "missing", 0.0, loadavg())
            continue
        print(f"\n== {name}: {what} ==", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(_command(module, full=args.full, nice=args.nice), cwd=BENCH_DIR.parent).returncode
        failed += rc != 0
        summary.add(name, what, rc, time.monotonic() - t0, loadavg())
    text = summary.markdown()
    print("\n" + text, flush=True)
    append_results(text)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
