"""`loupe eval PRED --gt GT`, `loupe eval compare A B`, `loupe eval list|show ID|remove ID`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings

ACTIONS = ("compare", "list", "show", "remove")
USAGE = (
    "loupe eval PRED --gt GT [--slice-by F ...] [--filter JSON] [--iou X] [--json] | "
    "loupe eval compare A B [--json] | loupe eval list [--json] | loupe eval show ID [--json] | "
    "loupe eval remove ID [--json]"
)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a predictions set against ground truth; compare, list, show and remove evaluations",
        usage=USAGE,
        description="Score a predictions set against a ground-truth set (per class and per slice), "
        "or compare two evaluations on the same ground truth. `remove ID` deletes an evaluation and "
        "its outcome fields (evals.<id>.*) from every asset.",
    )
    p.add_argument("words", nargs="+", metavar="PRED | compare A B | list | show ID | remove ID")
    p.add_argument("--gt", help="the ground-truth label set")
    p.add_argument(
        "--slice-by", action="append", default=[], metavar="FIELD", help="a field to slice by (repeat)"
    )
    p.add_argument("--filter", help="evaluate only the assets this JSON filter keeps")
    p.add_argument("--iou", type=float, default=0.5, help="detection: IoU for tp/fp/fn (default 0.5)")
    p.add_argument("--limit", type=int, default=20, help="list: at most this many (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _num(value: Any, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def print_evaluation(ev: dict[str, Any]) -> None:
    print(f"evaluation {ev['id']}: {ev['predictions']} vs {ev['ground_truth']} ({ev['task']}), {ev['state']}")
    if ev.get("detail"):
        print(f"  detail: {ev['detail']}")
    if ev["state"] != "succeeded":
        return
    counts = ev["counts"]
    print(f"  {counts['matched']} of {counts['assets']} ground-truth assets scored")
    print("  " + ", ".join(f"{k} {_num(v)}" for k, v in ev["metrics"].items()))
    columns = ["precision", "recall", "f1", "support"] + (["ap"] if ev["task"] == "detection" else [])
    print("per class:")
    _table(
        ["class", *columns],
        [[name, *(_num(m.get(c)) for c in columns)] for name, m in ev["per_class"].items()],
    )
    if ev["slices"]:
        names = list(ev["slices"][0]["metrics"])
        print("per slice:")
        rows = [
            [f"{s['field']}={s['value']}", str(s["count"]), *(_num(s["metrics"].get(n)) for n in names)]
            for s in ev["slices"]
        ]
        _table(["slice", "assets", *names], rows)
    wrong = (ev.get("outcomes") or {}).get("wrong")
    if wrong:
        print(f"  wrong assets: --filter '{json.dumps(wrong)}'")


def print_comparison(cmp: dict[str, Any]) -> None:
    print(f"b {cmp['b']} minus a {cmp['a']} on {cmp['ground_truth']} ({cmp['task']})")
    print("  " + ", ".join(f"{k} {_num(v, signed=True)}" for k, v in cmp["metrics"].items()))
    if cmp["per_class"]:
        columns = sorted({c for d in cmp["per_class"].values() for c in d})
        print("per class (delta):")
        _table(
            ["class", *columns],
            [[n, *(_num(d.get(c), signed=True) for c in columns)] for n, d in cmp["per_class"].items()],
        )
    if cmp["slices"]:
        names = sorted({n for s in cmp["slices"] for n in s["delta"]})
        print("per slice (delta):")
        rows = [
            [f"{s['field']}={s['value']}", *(_num(s["delta"].get(n), signed=True) for n in names)]
            for s in cmp["slices"]
        ]
        _table(["slice", *names], rows)
    for what in ("fixed", "broken"):
        change = cmp[what]
        print(f"  {what}: {change['count']} asset(s)  --filter '{json.dumps(change['filter'])}'")
    print(f"  ({cmp['definition']})")


def _request(args: argparse.Namespace, predictions: str) -> Any:
    from service.evals.schemas import EvaluationRequest

    body: dict[str, Any] = {"predictions": predictions, "ground_truth": args.gt, "iou": args.iou}
    if args.slice_by:
        body["slice_by"] = list(args.slice_by)
    flt = parse_filter_option(args.filter)
    if flt is not None:
        body["filter"] = flt
    try:
        return EvaluationRequest.model_validate(body)
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    words = args.words
    action = words[0] if words[0] in ACTIONS and args.gt is None else "evaluate"
    wanted = {"compare": 3, "list": 1, "show": 2, "remove": 2, "evaluate": 1}[action]
    if len(words) != wanted:
        raise CliError(f"usage: {USAGE}")
    if action == "evaluate" and not args.gt:
        raise CliError("name the ground-truth set with --gt GT")
    request = _request(args, words[0]) if action == "evaluate" else None
    client = connect(settings)
    try:
        if action == "list":
            evaluations = client.list_evaluations(limit=args.limit)
            if args.json:
                print_json(evaluations)
            elif not evaluations:
                print("no evaluations yet")
            for ev in [] if args.json else evaluations:
                headline = ", ".join(f"{k} {_num(v)}" for k, v in list(ev["metrics"].items())[:3])
                print(
                    f"{ev['id']}  {ev['predictions']} vs {ev['ground_truth']}  {ev['state']:<10} {headline}"
                )
            return 0
        if action == "remove":
            client.remove_evaluation(words[1])
            print_json({"removed": words[1]}) if args.json else print(f"removed evaluation {words[1]}")
            return 0
        if action == "compare":
            cmp = client.compare_evaluations(words[1], words[2])
            print_json(cmp) if args.json else print_comparison(cmp)
            return 0
        if action == "show":
            ev = client.get_evaluation(words[1])
        else:
            assert request is not None
            ev = client.evaluate(
                request, progress=lambda job: print(".", end="", file=sys.stderr, flush=True)
            )
    finally:
        client.close()
    print_json(ev) if args.json else print_evaluation(ev)
    return 0 if ev["state"] in ("succeeded", "queued", "running") else 1
