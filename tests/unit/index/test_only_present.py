"""Searches and exports see only assets still at their source, unless the filter asks about status."""

from __future__ import annotations

import pytest

from service.index.filters import only_present, parse_filter


@pytest.mark.parametrize(
    ("raw", "narrowed"),
    [
        (None, {"status": "ok"}),
        ({}, {"status": "ok"}),
        ({"label": "bike"}, {"and": [{"label": "bike"}, {"status": "ok"}]}),
        # Mentioned anywhere (nested, negated, with an operator), status is the user's to set.
        ({"status": "missing"}, {"status": "missing"}),
        ({"or": [{"label": "bike"}, {"not": {"status": "ok"}}]}, None),
        ({"status": {"in": ["ok", "missing"]}}, None),
        # A value "status" or a metadata key `meta.status` is not the built-in field.
        ({"label": "status"}, {"and": [{"label": "status"}, {"status": "ok"}]}),
        ({"meta.status": "x"}, {"and": [{"meta.status": "x"}, {"status": "ok"}]}),
    ],
)
def test_only_present(raw: dict | None, narrowed: dict | None) -> None:
    out = only_present(raw)
    assert out == (raw if narrowed is None else narrowed)
    assert parse_filter(out) is not None  # always a filter the language accepts
