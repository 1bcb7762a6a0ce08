"""`loupe demo`: a synthetic image set, ingested with the offline model, searched, the loop run, served."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import CliError
from service.cli.sync import sync_with_bar
from service.config import Settings


def add_parser(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="build a synthetic image set, ingest it with the offline model, serve it"
    )
    demo.add_argument("--n", type=int, default=3000, help="how many images (default 3000)")
    demo.add_argument(
        "--no-serve", action="store_true", help="ingest, print the example searches and the loop, and exit"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.catalog.catalog import Catalog
    from service.client import LocalClient
    from service.config import OFFLINE_MODEL
    from service.demo import DEMO_SOURCE, ensure_dataset, ensure_source, print_examples
    from service.demo_loop import print_loop, run_loop

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
        sync_with_bar(args, catalog)
        url = None if args.no_serve else f"http://{args.host}:{args.port}"
        print_examples(catalog, url)
        loop = run_loop(LocalClient(settings, catalog=catalog), source=DEMO_SOURCE)
        if loop is None:
            print("\n(too few labelled training images for the active-learning loop: try --n 300 or more)")
        else:
            print_loop(loop)
        if args.no_serve:
            return 0
        from service.server import serve

        print(f"\nOpen {url}/ in a browser, or {url}/docs for the API.", flush=True)
        serve(settings, host=args.host, port=args.port, catalog=catalog)
    finally:
        catalog.close()
    return 0
