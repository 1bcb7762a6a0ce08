"""Shared helpers of the label-set tests: a synced shapes catalog and its known truth."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx

from service.synth.dataset import write_dataset
from service.synth.shapes import Sample, generate
from tests.jobs import wait_job

N = 40
SEED = 5
SIZE = 64
SHAPES = ("circle", "triangle", "square", "pentagon", "hexagon", "star", "cross", "heart", "crescent")


def samples() -> list[Sample]:
    return list(generate(SEED, N, size=SIZE, edge_cases=True))


def write_shapes(root: Path) -> list[Sample]:
    write_dataset(root, N, SEED, size=SIZE, image_format="png")
    return samples()


def filename(i: int) -> str:
    return f"img_{i:05d}.png"


def add_and_sync(client: httpx.Client, name: str, root: Path) -> dict[str, Any]:
    resp = client.post("/api/v1/sources", json={"name": name, "kind": "local", "config": {"path": str(root)}})
    assert resp.status_code == 201, resp.text
    return resync(client, name)


def resync(client: httpx.Client, name: str) -> dict[str, Any]:
    resp = client.post(f"/api/v1/sources/{name}/sync", json={})
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json())
    assert job["state"] == "succeeded", job
    return job


def create_set(client: httpx.Client, name: str, role: str, task: str, **extra: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/labelsets", json={"name": name, "role": role, "task": task, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def upload(
    client: httpx.Client, name: str, data: bytes, fmt: str, *, source: str | None = None
) -> httpx.Response:
    form = {"format": fmt, **({"source": source} if source else {})}
    return client.post(f"/api/v1/labelsets/{name}/annotations", data=form, files={"file": ("f", data)})


def imported(client: httpx.Client, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json())
    assert job["state"] == "succeeded", job
    assert job["kind"] == "label_import"
    return job


def all_assets(client: httpx.Client, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if flt is not None:
            params["filter"] = json.dumps(flt)
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/assets", params=params).json()
        out.extend(body["data"])
        cursor = body["next_cursor"]
        if not cursor:
            return out


def by_file(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {a["key"]: a for a in all_assets(client)}


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def zipped(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def coco(sample_list: list[Sample], *, scores: dict[int, float] | None = None) -> dict[str, Any]:
    """A COCO file of the shapes' true boxes (with `scores`: a results file of them)."""
    cats = {s: i + 1 for i, s in enumerate(SHAPES)}
    anns = []
    for s in sample_list:
        assert s.bbox is not None
        ann: dict[str, Any] = {
            "id": s.index + 1,
            "image_id": s.index,
            "category_id": cats[s.attributes["shape"]],
            "bbox": list(s.bbox),
            "area": s.bbox[2] * s.bbox[3],
            "iscrowd": 0,
        }
        if scores is not None:
            ann["score"] = scores[s.index]
        anns.append(ann)
    return {
        "images": [
            {"id": s.index, "file_name": filename(s.index), "width": SIZE, "height": SIZE}
            for s in sample_list
        ],
        "annotations": anns,
        "categories": [{"id": i, "name": n} for n, i in cats.items()],
    }
