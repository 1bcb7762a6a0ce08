"""`loupe sync NAME`: one sync with a progress bar, and its summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from service.cli.common import print_json
from service.config import Settings


def add_parser(subparsers: Any) -> None:
    sync = subparsers.add_parser("sync", help="sync a source (incremental)")
    sync.add_argument("name")
    sync.add_argument("--full", action="store_true", help="re-list everything, ignoring a saved cursor")
    sync.add_argument(
        "--prune", action="store_true", help="delete assets that are gone instead of marking them missing"
    )
    sync.add_argument(
        "--space", help="fill this user vector space with --model's vectors of the source's catalogued assets"
    )
    sync.add_argument("--model", help="with --space: an open_clip model name (e.g. ViT-S-32)")
    sync.add_argument("--pretrained", help="with --space: its pretrained tag or a local checkpoint path")
    sync.add_argument(
        "--engine",
        choices=("local", "ray"),
        help="local: in this process or the server (default: LOUPE_SYNC__ENGINE); "
        "ray: reads, decodes and encoding on a Ray cluster",
    )
    sync.add_argument(
        "--address",
        help="with --engine ray: the cluster's GCS address HOST:PORT, or auto "
        "(default: LOUPE_SYNC__RAY_ADDRESS; unset starts Ray in this process)",
    )
    sync.add_argument("--json", action="store_true", help="print the job as JSON")
    sync.set_defaults(run=run)


def print_job(job: dict[str, Any]) -> None:
    c = job["counts"]
    # Restored and deleted only when they happened: most syncs have neither.
    back = "".join(f", {c[k]} {k}" for k in ("restored", "deleted") if c.get(k))
    on = f" on {job['engine']}" if job.get("engine") not in (None, "local") else ""
    print(
        f"sync of {job['source']}{on} {job['state']}: {c['seen']} seen, {c['added']} added, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['missing']} missing{back}, "
        f"{c['failed']} failed"
    )
    if job.get("timings"):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in job["timings"].items())
        print(f"  seconds per stage: {stages} (read and decode summed over the fetch workers)")
    for err in job.get("errors", [])[:20]:
        print(f"  failed: {err['key']}: {err['reason']}")
    more = job.get("error_count", 0) - min(20, len(job.get("errors", [])))
    if more > 0:
        print(f"  ... and {more} more (GET /api/v1/jobs/{job['id']})")
    if job.get("detail"):
        print(f"  reason: {job['detail']}")


def print_space_sync(job: dict[str, Any]) -> None:
    c = job["counts"]
    print(
        f"sync of {job['source']} into a vector space {job['state']}: {c['seen']} seen, {c['added']} added, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['failed']} failed"
    )
    for err in job.get("errors", [])[:20]:
        print(f"  failed: {err['key']}: {err['reason']}")
    if job.get("detail"):
        print(f"  reason: {job['detail']}")


def sync_with_bar(args: argparse.Namespace, client: Any) -> dict[str, Any]:
    """Run a sync through `client` (a Client or a Catalog) with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TimeRemainingColumn(),
    )
    engine = {"engine": getattr(args, "engine", None), "address": getattr(args, "address", None)}
    with Progress(*columns, disable=args.json or not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task(f"syncing {args.name}", total=None, rate=0.0)

        def progress(p: Any) -> None:
            if not isinstance(p, dict):  # a SyncReport, from an in-process Catalog
                p = {"total": p.total, "done": p.done, "rate": p.rate}
            total = p.get("total") or None
            done = p.get("done")
            if done is None:
                done = round(p.get("progress", 0.0) * (p.get("counts", {}).get("seen") or 0))
                total = total or p.get("counts", {}).get("seen") or None
            bar.update(task, total=total, completed=done or 0, rate=p.get("rate", 0.0))

        if hasattr(client, "state"):  # a Catalog opened by this command
            from service.schemas import job_public

            row = client.sync(args.name, full=args.full, prune=args.prune, on_progress=progress, **engine)
            job = job_public(row).model_dump()
        else:
            job = client.sync(args.name, full=args.full, prune=args.prune, progress=progress, **engine)
    if not getattr(args, "quiet", False):
        print_json(job) if args.json else print_job(job)
    return job  # type: ignore[no-any-return]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    client = connect(settings)
    try:
        if args.space or args.model:  # a second model fills a user space
            job = client.sync_space(
                args.name, space=args.space, model=args.model, pretrained=args.pretrained, full=args.full
            )
            print_json(job) if args.json else print_space_sync(job)
            return 0 if job["state"] == "succeeded" else 1
        job = sync_with_bar(args, client)
    finally:
        client.close()
    return 0 if job["state"] == "succeeded" else 1
