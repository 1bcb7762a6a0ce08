"""What every `loupe` command shares: the usage error and JSON output."""

from __future__ import annotations

import json
from typing import Any


class CliError(Exception):
    """A usage problem: printed as one line, exit code 2."""


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def parse_filter_option(raw: str | None) -> Any:
    """`--filter JSON` as a value (None when the option is absent)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--filter is not valid JSON: {exc.msg} at position {exc.pos}") from None


def validation_problems(errors: list[Any]) -> str:
    """A pydantic error list as one line: `loc: message; ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e['msg']}" if e.get("loc") else str(e["msg"])
        for e in errors
    )
