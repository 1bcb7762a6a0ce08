"""API keys: parsing, scopes, and what a request without a key gets."""

from __future__ import annotations

import hashlib

import pytest

from service.auth import Forbidden, Unauthorized, check, parse_keys
from service.errors import InvalidConfig

READER = "r" * 20
WRITER = "w" * 20


def test_scopes_are_ordered():
    keys = parse_keys(f"{READER}:read, sha256:{hashlib.sha256(WRITER.encode()).hexdigest()}:write")
    check(keys, f"Bearer {READER}", "read")
    check(keys, f"Bearer {WRITER}", "read")
    check(keys, f"bearer {WRITER}", "write")
    with pytest.raises(Forbidden, match="needs 'write'"):
        check(keys, f"Bearer {READER}", "write")


@pytest.mark.parametrize("header", [None, "", "Basic abc", f"Bearer {'x' * 20}", "Bearer "])
def test_missing_or_wrong_keys_are_unauthorized(header):
    with pytest.raises(Unauthorized):
        check(parse_keys(f"{READER}:read"), header, "read")


def test_no_keys_means_open():
    check([], None, "admin")


@pytest.mark.parametrize("raw", ["short:read", f"{READER}:root", f"{READER}", "sha256:zz:read"])
def test_bad_key_settings_say_which_entry(raw):
    with pytest.raises(InvalidConfig, match="entry 1"):
        parse_keys(raw)


def test_serve_refuses_public_host_without_keys(settings):
    from service.server import serve

    with pytest.raises(InvalidConfig, match="without API keys"):
        serve(settings, host="0.0.0.0", port=0)
