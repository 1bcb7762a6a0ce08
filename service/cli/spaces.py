"""`loupe spaces list|add|remove|import`: vector spaces, and vectors imported into one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.cli.common import print_json
from service.config import Settings


def add_parser(subparsers: Any) -> None:
    spaces = subparsers.add_parser(
        "spaces", help="list, add or remove vector spaces; import vectors into one"
    )
    ssub = spaces.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = ssub.add_parser("list", help="the encoder's space and the user spaces, with their counts")
    add = ssub.add_parser("add", help="add a user space (a named vector of every asset)")
    add.add_argument("name", help="lower-case letters, digits, - and _")
    add.add_argument("--dim", type=int, required=True, help="components per vector")
    add.add_argument("--distance", choices=("cosine", "dot", "euclid"), default="cosine")
    rm = ssub.add_parser("remove", help="remove a user space and its vectors")
    rm.add_argument("name")
    imp = ssub.add_parser(
        "import",
        help="import vectors from .npz (vectors + ids), .parquet or .jsonl (asset_id or source+key, vector)",
    )
    imp.add_argument("name", help="the user space")
    imp.add_argument("file", type=Path)
    for p in (ls, add, rm, imp):
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(run=run)


def _line(space: dict[str, Any]) -> str:
    what = (
        "encoder" if space["encoder"] else (f"model {space['model']}" if space.get("model") else "imported")
    )
    stale = f", {space['stale']} stale" if space.get("stale") else ""
    shape = f"{space['dim']:>5}  {space['distance']:<7}"
    return f"{space['name']:<40} {shape} {space['count']:>8} assets{stale}  ({what})"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    client = connect(settings)
    try:
        if args.action == "list":
            out: Any = client.list_spaces()
            if not args.json:
                for space in out:
                    print(_line(space))
        elif args.action == "add":
            out = client.add_space(args.name, dim=args.dim, distance=args.distance)
            if not args.json:
                print(f"added {_line(out)}")
        elif args.action == "remove":
            client.remove_space(args.name)
            out = {"removed": args.name}
            if not args.json:
                print(f"removed the space {args.name} and its vectors")
        else:
            out = client.import_vectors(args.name, args.file)
            if not args.json:
                _print_import(out)
    finally:
        client.close()
    if args.json:
        print_json(out)
    return 0 if args.action != "import" or out["state"] == "succeeded" else 1


def _print_import(job: dict[str, Any]) -> None:
    c = job["counts"]
    print(
        f"vector import {job['state']}: {c['received']} received, {c['imported']} imported, "
        f"{c['unknown_asset']} unknown asset(s)"
    )
    for err in job.get("errors", [])[:20]:
        print(f"  {err['key']}: {err['reason']}")
    if job.get("detail"):
        print(f"  reason: {job['detail']}")
