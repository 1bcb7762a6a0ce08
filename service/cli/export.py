"""`loupe export --to TARGET`: a search, ids or a filter alone, sent to Label Studio or a file."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from service.cli.common import CliError, parse_filter_option, print_json, validation_problems
from service.config import Settings
from service.export.schemas import ExportRequest, ExportTarget

TOKEN_ENV = "LOUPE_LABEL_STUDIO_TOKEN"
TARGETS: tuple[str, ...] = get_args(ExportTarget)
DEFAULT_SEARCH_LIMIT = 100


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export search matches, ids or a filter to Label Studio or a file",
        description="Export a selection to a labeling tool. Select with TEXT/--like/--unlike (a search), "
        "--ids, or --filter alone ('{}' for everything). Assets already sent to the same Label "
        'Studio project are skipped; --filter \'{"not": {"exports.project": "ID"}}\' does the same '
        "for searches.",
    )
    p.add_argument("--to", required=True, dest="target", metavar="TARGET", help=", ".join(TARGETS))
    p.add_argument("text", nargs="?", help="a text query")
    p.add_argument("--like", action="append", default=[], help="an asset id to find more of (repeatable)")
    p.add_argument(
        "--unlike", action="append", default=[], help="an asset id to steer away from (repeatable)"
    )
    p.add_argument("--ids", action="append", default=[], help="asset ids, comma-separated (repeatable)")
    p.add_argument("--filter", help='a JSON filter, e.g. \'{"source": "photos"}\'')
    p.add_argument("--selection", help="a selection's name (loupe select): export exactly its assets")
    p.add_argument("--limit", type=int, help=f"at most N assets (searches: default {DEFAULT_SEARCH_LIMIT})")
    p.add_argument("--fields", action="append", default=[], help="metadata keys to include (default: all)")
    p.add_argument("--path", type=Path, help="file targets: write here (default: ./loupe-TARGET-TIME.EXT)")
    p.add_argument("--presign-expiry", type=int, metavar="SECONDS", help="presigned S3 URLs valid this long")
    ls = p.add_argument_group("Label Studio (--to label-studio)")
    ls.add_argument("--ls-url", help="Label Studio's URL, e.g. http://localhost:8080")
    ls.add_argument("--ls-token", help=f"API token or personal access token (default: ${TOKEN_ENV})")
    ls.add_argument("--project-id", type=int, help="an existing project")
    ls.add_argument("--title", help="create a new project with this title")
    ls.add_argument("--label-config", type=Path, metavar="FILE", help="label config XML for a new project")
    ls.add_argument("--no-predictions", action="store_true", help="send no pre-annotations")
    ls.add_argument(
        "--predictions-set",
        metavar="SET",
        help="a predictions label set (a model run or a labeling function) to send as pre-annotations",
    )
    ls.add_argument("--prediction-field", help="metadata key of the model label (default: prediction, label)")
    p.add_argument("--json", action="store_true", help="print the export as JSON")
    p.set_defaults(run=run)


def _split(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    flt = parse_filter_option(args.filter)
    ids = _split(args.ids)
    if args.selection:
        if flt is not None or ids or args.text or args.like:
            raise CliError(
                "--selection chooses the assets itself: give it without a search, --ids or --filter"
            )
        return {"selection": args.selection, "limit": args.limit}
    if args.text or args.like:
        if ids:
            raise CliError("give a search (TEXT/--like) or --ids, not both")
        search: dict[str, Any] = {"text": args.text, "like": args.like, "unlike": args.unlike}
        search.update(filter=flt, limit=args.limit or DEFAULT_SEARCH_LIMIT)
        return {"search": search}
    if args.unlike:
        raise CliError("--unlike steers a search: add TEXT or --like")
    if ids:
        if flt is not None:
            raise CliError("give --ids or --filter, not both")
        return {"ids": ids, "limit": args.limit}
    if flt is None:
        raise CliError("choose what to export: TEXT, --like, --ids or --filter ('{}' for everything)")
    return {"filter": flt, "limit": args.limit}


def _label_studio(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.target != "label-studio":
        given = [o for o in ("ls_url", "ls_token", "project_id", "title", "label_config") if getattr(args, o)]
        if given:
            raise CliError(f"--{given[0].replace('_', '-')} applies to --to label-studio only")
        return None
    token = args.ls_token or os.environ.get(TOKEN_ENV)
    if not args.ls_url or not token:
        raise CliError(f"--to label-studio needs --ls-url and --ls-token (or ${TOKEN_ENV})")
    out: dict[str, Any] = {
        "url": args.ls_url,
        "token": token,
        "project_id": args.project_id,
        "title": args.title,
    }
    if args.label_config is not None:
        try:
            out["label_config"] = args.label_config.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {args.label_config}: {exc.strerror}") from None
    out.update(
        predictions=not args.no_predictions,
        prediction_field=args.prediction_field,
        predictions_set=args.predictions_set,
    )
    return out


def build_request(args: argparse.Namespace) -> tuple[ExportRequest, Path | None]:
    """The export request the options describe, and the local file to write (file targets)."""
    from service.export.files import FORMATS

    body: dict[str, Any] = {"target": args.target, **_selection(args)}
    body["label_studio"] = _label_studio(args)
    body["fields"] = _split(args.fields) or None
    body["presign_expiry_s"] = args.presign_expiry
    dest: Path | None = None
    if args.target in FORMATS:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        dest = (args.path or Path(f"loupe-{args.target}-{stamp}{FORMATS[args.target]().suffix}")).expanduser()
        dest = dest.resolve()
    elif args.path is not None:
        raise CliError(f"--path applies to file targets ({', '.join(FORMATS)}), not {args.target}")
    try:
        return ExportRequest.model_validate({k: v for k, v in body.items() if v is not None}), dest
    except ValidationError as exc:
        raise CliError(validation_problems(exc.errors())) from None


def _print(export: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(export)
        return
    c = export["counts"]
    print(
        f"export to {export['target']} {export['state']}: {c['selected']} selected, {c['sent']} sent, "
        f"{c['skipped']} skipped (already there), {c['failed']} failed"
    )
    if export.get("location"):
        print(f"  -> {export['location']}")
    if export.get("detail"):
        print(f"  {export['detail']}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """`loupe export`: exit 0 when the export succeeded, 1 when it failed, 2 on a usage error."""
    from service.client import LocalClient, connect

    if args.target not in TARGETS:
        raise CliError(f"unknown export target {args.target!r}; valid targets: {', '.join(TARGETS)}")
    request, dest = build_request(args)
    client = connect(settings)
    try:
        if isinstance(client, LocalClient) and not settings.public_url:
            print(
                "note: image URLs point at http://127.0.0.1:8000 (set LOUPE_PUBLIC_URL); "
                "they load while `loupe serve` runs there",
                file=sys.stderr,
            )
        export = client.export(request, download_to=dest)
    finally:
        client.close()
    _print(export, as_json=args.json)
    return 0 if export["state"] == "succeeded" else 1
