"""Sidecar metadata: a JSON object stored beside an image, shared by all file-like sources.

For an image `photos/cat.jpg` the sidecar is `photos/cat.jpg.json` (preferred)
or `photos/cat.json`. Its top-level object becomes the asset's metadata.
"""

from __future__ import annotations

import json
from typing import Any

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
MAX_SIDECAR_BYTES = 1024 * 1024


def suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_image_key(key: str) -> bool:
    return suffix(key) in IMAGE_EXTENSIONS


def media_type(key: str) -> str | None:
    return MEDIA_TYPES.get(suffix(key))


def sidecar_keys(key: str) -> tuple[str, str]:
    """The two names a sidecar of `key` may have, preferred first."""
    stem = key[: len(key) - len(suffix(key))]
    return f"{key}.json", f"{stem}.json"


def parse_sidecar(raw: bytes) -> dict[str, Any]:
    """The metadata in a sidecar; raises ValueError with a readable reason."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"sidecar is larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"sidecar is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("sidecar must hold a JSON object")
    return data
