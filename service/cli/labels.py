"""`loupe labels create|import|list|show|remove`: label sets (ground truth, predictions) and their imports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.cli.common import CliError, print_json, validation_problems
from service.config import Settings

FORMATS = ("loupe", "csv", "coco", "yolo", "label-studio")


def add_parser(subparsers: Any) -> None:
    labels = subparsers.add_parser(
        "labels", help="label sets: import ground truth or predictions, list, remove"
    )
    lsub = labels.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = lsub.add_parser(
        "import",
        help="import annotations into a set (created when missing, with --role and --task)",
        description=(
            "Import a file (--format loupe JSONL, csv, coco, yolo zip, label-studio JSON export), a "
            "metadata field (--from-field) or a live Label Studio project Loupe exported to "
            "(--label-studio-url, --ls-token, --project-id). Checked whole first: a bad record "
            "imports nothing and the error names its line and field."
        ),
    )
    imp.add_argument("set", metavar="SET")
    imp.add_argument("file", nargs="?", type=Path, metavar="FILE")
    imp.add_argument("--format", choices=FORMATS, help="the file's format (default: from its extension)")
    imp.add_argument("--role", choices=("ground_truth", "predictions"), help="for a new set")
    imp.add_argument("--task", choices=("classification", "detection"), help="for a new set")
    imp.add_argument("--classes", help="for a new set: the allowed class names, comma-separated")
    imp.add_argument("--model", help="for a new set: the model or run (free text)")
    imp.add_argument("--source", help="the source that file names are relative to")
    imp.add_argument("--from-field", metavar="FIELD", help="a metadata field whose values become labels")
    imp.add_argument("--label-studio-url", metavar="URL")
    imp.add_argument("--ls-token", metavar="TOKEN")
    imp.add_argument("--project-id", type=int, metavar="ID")
    cr = lsub.add_parser(
        "create",
        help="an empty set to label into by hand (loupe labels set) or to import into",
    )
    cr.add_argument("set", metavar="SET")
    cr.add_argument("--role", choices=("ground_truth", "predictions"), required=True)
    cr.add_argument("--task", choices=("classification", "detection"), required=True)
    cr.add_argument("--classes", help="allowed class names, comma-separated (default: learnt from imports)")
    cr.add_argument("--model", help="the model or run (free text)")
    ls = lsub.add_parser("list", help="every label set")
    show = lsub.add_parser("show", help="one label set: role, task, classes, assets")
    show.add_argument("set", metavar="SET")
    rm = lsub.add_parser("remove", help="delete a set and its fields from every asset")
    rm.add_argument("set", metavar="SET")
    for p in (imp, cr, ls, show, rm):
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    request = _import_request(args) if args.action == "import" else None
    client = connect(settings)
    try:
        if args.action == "list":
            sets = client.list_labelsets()
            if args.json:
                print_json(sets)
            elif not sets:
                print("no label sets yet; `loupe labels import SET FILE --role R --task T` makes one")
            for s in [] if args.json else sets:
                print(_line(s))
            return 0
        if args.action == "show":
            shown = client.get_labelset(args.set)
            print_json(shown) if args.json else _details(shown)
            return 0
        if args.action == "create":
            made = _create(client, args)
            print_json(made) if args.json else print(f"created label set {_line(made)}")
            return 0
        if args.action == "remove":
            client.remove_labelset(args.set)
            print_json({"removed": args.set}) if args.json else print(f"removed label set {args.set}")
            return 0
        assert request is not None
        _ensure_set(client, args)
        job = client.import_labels(args.set, **request)
    finally:
        client.close()
    if args.json:
        print_json(job)
    else:
        _report(job)
    return 0 if job["state"] == "succeeded" else 1


def _import_request(args: argparse.Namespace) -> dict[str, Any]:
    live = (args.label_studio_url, args.ls_token, args.project_id)
    ways = sum([args.file is not None, args.from_field is not None, any(v is not None for v in live)])
    if ways != 1:
        raise CliError("give one of FILE, --from-field FIELD, or --label-studio-url/--ls-token/--project-id")
    if any(v is not None for v in live):
        if not all(v is not None for v in live):
            raise CliError("a live Label Studio import needs --label-studio-url, --ls-token and --project-id")
        url, token, project = live
        body = {"label_studio": {"url": url, "token": token, "project_id": project}}
        return {"file": None, "fmt": None, "source": None, "body": body}
    if args.from_field is not None:
        return {"file": None, "fmt": None, "source": None, "body": {"from_field": args.from_field}}
    if not args.file.is_file():
        raise CliError(f"no file {args.file}")
    return {"file": args.file, "fmt": args.format or _guess(args.file), "source": args.source, "body": None}


def _guess(path: Path) -> str:
    suffix = path.suffix.lower()
    guesses = {".jsonl": "loupe", ".csv": "csv", ".zip": "yolo"}
    if suffix in guesses:
        return guesses[suffix]
    raise CliError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")


def _ensure_set(client: Any, args: argparse.Namespace) -> None:
    from service.errors import LabelSetNotFound

    try:
        client.get_labelset(args.set)
        return
    except LabelSetNotFound:
        pass
    if args.role is None or args.task is None:
        raise CliError(f"no label set {args.set!r} yet: pass --role and --task to create it")
    _create(client, args)


def _create(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A new set from --role, --task, --classes and --model, checked before anything is sent."""
    body: dict[str, Any] = {"name": args.set, "role": args.role, "task": args.task}
    if args.classes:
        body["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    if args.model:
        body["model"] = args.model
    from pydantic import ValidationError

    from service.labels.schemas import LabelSetCreate

    try:
        LabelSetCreate.model_validate(body)
    except ValidationError as exc:
        raise CliError(f"cannot create label set {args.set!r}: {validation_problems(exc.errors())}") from None
    made: dict[str, Any] = client.create_labelset(body)
    return made


def _line(s: dict[str, Any]) -> str:
    classes = ", ".join(s["classes"][:8]) + (" ..." if len(s["classes"]) > 8 else "")
    return f"{s['name']:<24} {s['role']:<13} {s['task']:<15} {s['assets']:>8} assets  {classes or '-'}"


def _details(s: dict[str, Any]) -> None:
    print(_line(s))
    for key in ("model", "created_at", "updated_at", "last_job_id"):
        if s.get(key):
            print(f"  {key.replace('_', ' ')}: {s[key]}")
    print(
        f"  classes ({'declared' if s['classes_declared'] else 'learned'}): {', '.join(s['classes']) or '-'}"
    )
    print(
        f"  fields: labels.{s['name']}.label, .score, .classes, .count, .margin, .entropy, .least_confidence"
    )


def _report(job: dict[str, Any]) -> None:
    c = job["counts"]
    print(
        f"{job['state']}: {c.get('imported', 0)} imported of {c.get('received', 0)} received, "
        f"{c.get('unknown_asset', 0)} naming no asset, {c.get('invalid', 0)} invalid (job {job['id']})"
    )
    for err in job.get("errors", [])[:20]:
        print(f"  unmatched: {err.get('key')}: {err.get('reason')}")
    if job["state"] != "succeeded" and job.get("detail"):
        print(f"  {job['detail']}")
