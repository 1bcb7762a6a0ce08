"""The `loupe` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, get_args, get_origin

from pydantic import ValidationError

from service.config import Settings
from service.errors import InvalidConfig, LoupeError
from service.export import cli as export_cli

PATH_FIELDS = ("path", "root")


class CliError(Exception):
    """A usage problem: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loupe",
        description="Loupe: a vector-search data catalog that finds the training data worth labeling.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the REST API (and the web page)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback host without API keys")

    source = sub.add_parser("source", help="add, list or remove sources")
    ssub = source.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = ssub.add_parser(
        "add",
        help="add a source: loupe source add NAME --kind local --path DIR",
        description="Add a source. Every further --option sets a config field of the kind "
        "(dashes become underscores): local: --path --include --exclude; "
        "s3: --bucket --prefix --endpoint-url ...; sql: --url --table/--query --key ...",
    )
    add.add_argument("name")
    add.add_argument("--kind", required=True, help="local, s3 or sql")
    add.add_argument("--config", help="the whole config as a JSON object (merged with --options)")
    ssub.add_parser("list", help="list sources")
    rm = ssub.add_parser("remove", help="remove a source and its assets from the catalog")
    rm.add_argument("name")

    sync = sub.add_parser("sync", help="sync a source (incremental)")
    sync.add_argument("name")
    sync.add_argument("--full", action="store_true", help="re-list everything, ignoring a saved cursor")
    sync.add_argument(
        "--prune", action="store_true", help="delete assets that are gone instead of marking them missing"
    )
    sync.add_argument("--json", action="store_true", help="print the job as JSON")

    search = sub.add_parser("search", help="search by text, example assets or an image")
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
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--offset", type=int, default=0)
    search.add_argument("--json", action="store_true", help="machine-readable output")
    export_cli.add_parser(sub)
    demo = sub.add_parser(
        "demo", help="build a synthetic image set, ingest it with the offline model, serve it"
    )
    demo.add_argument("--n", type=int, default=3000, help="how many images (default 3000)")
    demo.add_argument("--no-serve", action="store_true", help="ingest, print the example searches, and exit")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    return p


# -- source config from free-form options -----------------------------------


def _field_kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (list, tuple, set):
        return "list"
    if annotation is bool:
        return "bool"
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args:
        return _field_kind(args[0])
    return "scalar"


def _coerce(raw: str) -> Any:
    if raw[:1] in "{[":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def source_config(kind: str, options: Sequence[str], base: str | None) -> dict[str, Any]:
    """Turn `--some-field value` options into a config dict typed by the kind's model."""
    from connectors.base import connector_class

    model = connector_class(kind).config_model
    fields = {name: _field_kind(f.annotation) for name, f in model.model_fields.items()}
    config: dict[str, Any] = json.loads(base) if base else {}
    i = 0
    while i < len(options):
        opt = options[i]
        if not opt.startswith("--"):
            raise CliError(f"unexpected argument {opt!r}; source options look like --field VALUE")
        name, _, inline = opt[2:].partition("=")
        name = name.replace("-", "_")
        negated = name.startswith("no_") and name[3:] in fields and fields[name[3:]] == "bool"
        if negated:
            config[name[3:]] = False
            i += 1
            continue
        if name not in fields:
            raise CliError(
                f"--{name.replace('_', '-')} is not a {kind} source option; valid: "
                + ", ".join("--" + f.replace("_", "-") for f in fields)
            )
        if (
            fields[name] == "bool"
            and not inline
            and (i + 1 >= len(options) or options[i + 1].startswith("--"))
        ):
            config[name] = True
            i += 1
            continue
        if not inline and i + 1 >= len(options):
            raise CliError(f"--{name.replace('_', '-')} needs a value")
        value = inline or options[i + 1]
        i += 1 if inline else 2
        if name in PATH_FIELDS:
            value = str(Path(value).expanduser().resolve())
        if fields[name] == "list":
            config.setdefault(name, []).append(value)
        else:
            config[name] = _coerce(value)
    return config


# -- output ----------------------------------------------------------------


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _print_hits(result: dict[str, Any]) -> None:
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


def _print_job(job: dict[str, Any]) -> None:
    c = job["counts"]
    print(
        f"sync of {job['source']} {job['state']}: {c['seen']} seen, {c['added']} added, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['missing']} missing, {c['failed']} failed"
    )
    for err in job.get("errors", [])[:20]:
        print(f"  failed: {err['key']}: {err['reason']}")
    more = job.get("error_count", 0) - min(20, len(job.get("errors", [])))
    if more > 0:
        print(f"  ... and {more} more (GET /api/v1/jobs/{job['id']})")
    if job.get("detail"):
        print(f"  reason: {job['detail']}")


