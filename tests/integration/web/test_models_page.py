"""The Models view in a real browser: label sets, an evaluation's tables, the confusion matrix
opening its assets, "find more like these", a run started from the page, comparing two runs,
and detection boxes over the image.

Uses test_page.py's catalog (90 shapes with `shape`/`background` metadata) and browser. Over
REST, a module fixture makes a ground-truth set of the first 60 assets' shapes (the other 30 stay
unlabeled, for "find more like these"), two rule-based predictions sets with planted errors
(run1 misreads shapes on noisy backgrounds and calls every rare shape a circle; run2 misreads
them on striped ones), their evaluations, and a small detection pair whose boxes come from the
images' own pixels.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.synth import SHAPES
from tests.conftest import LiveServer
from tests.integration.web import test_page as base
from tests.integration.web.test_page import CHROMIUM, Page, _page, answer_dialog, card_ids, count_in, summary
from tests.jobs import wait_for

# test_page.py's module fixtures, shared: its catalog of shapes and its browser.
data_dir, server, browser = base.data_dir, base.server, base.browser
ui, strict_ui = base.ui, base.strict_ui  # pages on this module's server

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
LABELED = 60
SOLID = ("grey", "white", "black", "beige")  # backgrounds whose shapes a threshold finds
DETECTED = 8


wait = functools.partial(wait_for, succeeded=True)


def run_model(shape: str, background: str, hard: str, *, rare_as_circle: bool) -> str:
    if shape not in SHAPES:
        return "circle" if rare_as_circle else shape
    return SHAPES[(SHAPES.index(shape) + 1) % len(SHAPES)] if background == hard else shape


def shape_box(path: Path) -> list[float]:
    """The bounding box of the pixels that differ from a solid background (its corner's colour)."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    ys, xs = np.nonzero(np.abs(pixels - pixels[0, 0]).max(axis=2) > 40)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


@pytest.fixture(scope="module")
def world(server: LiveServer, data_dir: Path) -> dict[str, Any]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        assets = sorted(c.get("/assets", params={"limit": 1000}).json()["data"], key=lambda a: a["key"])

        def create(name: str, role: str, task: str, records: list[dict[str, Any]]) -> None:
            assert c.post("/labelsets", json={"name": name, "role": role, "task": task}).status_code == 201
            job = c.post(f"/labelsets/{name}/annotations", json={"format": "loupe", "annotations": records})
            assert job.status_code == 202, job.text
            assert wait(c, "/jobs", job.json())["counts"]["imported"] == len(records)

        create(
            "truth",
            "ground_truth",
            "classification",
            [{"asset_id": a["id"], "label": a["metadata"]["shape"]} for a in assets[:LABELED]],
        )
        for name, hard, rare in (("run1", "noisy", True), ("run2", "striped", False)):
            create(
                name,
                "predictions",
                "classification",
                [
                    {
                        "asset_id": a["id"],
                        "label": run_model(
                            a["metadata"]["shape"], a["metadata"]["background"], hard, rare_as_circle=rare
                        ),
                        "score": 0.8,
                    }
                    for a in assets
                ],
            )
        evals = {}
        for name in ("run1", "run2"):
            ev = c.post(
                "/evaluations",
                json={"predictions": name, "ground_truth": "truth", "slice_by": ["background"]},
            )
            assert ev.status_code == 202, ev.text
            evals[name] = wait(c, "/evaluations", ev.json())
        # Detection: boxes of the shapes on solid backgrounds; the "detector" shifts one, names one
        # wrongly, misses one and adds a stray box.
        solid = [a for a in assets if a["metadata"]["background"] in SOLID][:DETECTED]
        truth_boxes = {a["id"]: shape_box(data_dir / a["key"]) for a in solid}
        gt_records, pred_records = [], []
        for i, a in enumerate(solid):
            x, y, w, h = truth_boxes[a["id"]]
            label = a["metadata"]["shape"]
            gt_records.append({"asset_id": a["id"], "boxes": [{"label": label, "bbox": [x, y, w, h]}]})
            boxes = [{"label": label, "bbox": [x + 1, y + 1, w, h], "score": 0.9}]
            if i == 1:
                boxes = [
                    {"label": "square" if label != "square" else "circle", "bbox": [x, y, w, h], "score": 0.7}
                ]
            elif i == 2:
                boxes = []
            elif i == 3:
                boxes.append({"label": "star", "bbox": [1.0, 1.0, 10.0, 10.0], "score": 0.4})
            pred_records.append({"asset_id": a["id"], "boxes": boxes})
        create("boxes", "ground_truth", "detection", gt_records)
        create("detector", "predictions", "detection", pred_records)
        ev = c.post("/evaluations", json={"predictions": "detector", "ground_truth": "boxes", "iou": 0.5})
        evals["detector"] = wait(c, "/evaluations", ev.json())
        return {"assets": assets, "evals": evals, "labeled": {a["id"] for a in assets[:LABELED]}}


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", timeout=60)


def open_models(ui: Page) -> Any:
    page = ui.page
    page.goto(f"{ui.url}/#models")
    page.locator("#label-sets table tbody tr").first.wait_for()
    return page


def open_evaluation(page: Any, ev: dict[str, Any]) -> None:
    page.click(f".eval-open[data-id='{ev['id']}']")
    page.locator(f".evaluation[data-id='{ev['id']}']").wait_for()


def wait_grid(page: Any, count: int) -> None:
    page.locator("#results-view").wait_for()
    page.wait_for_function(
        "n => { const s = document.querySelector('#summary').textContent;"
        " return s.includes('showing') || s.includes('nothing to show'); }",
        arg=count,
    )
    page.wait_for_function(
        "n => document.querySelectorAll('#results .card').length === Math.min(n, 40)", arg=count
    )


def keys_of(client: httpx.Client, flt: dict[str, Any]) -> list[str]:
    resp = client.get("/assets", params={"filter": json.dumps(flt), "limit": 1000})
    assert resp.status_code == 200, resp.text
    return [a["id"] for a in resp.json()["data"]]


def test_label_sets_and_the_metric_tables_show_the_api_numbers(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    with api(server) as c:
        sets = {s["name"]: s for s in c.get("/labelsets").json()["data"]}
    rows = page.locator("#label-sets tbody tr")
    assert rows.count() == len(sets)
    for row in rows.all():
        cells = row.locator("th, td").all_inner_texts()
        s = sets[cells[0]]
        assert cells[1] == ("Ground truth" if s["role"] == "ground_truth" else "Predictions")
        assert cells[2] == s["task"] and int(cells[4].replace(",", "")) == s["assets"]
    ev = world["evals"]["run1"]
    open_evaluation(page, ev)
    panel = page.locator(f".evaluation[data-id='{ev['id']}']")
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        assert (
            panel.locator(f".metric[data-metric='{key}'] .metric-value").inner_text()
            == f"{ev['metrics'][key]:.3f}"
        )
    table = panel.locator("table.per-class tbody tr")
    assert table.count() == len(ev["per_class"])
    for row in table.all():
        cells = row.locator("th, td").all_inner_texts()
        m = ev["per_class"][cells[0]]
        assert cells[1:4] == [f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}"]
        assert int(cells[4]) == m["support"]
    # Sorting by recall (a click on its header) orders the rows by the API's recall.
    panel.locator("table.per-class thead button", has_text="Recall").click()
    panel.locator("table.per-class thead button", has_text="Recall").click()
    shown = [float(t) for t in panel.locator("table.per-class tbody tr td:nth-child(3)").all_inner_texts()]
    assert shown == sorted(shown)
    slices = panel.locator("table.slices tbody tr")
    assert slices.count() == len(ev["slices"])
    noisy = next(s for s in ev["slices"] if s["value"] == "noisy")
    row = panel.locator("table.slices tbody tr", has_text="noisy")
    assert f"{noisy['metrics']['accuracy']:.3f}" in row.inner_text()
    # The matrix holds the API's counts, cell by cell.
    labels, matrix = ev["confusion"]["labels"], ev["confusion"]["matrix"]
    for i, gt in enumerate(labels):
        for j, pr in enumerate(labels):
            cell = panel.locator("table.confusion tbody tr").nth(i).locator("td").nth(j)
            assert cell.inner_text() == str(matrix[i][j]), (gt, pr)
    ui.shot("models-evaluation")
    panel.locator("table.confusion").scroll_into_view_if_needed()
    ui.shot("models-confusion")


def test_a_confusion_cell_opens_exactly_its_assets_with_truth_beside_prediction(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    ev = world["evals"]["run1"]
    open_evaluation(page, ev)
    labels, matrix = ev["confusion"]["labels"], ev["confusion"]["matrix"]
    i, j = max(
        ((i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i][j]),
        key=lambda ij: matrix[ij[0]][ij[1]],
    )
    page.click(f".cell-open[data-gt='{labels[i]}'][data-pred='{labels[j]}']")
    wait_grid(page, matrix[i][j])
    assert count_in(summary(page)) == matrix[i][j]
    with api(server) as c:
        expected = keys_of(c, ev["confusion"]["filters"][i][j])
    assert sorted(card_ids(page)) == sorted(expected) and len(expected) == matrix[i][j]
    assert page.locator("#scope-banner").is_visible()
    assert f"ground truth “{labels[i]}”, predicted “{labels[j]}”" in page.locator("#scope-text").inner_text()
    verdicts = page.locator("#results .card .verdict")
    assert verdicts.count() == matrix[i][j]
    for text in verdicts.all_inner_texts():
        assert text.startswith(f"GT: {labels[i]} · Pred: {labels[j]}")
    assert page.locator("#results .card .verdict.wrong").count() == matrix[i][j]
    ui.shot("models-cell-grid")
    page.locator("#results .card .thumb").first.click()
    assert page.locator("#detail .detail-verdict .verdict.wrong").inner_text().startswith(f"GT: {labels[i]}")
    ui.shot("models-cell-detail")
    page.keyboard.press("Escape")
    # The diagonal: right predictions, in green.
    page.click("#tab-models")
    page.click(f".cell-open[data-gt='{labels[i]}'][data-pred='{labels[i]}']")
    wait_grid(page, matrix[i][i])
    assert page.locator("#results .card .verdict.right").count() == min(40, matrix[i][i])
    # Back to the search: the whole catalog again, no banner, no verdicts.
    page.click("#scope-clear")
    page.wait_for_function(
        f"document.querySelector('#summary').textContent.startsWith('{base.N_IMAGES} assets')"
    )
    assert page.locator("#scope-banner").is_hidden() and page.locator("#results .card .verdict").count() == 0


def test_running_an_evaluation_from_the_page_shows_its_progress_and_result(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    page.select_option("#eval-gt", "truth")
    page.select_option("#eval-pred", "run2")
    page.select_option("#eval-slice", "color")
    assert page.locator("#eval-iou").is_hidden()  # classification: no IoU
    page.click("#eval-run")
    page.locator("#eval-status .ok").wait_for()
    with api(server) as c:
        latest = c.get("/evaluations", params={"limit": 1}).json()["data"][0]
    assert (
        latest["predictions"] == "run2" and latest["slice_by"] == ["color"] and latest["state"] == "succeeded"
    )
    panel = page.locator(f".evaluation[data-id='{latest['id']}']")
    panel.wait_for()
    assert (
        panel.locator(".metric[data-metric='accuracy'] .metric-value").inner_text()
        == f"{latest['metrics']['accuracy']:.3f}"
    )
    assert panel.locator("table.slices tbody tr").count() == len(latest["slices"])
    # Its outcome field joined the filter sidebar.
    page.locator(f"details.field[data-field='evals.{latest['id']}.correct']").wait_for(state="attached")
    assert page.locator("details.field[data-field='labels.truth.label']").count() == 1
    # Detection sets offer an IoU.
    page.select_option("#eval-gt", "boxes")
    assert page.locator("#eval-iou").is_visible()
    assert page.locator("#eval-pred option").all_inner_texts() == ["detector"]
    ui.shot("models-run")


def test_find_more_like_these_shows_unlabeled_look_alikes_ready_to_export(
    ui: Page, server: LiveServer, world: dict[str, Any], tmp_path: Path
) -> None:
    page = open_models(ui)
    ev = world["evals"]["run1"]
    open_evaluation(page, ev)
    first = page.locator(".confusions li").first
    gt, pred = first.get_attribute("data-gt"), first.get_attribute("data-pred")
    first.locator("button.similar").click()
    page.wait_for_function("document.querySelector('#summary').textContent.includes('Best matches')")
    page.wait_for_function("document.querySelectorAll('#results .card').length > 0")
    page.wait_for_function("!document.querySelector('#summary').textContent.includes('searching')")
    shown = card_ids(page)
    with api(server) as c:
        found = c.post(f"/evaluations/{ev['id']}/similar", json={"cell": [gt, pred], "limit": 200}).json()
    hits = [h["id"] for h in found["hits"]]
    # The page runs the very search the API answered with: the same look-alikes, best first.
    assert shown == hits[: len(shown)] and len(shown) == min(40, len(hits))
    assert not set(shown) & world["labeled"]  # none of them is in the ground-truth set
    assert "not in “truth”" in page.locator("#scope-text").inner_text()
    assert all(
        t.startswith("GT: unlabeled") for t in page.locator("#results .card .verdict").all_inner_texts()
    )
    ui.shot("models-similar")
    # Export: all results of that search, to a file; exactly the look-alikes, none labeled.
    page.click("#export-open")
    dialog = page.locator("#export-dialog")
    assert "All results of the current search" in dialog.locator("#export-what-search-label").inner_text()
    dialog.locator("#export-what-search").check()
    dialog.locator("#export-target").select_option("jsonl")
    out = tmp_path / "look-alikes.jsonl"
    dialog.locator("#export-path").fill(str(out))
    dialog.locator("#export-submit").click()
    dialog.locator("#export-result .ok").wait_for()
    exported = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert exported == hits and not set(exported) & world["labeled"]
    page.click("#export-cancel")
    # A slice's errors work the same way.
    page.click("#tab-models")
    row = page.locator(f".evaluation[data-id='{ev['id']}'] table.slices tbody tr", has_text="noisy")
    row.locator("button.similar").click()
    page.wait_for_function("document.querySelector('#scope-text').textContent.includes('background = noisy')")
    page.wait_for_function("document.querySelectorAll('#results .card').length > 0")
    assert not set(card_ids(page)) & world["labeled"]


def test_compare_shows_fixed_and_broken_counts_equal_to_the_api(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    a, b = world["evals"]["run1"], world["evals"]["run2"]
    page.select_option("#compare-a", a["id"])
    page.select_option("#compare-b", b["id"])
    page.click("#compare-run")
    page.locator(".comparison").wait_for()
    with api(server) as c:
        cmp = c.post("/evaluations/compare", json={"a": a["id"], "b": b["id"]}).json()
    assert cmp["fixed"]["count"] > 0 and cmp["broken"]["count"] > 0
    assert page.locator("#compare-fixed").get_attribute("data-count") == str(cmp["fixed"]["count"])
    assert page.locator("#compare-broken").get_attribute("data-count") == str(cmp["broken"]["count"])
    acc = page.locator("table.compare-overall tbody tr", has_text="accuracy").locator("td").all_inner_texts()
    assert acc[-1] == f"{cmp['metrics']['accuracy']:+.3f}"
    assert page.locator("table.compare-slices tbody tr").count() == len(cmp["slices"])
    page.locator(".comparison").scroll_into_view_if_needed()
    ui.shot("models-compare")
    page.click("#compare-fixed")
    wait_grid(page, cmp["fixed"]["count"])
    assert count_in(summary(page)) == cmp["fixed"]["count"]
    with api(server) as c:
        assert sorted(card_ids(page)) == sorted(keys_of(c, cmp["fixed"]["filter"]))
    # Fixed: right under b, so the cards (b's predictions) are green.
    assert page.locator("#results .card .verdict.right").count() == cmp["fixed"]["count"]


def test_a_detection_cell_draws_both_sets_boxes_over_the_image(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    ev = world["evals"]["detector"]
    open_evaluation(page, ev)
    labels, matrix = ev["confusion"]["labels"], ev["confusion"]["matrix"]
    assert labels[-1] == "(none)" and sum(map(sum, matrix)) > 0
    page.locator(f".evaluation[data-id='{ev['id']}'] table.confusion").scroll_into_view_if_needed()
    ui.shot("models-detection")
    # The stray detection: the (none) row.
    j = next(j for j in range(len(labels)) if matrix[-1][j])
    page.click(f".cell-open[data-gt='(none)'][data-pred='{labels[j]}']")
    with api(server) as c:
        expected = keys_of(c, ev["confusion"]["filters"][-1][j])
        assets = {i: c.get(f"/assets/{i}").json() for i in expected}
    wait_grid(page, len(expected))
    assert sorted(card_ids(page)) == sorted(expected)
    first = card_ids(page)[0]
    page.locator(f"#results .card[data-id='{first}'] .thumb").click()
    svg = page.locator("#detail svg.boxes")
    svg.wait_for()
    labels_of = assets[first]["labels"]
    assert svg.locator("g.gt rect").count() == len(labels_of["boxes"]["boxes"])
    assert svg.locator("g.pred rect").count() == len(labels_of["detector"]["boxes"])
    x, y, w, h = labels_of["boxes"]["boxes"][0]["bbox"]
    drawn = svg.locator("g.gt rect").first
    assert [float(drawn.get_attribute(k)) for k in ("x", "y", "width", "height")] == [x, y, w, h]
    assert page.locator("#detail .detail-verdict .verdict").inner_text().startswith("GT: 1 box")
    ui.shot("models-detection-detail")


def test_the_models_view_works_under_the_content_security_policy(
    browser: Any, server: LiveServer, world: dict[str, Any]
) -> None:
    for strict in _page(browser, server, enforce_csp=True):
        page = open_models(strict)
        open_evaluation(page, world["evals"]["detector"])
        page.locator(".cell-open").first.click()
        page.locator("#results .card .verdict").first.wait_for()
        page.locator("#results .card .thumb").first.click()
        page.locator("#detail svg.boxes").wait_for()
        # The heat of a cell is a custom property set through the CSSOM, which the policy allows.
        page.click("#detail .close")
        page.click("#tab-models")
        heat = page.locator("td.cell.diag:not(.zero)").first.evaluate(
            "td => getComputedStyle(td).backgroundColor"
        )
        assert heat not in ("rgba(0, 0, 0, 0)", "transparent")
        assert not [e for e in strict.errors if "Content Security Policy" in e]


def test_a_slices_errors_and_every_error_open_in_the_grid(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    page = open_models(ui)
    ev = world["evals"]["run1"]
    open_evaluation(page, ev)
    wrong = ev["outcomes"]["wrong"]
    with api(server) as c:
        noisy = keys_of(c, {"and": [{"background": "noisy"}, wrong]})
        every = keys_of(c, wrong)
    assert noisy and len(every) > len(noisy)
    row = page.locator(f".evaluation[data-id='{ev['id']}'] table.slices tbody tr", has_text="noisy")
    row.get_by_role("button", name="Show errors").click()
    wait_grid(page, len(noisy))
    assert sorted(card_ids(page)) == sorted(noisy)
    assert "where background = noisy" in page.locator("#scope-text").inner_text()
    page.click("#tab-models")
    page.click(f".evaluation[data-id='{ev['id']}'] .open-wrong")
    wait_grid(page, len(every))
    assert sorted(card_ids(page)) == sorted(every) and count_in(summary(page)) == len(every)
    assert page.locator("#results .card .verdict.wrong").count() == len(every)


def test_deleting_an_evaluation_from_the_page_asks_first_then_removes_it_and_its_fields(
    ui: Page, server: LiveServer, world: dict[str, Any]
) -> None:
    with api(server) as c:
        job = c.post("/evaluations", json={"predictions": "run1", "ground_truth": "truth"})
        assert job.status_code == 202, job.text
        ev = wait(c, "/evaluations", job.json())
    page = open_models(ui)
    field = f"details.field[data-field='evals.{ev['id']}.correct']"
    page.locator(field).wait_for(state="attached")
    open_evaluation(page, ev)
    button = page.locator(f".eval-delete[data-id='{ev['id']}']")
    # Dismissed: nothing happens.
    messages: list[str] = []

    def answer(accept: bool) -> Any:
        return answer_dialog(messages, accept=accept)

    page.once("dialog", answer(False))
    button.click()  # the dialog is answered inside the click
    assert messages and ev["id"][:8] in messages[0] and f"evals.{ev['id']}" in messages[0]
    with api(server) as c:
        assert c.get(f"/evaluations/{ev['id']}").status_code == 200
    assert page.locator(f".evaluation[data-id='{ev['id']}']").count() == 1
    # Accepted: the row, the open panel and its sidebar fields go; the others stay.
    page.once("dialog", answer(True))
    button.click()
    page.locator(f".eval-delete[data-id='{ev['id']}']").wait_for(state="detached")
    page.locator(field).wait_for(state="detached")
    assert page.locator(f".evaluation[data-id='{ev['id']}']").count() == 0
    assert "Deleted the evaluation" in page.locator("body").inner_text()
    for other in world["evals"].values():
        assert page.locator(f".eval-delete[data-id='{other['id']}']").count() == 1
    with api(server) as c:
        assert c.get(f"/evaluations/{ev['id']}").status_code == 404
        gone = c.get(
            "/assets/count", params={"filter": json.dumps({f"evals.{ev['id']}.correct": {"exists": True}})}
        )
        assert gone.status_code == 200 and gone.json()["count"] == 0
    ui.shot("models-deleted")
