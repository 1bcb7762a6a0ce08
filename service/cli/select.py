"""`loupe select NAME --budget N --strategy KIND[:OPTION=VALUE,...]`; `loupe selections list|show|remove`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings

SELECT_USAGE = (
    "loupe select NAME --budget N --strategy KIND[:OPTION=VALUE,...] [--strategy ...] "
    "[--filter JSON] [--exclude-labeled SET] [--space NAME] [--include-selected] [--include-exported] "
    "[--json]"
)
STRATEGY_HELP = (
    "a strategy (repeat to combine): uncertainty:predictions=SET,measure=margin|entropy|least_confidence; "
    "diversity; balance:field=F[,target=A:2|B:1]; similar:like=ID|ID or similar:text=TEXT; "
    "field:field=signals.uniqueness; any of them with strength=X"
)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "select",
        help="choose which assets to label next under a budget (a named selection)",
        usage=SELECT_USAGE,
        description="Choose BUDGET assets by uncertainty, diversity, balance, similarity or a field; "
        'the result is a selection: filter {"selections": NAME}, export with --selection NAME.',
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--budget", type=int, required=True, help="how many assets to choose")
    p.add_argument(
        "--strategy", action="append", default=[], metavar="KIND[:OPTION=VALUE,...]", help=STRATEGY_HELP
    )
    p.add_argument("--filter", help="choose among the assets this JSON filter keeps")
    p.add_argument("--exclude-labeled", metavar="SET", help="a ground-truth set whose assets are not chosen")
    p.add_argument("--space", help="the vector space for diversity and similarity")
    p.add_argument("--include-selected", action="store_true", help="also choose assets of earlier selections")
    p.add_argument("--include-exported", action="store_true", help="also choose assets already exported")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_select)

    q = subparsers.add_parser(
        "selections",
        help="list, show and remove selections",
        usage="loupe selections list|show NAME|remove NAME [--json]",
    )
    q.add_argument("words", nargs="+", metavar="list | show NAME | remove NAME")
    q.add_argument("--limit", type=int, default=50, help="list: at most this many (default 50)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(run=run_selections)


def _value(key: str, raw: str) -> Any:
    if key == "strength":
        try:
            return float(raw)
        except ValueError:
            raise CliError(f"--strategy: strength must be a number, got {raw!r}") from None
    if key == "like":
        return [v for v in raw.split("|") if v]
    if key == "target" and raw != "uniform":
        shares: dict[str, float] = {}
        for part in raw.split("|"):
            value, _, share = part.rpartition(":")
            try:
                shares[value] = float(share)
            except ValueError:
                raise CliError(
                    f"--strategy: target is uniform or VALUE:SHARE|VALUE:SHARE, got {raw!r}"
                ) from None
        return shares
    return raw


def parse_strategy(text: str) -> dict[str, Any]:
    """`uncertainty:predictions=pred,measure=margin` -> {"kind": "uncertainty", ...}."""
    kind, _, rest = text.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    for item in [i for i in rest.split(",") if i.strip()]:
        key, eq, raw = item.partition("=")
        if not eq:
            raise CliError(f"--strategy {text!r}: expected OPTION=VALUE, got {item!r}")
        out[key.strip()] = _value(key.strip(), raw.strip())
    return out


def _body(args: argparse.Namespace) -> dict[str, Any]:
    from service.selections.schemas import SelectionRequest

    if not args.strategy:
        raise CliError("give at least one --strategy (e.g. --strategy diversity)")
    body: dict[str, Any] = {
        "name": args.name,
        "budget": args.budget,
        "strategies": [parse_strategy(s) for s in args.strategy],
        "include_selected": args.include_selected,
        "include_exported": args.include_exported,
    }
    for key, value in (("exclude_labeled", args.exclude_labeled), ("space", args.space)):
        if value is not None:
            body[key] = value
    flt = parse_filter_option(args.filter)
    if flt is not None:
        body["filter"] = flt
    try:
        SelectionRequest.model_validate(body)  # the server's own checks, before connecting
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None
    return body


def print_selection(sel: dict[str, Any]) -> None:
    kinds = ", ".join(s["kind"] for s in sel["strategies"])
    counts = sel["counts"]
    print(f"selection {sel['name']}: {sel['state']}, {sel['count']} of budget {sel['budget']} ({kinds})")
    print(f"  {counts['candidates']} candidates, {counts['seeds']} seeds")
    if sel.get("detail"):
        print(f"  {sel['detail']}")
    if sel["state"] == "succeeded":
        name = sel["name"]
        print(f'  filter: --filter \'{{"selections": "{name}"}}\'')
        print(f"  export: loupe export --selection {name} --to label-studio|jsonl|csv|labelbox|coco ...")


def run_select(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    body = _body(args)
    client = connect(settings)
    try:
        sel = client.select(body, progress=lambda job: print(".", end="", file=sys.stderr, flush=True))
    finally:
        client.close()
    print_json(sel) if args.json else print_selection(sel)
    return 0 if sel["state"] == "succeeded" else 1


def run_selections(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    words = args.words
    wanted = {"list": 1, "show": 2, "remove": 2}
    if words[0] not in wanted or len(words) != wanted[words[0]]:
        raise CliError("usage: loupe selections list|show NAME|remove NAME [--json]")
    client = connect(settings)
    try:
        if words[0] == "list":
            rows = client.list_selections(limit=args.limit)
            if args.json:
                print_json(rows)
            elif not rows:
                print("no selections yet")
            for sel in [] if args.json else rows:
                print(f"{sel['name']:<24} {sel['state']:<10} {sel['count']:>6} of {sel['budget']}")
        elif words[0] == "show":
            sel = client.get_selection(words[1])
            print_json(sel) if args.json else print_selection(sel)
        else:
            client.remove_selection(words[1])
            print(f"removed selection {words[1]}")
    finally:
        client.close()
    return 0
