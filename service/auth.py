"""API keys: `LOUPE_API_KEYS` lists `key:scope` entries; scopes are read < write < admin.

A key may be given in clear or as `sha256:<hex digest>` so the environment
need not hold it; keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from service.errors import InvalidConfig, LoupeError

SCOPES = ("read", "write", "admin")


class Unauthorized(LoupeError):
    status_code = 401


class Forbidden(LoupeError):
    status_code = 403


@dataclass(frozen=True, slots=True)
class ApiKey:
    digest: bytes  # sha256 of the key
    scope: str


def parse_keys(raw: str | None) -> list[ApiKey]:
    """Keys from `key:scope,key:scope`; a bad entry is a settings error naming it by position."""
    keys: list[ApiKey] = []
    for i, entry in enumerate(e.strip() for e in (raw or "").split(",")):
        if not entry:
            continue
        secret, _, scope = entry.rpartition(":")
        if not secret or scope not in SCOPES:
            raise InvalidConfig(
                f"LOUPE_API_KEYS entry {i + 1} must look like KEY:SCOPE with SCOPE one of {', '.join(SCOPES)}"
            )
        if secret.startswith("sha256:"):
            try:
                digest = bytes.fromhex(secret[7:])
            except ValueError:
                raise InvalidConfig(f"LOUPE_API_KEYS entry {i + 1}: sha256: needs a hex digest") from None
        else:
            if len(secret) < 16:
                raise InvalidConfig(f"LOUPE_API_KEYS entry {i + 1}: a key needs at least 16 characters")
            digest = hashlib.sha256(secret.encode()).digest()
        keys.append(ApiKey(digest=digest, scope=scope))
    return keys


def check(keys: list[ApiKey], authorization: str | None, needed: str) -> None:
    """Raise Unauthorized/Forbidden unless `authorization` carries a key with `needed` scope."""
    if not keys:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this server needs an API key: send `Authorization: Bearer <key>`")
    digest = hashlib.sha256(token.strip().encode()).digest()
    match = next((k for k in keys if hmac.compare_digest(k.digest, digest)), None)
    if match is None:
        raise Unauthorized("the API key is not valid; check it, or ask an admin for a new one")
    if SCOPES.index(match.scope) < SCOPES.index(needed):
        raise Forbidden(f"this key has scope {match.scope!r}; this request needs {needed!r}")
