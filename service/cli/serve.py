"""`loupe serve`: the REST API and the web page, announced to the CLI under LOUPE_HOME."""

from __future__ import annotations

import argparse
from typing import Any

from service.config import Settings


def add_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="serve the REST API (and the web page)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback host without API keys")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.server import serve

    serve(settings, host=args.host, port=args.port, insecure=args.insecure)
    return 0
