"""`loupe signals compute KIND`, `loupe signals list`, `loupe duplicates`: curation signals."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings
from service.signals.schemas import KINDS, SignalRequest

USAGE = (
    "loupe signals compute KIND [--filter JSON] [--k N] [--threshold X] [--weights W ...] "
    "[--ground-truth SET] [--predictions SET] [--space NAME] [--full] [--json] | loupe signals list [--json]"
)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "signals",
        help="curation signals: duplicates, uniqueness, outliers, typicality, label issues, clusters",
        usage=USAGE,
        description=f"Compute a signal over the assets under a filter ({', '.join(KINDS)}), or list "
        "the computed ones and whether they are stale.",
    )
    p.add_argument("action", choices=("compute", "list"))
    p.add_argument("kind", nargs="?", help=f"compute: one of {', '.join(KINDS)}")
    p.add_argument("--filter", help="score only the assets this JSON filter keeps")
    p.add_argument("--k", type=int, help="neighbours per asset (clusters: the smallest cluster)")
    p.add_argument("--threshold", type=float, help="duplicates: a cosine distance; scores: the flagged cut")
    p.add_argument("--weights", type=float, nargs="+", help="uniqueness: one weight per neighbour")
    p.add_argument("--ground-truth", help="label_issues: the ground-truth set to check")
    p.add_argument("--predictions", help="label_issues: a predictions set to weigh in")
    p.add_argument("--space", help="a vector space (default: the encoder's)")
    p.add_argument("--full", action="store_true", help="recompute every asset, not only what changed")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)
    d = subparsers.add_parser(
        "duplicates",
        help="list duplicate groups (after `loupe signals compute duplicates`)",
        usage="loupe duplicates [--filter JSON] [--limit N] [--json]",
        description="Duplicate groups whose kept asset matches the filter, the kept id first.",
    )
    d.add_argument("--filter", help="groups whose kept asset this JSON filter keeps")
    d.add_argument("--limit", type=int, default=50, help="at most this many groups (default 50)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(run=run_duplicates)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filter": parse_filter_option(args.filter),
        "k": args.k,
        "threshold": args.threshold,
        "weights": args.weights,
        "ground_truth": args.ground_truth,
        "predictions": args.predictions,
        "space": args.space,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if args.full:
        body["incremental"] = False
    try:
        SignalRequest.model_validate(body)
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None
    return body


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    if args.action == "compute" and args.kind is None:
        raise CliError(f"signals compute needs KIND: one of {', '.join(KINDS)}")
    body = _body(args) if args.action == "compute" else {}
    client = connect(settings)
    try:
        if args.action == "list":
            rows = client.list_signals()
            if args.json:
                print_json(rows)
                return 0
            for r in rows:
                stale = f", stale: {r['stale_count']} new" if r["stale"] else ""
                print(
                    f"{r['kind']:<13} {r['field']:<24} {r['state']:<9} {r['scored']}/{r['assets']} assets"
                    f"{stale}  filter={r['filter'] or {}}  at {r['computed_at'] or '-'}"
                )
            if not rows:
                print("no signals computed yet: loupe signals compute KIND")
            return 0
        job = client.compute_signal(
            args.kind, body, progress=lambda job: print(".", end="", file=sys.stderr, flush=True)
        )
    finally:
        client.close()
    if args.json:
        print_json(job)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in job["counts"].items())
        print(f"{args.kind}: {job['state']} ({counts})" + (f": {job['detail']}" if job.get("detail") else ""))
    return 0 if job["state"] == "succeeded" else 1


def run_duplicates(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    flt = parse_filter_option(args.filter)
    client = connect(settings)
    try:
        groups = client.list_duplicates(filter=flt, limit=args.limit)
    finally:
        client.close()
    if args.json:
        print_json(groups)
        return 0
    for g in groups:
        others = ", ".join(i for i in g["ids"] if i != g["keep"])
        print(f"{g['group']}: keep {g['keep']}; {len(g['ids']) - 1} more: {others}")
    if not groups:
        print("no duplicate groups: loupe signals compute duplicates")
    return 0
