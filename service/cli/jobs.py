"""`loupe jobs list|show|cancel`: the long tasks of every kind (syncs, exports, ...)."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import print_json
from service.config import Settings

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def add_parser(subparsers: Any) -> None:
    jobs = subparsers.add_parser("jobs", help="list, show or cancel jobs (syncs, exports, ...)")
    jsub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = jsub.add_parser("list", help="recent jobs, newest first")
    ls.add_argument("--kind", help="only jobs of this kind (sync, export, ...)")
    ls.add_argument("--state", choices=STATES, help="only jobs in this state")
    ls.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    ls.add_argument("--json", action="store_true", help="print the jobs as JSON")
    show = jsub.add_parser("show", help="one job: counts, timings, errors")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the job as JSON")
    cancel = jsub.add_parser(
        "cancel", help="cancel a queued job, or stop a running one at its next step (keeping what it did)"
    )
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true", help="print the job as JSON")
    for p in (ls, show, cancel):
        p.set_defaults(run=run)


def _counts(job: dict[str, Any]) -> str:
    return ", ".join(f"{v} {k}" for k, v in job.get("counts", {}).items() if v)


def _line(job: dict[str, Any]) -> str:
    what = job["kind"] + (f" {job['source']}" if job.get("source") else "")
    state = job["state"] + (
        " (cancelling)" if job.get("cancel_requested") and job["state"] == "running" else ""
    )
    return f"{job['id']}  {what:<20} {state:<22} {job.get('progress', 0.0):>4.0%}  {_counts(job) or '-'}"


def print_details(job: dict[str, Any]) -> None:
    print(_line(job))
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            print(f"  {key.replace('_', ' ')}: {job[key]}")
    if job.get("timings"):
        print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in job["timings"].items()))
    for err in job.get("errors", [])[:20]:
        print(f"  failed: {err.get('key')}: {err.get('reason')}")
    if job.get("detail"):
        print(f"  detail: {job['detail']}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    client = connect(settings)
    try:
        if args.action == "list":
            jobs = client.list_jobs(kind=args.kind, state=args.state, limit=args.limit)
            if args.json:
                print_json(jobs)
            elif not jobs:
                print("no jobs yet")
            for job in [] if args.json else jobs:
                print(_line(job))
            return 0
        job = client.get_job(args.id) if args.action == "show" else client.cancel_job(args.id)
    finally:
        client.close()
    print_json(job) if args.json else print_details(job)
    return 0
