"""The `loupe` command: the parser and the dispatch; each command group is a module of this package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from service.cli import (
    demo,
    export,
    jobs,
    labelfn,
    labels,
    search,
    select,
    serve,
    signals,
    sources,
    spaces,
    sync,
)
from service.cli import eval as evaluations
from service.cli.common import CliError
from service.config import Settings
from service.errors import InvalidConfig, LoupeError

__all__ = ["CliError", "main"]

# In `loupe --help` order. A command group is a module with `add_parser(subparsers)`, which sets
# `run(args, settings) -> exit code` as the parser's default: adding a group is one line here.
COMMAND_GROUPS = (
    serve,
    sources,
    sync,
    search,
    export,
    labels,
    evaluations,
    select,
    labelfn,
    signals,
    spaces,
    jobs,
    demo,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loupe",
        description="Loupe: a vector-search data catalog that finds the training data worth labeling.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return p


def _fail(message: str, code: int) -> NoReturn:
    print(f"loupe: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Only parsers that set `free_options` (source add: the kind's config fields) take unknown options.
    if extra and not getattr(args, "free_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.options = extra
    try:
        settings = Settings()
        return int(args.run(args, settings))
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
