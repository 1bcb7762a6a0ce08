"""JSON parsing for annotation files: orjson's speed, json's tolerance and error messages."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str) -> Any:
    """orjson's parse (4x json's on a JSONL line), and json's where orjson refuses: json parses
    NaN (which then fails the score check naming its field) and integers past 64 bits, and its
    JSONDecodeError says where the text is broken."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
