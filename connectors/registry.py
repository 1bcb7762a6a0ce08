"""Connector kinds by name: the built-in ones, imported on first use, and what a missing package needs.

The registry imports the connector modules, never the other way round, so
`base` (what a connector is) and each kind's module form no cycle. A kind whose
third-party package is missing stays listed: using it says which `pip install`
line brings it, instead of the kind vanishing from the list of valid names.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from connectors.base import Connector, ConnectorConfig
from connectors.deps import missing_dependency
from service.errors import InvalidConfig


@dataclass(frozen=True, slots=True)
class _Kind:
    module: str
    cls: str


BUILTIN: Mapping[str, _Kind] = {
    "local": _Kind("connectors.local", "LocalConnector"),
    "s3": _Kind("connectors.s3", "S3Connector"),
    "sql": _Kind("connectors.sql", "SQLConnector"),
}
_LOADED: dict[str, type[Any]] = {}
_LOCK = threading.Lock()


def kinds() -> list[str]:
    """Every kind a source may have, whether or not its packages are installed."""
    return sorted(BUILTIN)


def connector_class(kind: str) -> type[Any]:
    """The connector class of `kind`, imported on first use.

    Raises:
        InvalidConfig: `kind` is not a kind (the detail lists the valid ones).
        MissingDependency: the kind's package is not installed (the detail names it).
    """
    with _LOCK:
        if kind in _LOADED:
            return _LOADED[kind]
        spec = BUILTIN.get(kind)
        if spec is None:
            raise InvalidConfig(f"unknown source kind {kind!r}; valid kinds: {', '.join(kinds())}")
        try:
            module = importlib.import_module(spec.module)
        except ImportError as exc:
            if exc.name is None or exc.name.split(".", 1)[0] in ("connectors", "service"):
                raise  # our own code is broken: not something to install
            raise missing_dependency(exc, needed_for=f"the {kind} source kind") from exc
        cls: type[Any] = getattr(module, spec.cls)
        _LOADED[kind] = cls
        return cls


def parse_config(kind: str, raw: Mapping[str, Any]) -> ConnectorConfig:
    """Validate a source config for `kind`; errors name the field."""
    model: type[ConnectorConfig] = connector_class(kind).config_model
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidConfig(f"invalid {kind} source config: {problems}") from None


def build(name: str, kind: str, raw: Mapping[str, Any]) -> Connector:
    """A connector of `kind` for source `name` from its stored config."""
    config = parse_config(kind, raw)
    connector: Connector = connector_class(kind)(name, config)
    return connector
