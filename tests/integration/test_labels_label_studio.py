"""The labeling loop against a real Label Studio: Loupe exports assets to a project, a labeler
submits annotations through Label Studio's API, and the project is imported live into a
ground-truth set (tasks map back by the `asset_id` Loupe put in them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.catalog.catalog import Catalog
from service.config import Settings
from tests.conftest import LiveServer, free_port
from tests.fakes import FakeEncoder
from tests.integration import label_studio_server as lss
from tests.integration.labels_helpers import SHAPES, SIZE, create_set, imported, samples
from tests.integration.test_label_studio import project_of, run_export, tasks_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
N = 12
CHOICES = (
    '<View><Image name="image" value="$image"/><Choices name="shape" toName="image">'
    + "".join(f'<Choice value="{s}"/>' for s in SHAPES)
    + "</Choices></View>"
)
RECTANGLES = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
    + "".join(f'<Label value="{s}"/>' for s in SHAPES)
    + "</RectangleLabels></View>"
)


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lss.LabelStudio]:
    try:
        lss.venv()
    except lss.Unavailable as exc:
        pytest.skip(f"Label Studio cannot be installed on this machine: {exc}")
    server = lss.session_server(tmp_path_factory.mktemp("label-studio"), free_port())
    yield server
    lss.stop(server)


@pytest.fixture(scope="module")
def loupe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from service.api.app import create_app
    from service.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root, N, 5, size=SIZE, image_format="png")
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    catalog.add_source("shapes", "local", {"path": str(root)})
    assert catalog.sync("shapes").state == "succeeded"
    with (
        LiveServer(create_app(settings, catalog=catalog)) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        yield c
    catalog.close()


def truth_by_asset(loupe: httpx.Client) -> dict[str, Any]:
    """asset id -> the synthetic sample it shows."""
    by_key = {f"img_{s.index:05d}.png": s for s in samples()[:N]}
    assets = loupe.get("/api/v1/assets", params={"limit": 100}).json()["data"]
    return {a["id"]: by_key[a["key"]] for a in assets}


def export_project(label_studio: lss.LabelStudio, loupe: httpx.Client, *, title: str, config: str) -> int:
    body = {
        "target": "label-studio",
        "filter": {"source": "shapes"},
        "label_studio": {
            "url": label_studio.url,
            "token": label_studio.token,
            "title": title,
            "label_config": config,
        },
    }
    export = run_export(loupe, body)
    assert export["state"] == "succeeded" and export["counts"]["sent"] == N, export
    return project_of(export)


def submit(label_studio: lss.LabelStudio, task_id: int, result: list[dict[str, Any]]) -> None:
    """What a labeler's Submit does: one annotation with the label config's results."""
    with label_studio.api() as api:
        resp = api.post(f"/api/tasks/{task_id}/annotations/", json={"result": result, "was_cancelled": False})
        assert resp.status_code == 201, resp.text


def pull(loupe: httpx.Client, label_studio: lss.LabelStudio, name: str, project: int) -> httpx.Response:
    body = {"label_studio": {"url": label_studio.url, "token": label_studio.token, "project_id": project}}
    return loupe.post(f"/api/v1/labelsets/{name}/annotations", json=body)


def test_choices_submitted_in_label_studio_come_back_as_ground_truth(
    label_studio: lss.LabelStudio, loupe: httpx.Client
) -> None:
    project = export_project(label_studio, loupe, title="Shapes", config=CHOICES)
    truth = truth_by_asset(loupe)
    tasks = tasks_of(label_studio, project)
    submitted: dict[str, str] = {}
    for task in tasks[: N - 2]:  # two tasks stay unlabelled
        asset = task["data"]["asset_id"]
        shape = truth[asset].attributes["shape"]
        submit(
            label_studio,
            task["id"],
            [{"from_name": "shape", "to_name": "image", "type": "choices", "value": {"choices": [shape]}}],
        )
        submitted[asset] = shape
    create_set(loupe, "ls_gt", "ground_truth", "classification")
    job = imported(loupe, pull(loupe, label_studio, "ls_gt", project))
    assert job["counts"] == {"received": N - 2, "imported": N - 2, "unknown_asset": 0, "invalid": 0}
    got = {
        a["id"]: a["labels"]["ls_gt"]["label"]
        for a in loupe.get(
            "/api/v1/assets", params={"filter": '{"labels.ls_gt.label": {"exists": true}}', "limit": 100}
        ).json()["data"]
    }
    assert got == submitted
    # The labeler changes their mind on one task: a second pull replaces that label.
    first = tasks[0]
    other = next(s for s in SHAPES if s != submitted[first["data"]["asset_id"]])
    submit(
        label_studio,
        first["id"],
        [{"from_name": "shape", "to_name": "image", "type": "choices", "value": {"choices": [other]}}],
    )
    imported(loupe, pull(loupe, label_studio, "ls_gt", project))
    asset = loupe.get(f"/api/v1/assets/{first['data']['asset_id']}").json()
    assert asset["labels"]["ls_gt"]["label"] == other
    assert loupe.get("/api/v1/labelsets/ls_gt").json()["assets"] == N - 2


def test_rectangles_come_back_as_pixel_boxes(label_studio: lss.LabelStudio, loupe: httpx.Client) -> None:
    project = export_project(label_studio, loupe, title="Boxes", config=RECTANGLES)
    truth = truth_by_asset(loupe)
    for task in tasks_of(label_studio, project):
        s = truth[task["data"]["asset_id"]]
        x, y, w, h = s.bbox or (0.0, 0.0, 0.0, 0.0)
        value = {
            "x": 100 * x / SIZE,
            "y": 100 * y / SIZE,
            "width": 100 * w / SIZE,
            "height": 100 * h / SIZE,
            "rotation": 0,
            "rectanglelabels": [s.attributes["shape"]],
        }
        submit(
            label_studio,
            task["id"],
            [
                {
                    "from_name": "box",
                    "to_name": "image",
                    "type": "rectanglelabels",
                    "original_width": SIZE,
                    "original_height": SIZE,
                    "value": value,
                }
            ],
        )
    create_set(loupe, "ls_boxes", "ground_truth", "detection")
    job = imported(loupe, pull(loupe, label_studio, "ls_boxes", project))
    assert job["counts"]["imported"] == N
    for asset_id, s in truth.items():
        value = loupe.get(f"/api/v1/assets/{asset_id}").json()["labels"]["ls_boxes"]
        (box,) = value["boxes"]
        assert box["label"] == s.attributes["shape"]
        assert box["bbox"] == pytest.approx(list(s.bbox or ()), abs=1e-6)


def test_a_project_loupe_never_exported_to_is_refused(
    label_studio: lss.LabelStudio, loupe: httpx.Client
) -> None:
    with label_studio.api() as api:
        project = api.post(
            "/api/projects/", json={"title": "Not from Loupe", "label_config": CHOICES}
        ).json()["id"]
    create_set(loupe, "stranger", "ground_truth", "classification")
    resp = pull(loupe, label_studio, "stranger", project)
    assert resp.status_code == 422 and "never exported to" in resp.json()["detail"], resp.text
    # A wrong token for a project it did export to: refused at once, naming the token.
    exported = export_project(label_studio, loupe, title="Tokens", config=CHOICES)
    body = {"label_studio": {"url": label_studio.url, "token": "0" * 40, "project_id": exported}}
    resp = loupe.post("/api/v1/labelsets/stranger/annotations", json=body)
    assert resp.status_code == 502 and "token" in resp.json()["detail"], resp.text
