"""`loupe search`: by text, example assets or image files, under a filter."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings


def add_parser(subparsers: Any) -> None:
    search = subparsers.add_parser("search", help="search by text, example assets or an image")
    search.add_argument("text", nargs="?", help="a text query")
    search.add_argument(
        "--image", action="append", default=[], type=Path, help="an example image file (repeatable)"
    )
    search.add_argument(
        "--like", action="append", default=[], help="an asset id to find more of (repeatable)"
    )
    search.add_argument(
        "--unlike", action="append", default=[], help="an asset id to steer away from (repeatable)"
    )
    search.add_argument("--filter", help='a JSON filter, e.g. \'{"source": "photos"}\'')
    search.add_argument(
        "--space", help="the vector space to search (loupe spaces list); default: the encoder's"
    )
    search.add_argument("--vector", help="a raw query vector as a JSON list of numbers, e.g. '[0.1, 0.3]'")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--offset", type=int, default=0)
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(run=run)


def print_hits(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    hits = result["hits"]
    if not hits:
        print("no matches")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("score", "id", "source", "key", "size"):
        table.add_column(col)
    for h in hits:
        a = h["asset"]
        size = f"{a.get('width')}x{a.get('height')}" if a.get("width") else ""
        table.add_row(f"{h['score']:.3f}", h["id"], str(a.get("source")), str(a.get("key")), size)
    Console().print(table)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect
    from service.schemas import SearchRequest

    images = []
    for path in args.image:
        try:
            images.append(path.read_bytes())
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
    # An empty --filter means no filter here, as an empty filter= does in the API.
    flt = parse_filter_option(args.filter or None)
    try:
        req = SearchRequest(
            text=args.text,
            like=args.like,
            unlike=args.unlike,
            filter=flt,
            limit=args.limit,
            offset=args.offset,
            space=args.space,
            vector=_vector_option(args.vector),
        )
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None
    client = connect(settings)
    try:
        result = client.search(req, images=images)
    finally:
        client.close()
    print_json(result) if args.json else print_hits(result)
    return 0


def _vector_option(raw: str | None) -> list[float] | None:
    """`--vector JSON` as a list of floats (None when absent)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--vector is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise CliError("--vector must be a JSON list of numbers, e.g. '[0.1, 0.3]'")
    return [float(x) for x in value]