# -- commands --------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from service.server import serve

    serve(settings, host=args.host, port=args.port, insecure=args.insecure)
    return 0


def cmd_source(args: argparse.Namespace, extra: list[str], settings: Settings) -> int:
    from service.client import connect

    if args.action != "add" and extra:
        raise CliError(f"unexpected arguments: {' '.join(extra)}")
    client = connect(settings)
    try:
        if args.action == "add":
            config = source_config(args.kind, extra, args.config)
            src = client.add_source(args.name, args.kind, config)
            print(f"added source {src['name']} ({src['kind']}); run `loupe sync {src['name']}` to catalog it")
        elif args.action == "list":
            for src in client.list_sources():
                print(f"{src['name']}\t{src['kind']}\t{json.dumps(src['config'])}")
        else:
            client.remove_source(args.name)
            print(f"removed source {args.name}")
    finally:
        client.close()
    return 0


def _sync_with_bar(args: argparse.Namespace, client: Any) -> dict[str, Any]:
    """Run a sync through `client` (a Client or a Catalog) with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TimeRemainingColumn(),
    )
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
            from service.api.routes.jobs import job_public

            row = client.sync(args.name, full=args.full, prune=args.prune, on_progress=progress)
            job = job_public(row).model_dump()
        else:
            job = client.sync(args.name, full=args.full, prune=args.prune, progress=progress)
    if not getattr(args, "quiet", False):
        _print_json(job) if args.json else _print_job(job)
    return job  # type: ignore[no-any-return]


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    client = connect(settings)
    try:
        job = _sync_with_bar(args, client)
    finally:
        client.close()
    return 0 if job["state"] == "succeeded" else 1


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect
    from service.models import SearchRequest

    images = []
    for path in args.image:
        try:
            images.append(path.read_bytes())
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        flt = json.loads(args.filter) if args.filter else None
    except json.JSONDecodeError as exc:
        raise CliError(f"--filter is not valid JSON: {exc.msg} at position {exc.pos}") from None
    try:
        req = SearchRequest(
            text=args.text,
            like=args.like,
            unlike=args.unlike,
            filter=flt,
            limit=args.limit,
            offset=args.offset,
        )
    except ValidationError as exc:
        raise CliError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    client = connect(settings)
    try:
        result = client.search(req, images=images)
    finally:
        client.close()
    _print_json(result) if args.json else _print_hits(result)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from service.catalog.catalog import Catalog
    from service.config import OFFLINE_MODEL
    from service.demo import DEMO_SOURCE, ensure_dataset, ensure_source, print_examples

    if args.n < 10 or args.n > 1_000_000:
        raise CliError("--n must be between 10 and 1,000,000")
    if "model" not in settings.model_fields_set:
        settings = settings.model_copy(update={"model": OFFLINE_MODEL, "pretrained": None})
    print(f"Loupe demo with model {settings.model}; data under {settings.home}", flush=True)
    root = ensure_dataset(settings, args.n)
    catalog = Catalog(settings)
    try:
        ensure_source(catalog, root)
        args.name, args.full, args.prune, args.json = DEMO_SOURCE, False, False, False
        _sync_with_bar(args, catalog)
        url = None if args.no_serve else f"http://{args.host}:{args.port}"
        print_examples(catalog, url)
        if args.no_serve:
            return 0
        from service.server import serve

        print(f"\nOpen {url}/ in a browser, or {url}/docs for the API.", flush=True)
        serve(settings, host=args.host, port=args.port, catalog=catalog)
    finally:
        catalog.close()
    return 0


def _fail(message: str, code: int) -> NoReturn:
    print(f"loupe: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "source":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        settings = Settings()
        if args.command == "serve":
            return cmd_serve(args, settings)
        if args.command == "source":
            return cmd_source(args, extra, settings)
        if args.command == "sync":
            return cmd_sync(args, settings)
        if args.command == "search":
            return cmd_search(args, settings)
        if args.command == "export":
            return export_cli.run(args, settings)
        if args.command == "demo":
            return cmd_demo(args, settings)
    except CliError as exc:
        _fail(str(exc), 2)
    except InvalidConfig as exc:
        _fail(exc.detail, 2)
    except LoupeError as exc:
        _fail(exc.detail, 1)
    except ValidationError as exc:
        _fail(
            "invalid settings: "
            + "; ".join(f"LOUPE_{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()),
            2,
        )
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    parser.error(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
