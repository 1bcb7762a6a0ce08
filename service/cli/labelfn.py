"""`loupe label-fn apply|list|show` (labeling functions) and `loupe labels set` (hand labels in bulk)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings

RULE_HELP = "LABEL:like=ID,ID or LABEL:text=WORDS (join parts with ';', e.g. cat:like=ID;text=a cat)"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "label-fn",
        help="labeling functions: auto-label assets like examples, or like their labelled neighbours",
        description="Apply a labeling function into a predictions set; with --target-precision the "
        "threshold is chosen on ground truth by 5-fold cross-validation and its precision estimated.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = sub.add_parser("apply", help="define (or redefine) a function and run it")
    apply.add_argument("name", metavar="NAME")
    apply.add_argument(
        "--into", required=True, metavar="SET", help="the predictions set to write (made if missing)"
    )
    apply.add_argument("--rule", action="append", default=[], metavar="RULE", help=RULE_HELP + " (repeat)")
    apply.add_argument("--propagate-from", metavar="GT", help="a ground-truth set to propagate")
    apply.add_argument("--ground-truth", metavar="GT", help="rules: the ground truth to calibrate on")
    apply.add_argument("--target-precision", type=float, metavar="P")
    apply.add_argument("--threshold", type=float, metavar="T")
    apply.add_argument("--margin", type=float, help="rules: abstain when the best two differ by less")
    apply.add_argument("--k", type=int, help="propagation: neighbours that vote (default 10)")
    apply.add_argument("--filter", help="only assets this JSON filter keeps")
    apply.add_argument("--space", help="the vector space (default: the encoder's)")
    for name in ("list", "show"):
        q = sub.add_parser(name, help="every function" if name == "list" else "one function and its last run")
        if name == "show":
            q.add_argument("name", metavar="NAME")
        q.add_argument("--json", action="store_true", help="print JSON")
    apply.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)
    _labels_set(subparsers)


def _labels_set(subparsers: Any) -> None:
    """`loupe labels set`, added to the `labels` group (service/cli/labels.py) from here."""
    labels = subparsers.choices.get("labels")
    if labels is None:
        return
    action = next(a for a in labels._actions if isinstance(a, argparse._SubParsersAction))
    q = action.add_parser("set", help="label assets by hand in bulk: --ids or --filter, as --label X")
    q.add_argument("set", metavar="SET")
    q.add_argument("--label", required=True, metavar="X")
    q.add_argument("--ids", nargs="+", metavar="ID")
    q.add_argument("--filter", help="every asset this JSON filter keeps")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(run=run_set)


def parse_rule(raw: str) -> dict[str, Any]:
    label, sep, rest = raw.partition(":")
    if not sep or not label.strip() or not rest.strip():
        raise CliError(f"--rule {raw!r}: expected {RULE_HELP}")
    rule: dict[str, Any] = {"label": label.strip()}
    for part in rest.split(";"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in ("like", "text", "filter"):
            raise CliError(f"--rule {raw!r}: {part!r} is not like=IDS, text=WORDS or filter=JSON")
        if key == "like":
            rule["like"] = [i.strip() for i in value.split(",") if i.strip()]
        elif key == "text":
            rule["text"] = value.strip()
        else:
            rule["filter"] = parse_filter_option(value)
    return rule


def _body(args: argparse.Namespace) -> dict[str, Any]:
    from service.labelfns.schemas import LabelingFunctionCreate

    if bool(args.rule) == bool(args.propagate_from):
        raise CliError("give --rule (one or more) or --propagate-from GT")
    body: dict[str, Any] = {"name": args.name, "into": args.into}
    if args.rule:
        body["rules"] = [parse_rule(r) for r in args.rule]
    for key in ("propagate_from", "ground_truth", "target_precision", "threshold", "margin", "k", "space"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    flt = parse_filter_option(args.filter)
    if flt is not None:
        body["filter"] = flt
    try:
        LabelingFunctionCreate.model_validate(body)
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None
    return body


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def print_function(fn: dict[str, Any]) -> None:
    run = fn["run"]
    d = fn["definition"]
    how = (
        f"propagate from {d['propagate_from']}"
        if d.get("propagate_from")
        else f"{len(d.get('rules', []))} rule(s)"
    )
    print(f"labeling function {fn['name']}: {how} into {run['into']}, {run['state']}")
    if run.get("detail"):
        print(f"  detail: {run['detail']}")
    print(f"  labelled {run['labeled']}, abstained {run['abstained']}, threshold {_num(run['threshold'])}")
    if run.get("estimated_from"):
        print(
            f"  estimated on {run['estimated_on']} assets of {run['estimated_from']}: precision "
            f"{_num(run['estimated_precision'])}, coverage {_num(run['estimated_coverage'])}"
            f" ({run['method']})"
        )
    else:
        print("  nothing estimated: no ground truth to measure on")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    body = _body(args) if args.action == "apply" else None
    client = connect(settings)
    try:
        if args.action == "list":
            fns = client.list_labeling_functions()
            if args.json:
                print_json(fns)
            for fn in [] if args.json else fns:
                print_function(fn)
            return 0
        if args.action == "show":
            fn = client.get_labeling_function(args.name)
        else:
            assert body is not None

            def progress(job: dict[str, Any]) -> None:
                if not args.json:
                    print(f"  {job['state']} {100 * float(job.get('progress') or 0):.0f}%", file=sys.stderr)

            fn = client.apply_labeling_function(body, progress=progress)
    finally:
        client.close()
    if args.json:
        print_json(fn)
    else:
        print_function(fn)
    return 0 if fn["run"]["state"] == "succeeded" or args.action == "show" else 1


def run_set(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    if bool(args.ids) == (args.filter is not None):
        raise CliError("give --ids ID ... or --filter JSON")
    body: dict[str, Any] = {"label": args.label}
    if args.ids:
        body["ids"] = list(args.ids)
    else:
        body["filter"] = parse_filter_option(args.filter)
    client = connect(settings)
    try:
        out = client.label_assets(args.set, body)
    finally:
        client.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"labelled {out['labeled']} asset(s) as {out['label']!r} in {out['set']} (by {out['labeled_by']})"
        )
    return 0
