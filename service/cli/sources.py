"""`loupe source add|list|remove`: sources, with a kind's config fields as free-form options."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

from service.cli.common import CliError
from service.config import Settings

PATH_FIELDS = ("path", "root")


def add_parser(subparsers: Any) -> None:
    source = subparsers.add_parser("source", help="add, list or remove sources")
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
    # Only `add` takes options argparse does not know: the kind's config fields.
    add.set_defaults(run=run, free_options=True)
    ssub.add_parser("list", help="list sources").set_defaults(run=run)
    rm = ssub.add_parser("remove", help="remove a source and its assets from the catalog")
    rm.add_argument("name")
    rm.set_defaults(run=run)


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
    from connectors.registry import connector_class

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


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import connect

    client = connect(settings)
    try:
        if args.action == "add":
            config = source_config(args.kind, args.options, args.config)
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
