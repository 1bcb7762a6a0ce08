"""Labeling on the web page in a real browser: "Label as…" on a selection, "Auto-label similar…".

Uses test_page.py's catalog (90 shapes, colour-layout vectors) and browser. What the page
wrote is read back over REST, and the numbers it shows are the API's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.integration.web import test_page as base
from tests.integration.web.test_page import CHROMIUM, Page, card_ids, drag

# test_page.py's module fixtures, shared: its catalog of shapes and its browser.
data_dir, server, browser = base.data_dir, base.server, base.browser
ui, strict_ui = base.ui, base.strict_ui  # pages on this module's server

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        yield c


def labelled(api: httpx.Client, field: str, value: str) -> set[str]:
    res = api.get("/assets", params={"filter": json.dumps({field: value}), "limit": 200})
    assert res.status_code == 200, res.text
    return {a["id"] for a in res.json()["data"]}


@pytest.fixture(scope="module")
def backgrounds(server: LiveServer) -> dict[str, list[str]]:
    """A ground-truth set `backgrounds`: every asset labelled by hand with its background (bulk, over
    REST); the colour-layout vectors are mostly background, so a background is what they find."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        res = c.post(
            "/labelsets", json={"name": "backgrounds", "role": "ground_truth", "task": "classification"}
        )
        assert res.status_code == 201, res.text
        out: dict[str, list[str]] = {}
        for value in [v["value"] for v in c.get("/facets/meta.background").json()["values"]]:
            body = {"label": value, "filter": {"background": value}}
            res = c.post("/labelsets/backgrounds/labels", json=body)
            assert res.status_code == 200, res.text
            out[value] = sorted(labelled(c, "labels.backgrounds.label", value))
    assert sum(map(len, out.values())) == base.N_IMAGES
    return out


def test_label_as_writes_exactly_the_selected_cards(ui: Page, api: httpx.Client) -> None:
    page = ui.open()
    assert page.locator("#label-open").is_disabled()  # nothing selected yet
    cards = page.locator("#results .card")
    for i in (0, 2, 5):
        cards.nth(i).locator(".pick").check()
    picked = {card_ids(page)[i] for i in (0, 2, 5)}
    page.click("#label-open")
    dialog = page.locator("#label-dialog")
    assert "3 assets selected" in dialog.locator("#label-what").inner_text()
    page.select_option("#label-set", "__new__")
    page.fill("#label-new-name", "hand")
    page.fill("#label-new-classes", "keep, drop")
    page.fill("#label-value", "keep")
    page.click("#label-submit")
    dialog.locator("#label-result .ok").wait_for()
    assert dialog.locator("#label-result").inner_text() == "Labelled 3 assets as “keep” in hand."
    ui.shot("label-as")
    # Exactly those three, with who and when; the set declares the classes given.
    assert labelled(api, "labels.hand.label", "keep") == picked
    one = api.get(f"/assets/{next(iter(picked))}").json()
    assert one["labels"]["hand"]["labeled_by"] == "anonymous" and one["labels"]["hand"]["labeled_at"]
    hand = api.get("/labelsets/hand").json()
    assert hand["classes"] == ["keep", "drop"] and hand["classes_declared"] and hand["assets"] == 3
    # The set is offered now, with its classes as the label's suggestions.
    assert dialog.locator("#label-set").input_value() == "hand"
    assert "takes only its classes: keep, drop" in dialog.locator("#label-hint").inner_text()


def test_a_label_outside_the_sets_classes_shows_the_apis_error(ui: Page, api: httpx.Client) -> None:
    res = api.post(
        "/labelsets",
        json={"name": "strict", "role": "ground_truth", "task": "classification", "classes": ["a", "b"]},
    )
    assert res.status_code == 201, res.text
    page = ui.open()
    page.locator("#results .card .pick").first.check()
    page.click("#label-open")
    page.select_option("#label-set", "strict")
    page.fill("#label-value", "zebra")
    page.click("#label-submit")
    error = page.locator("#label-dialog #label-result .error")
    error.wait_for()
    refused = api.post("/labelsets/strict/labels", json={"label": "zebra", "ids": card_ids(page)[:1]})
    assert refused.status_code == 422
    assert error.inner_text() == f"Please check the input: {refused.json()['detail']}"
    assert "zebra" in error.inner_text()
    ui.shot("label-as-refused")
    assert api.get("/labelsets/strict").json()["assets"] == 0  # nothing written


def test_label_as_on_a_map_selection(ui: Page, api: httpx.Client) -> None:
    page = ui.open()
    page.click("#tab-map")
    # The first layout of the catalog (UMAP, once per catalog) can take a while on a busy machine.
    page.wait_for_function(
        "document.querySelector('#map-status').textContent.includes('points')", timeout=120_000
    )
    page.click("label[for=tool-box]")
    drag(page, page.locator("#map-canvas").bounding_box(), (0.01, 0.01), (0.5, 0.99))
    count = page.locator("#map-selection-count")
    chosen = int(count.inner_text().split(" ")[0].replace(",", ""))
    assert 0 < chosen < base.N_IMAGES, count.inner_text()
    ids = set(page.evaluate("import('/static/js/main.js').then(m => m.map.selectedIds())"))
    page.click("#map-label")
    assert f"{chosen} assets selected on the map" in page.locator("#label-what").inner_text()
    page.select_option("#label-set", "__new__")
    page.fill("#label-new-name", "map-hand")
    page.fill("#label-value", "left")
    page.click("#label-submit")
    page.locator("#label-dialog #label-result .ok").wait_for()
    ui.shot("label-as-map")
    assert labelled(api, "labels.map-hand.label", "left") == ids and len(ids) == chosen


def test_auto_label_similar_from_marked_examples_shows_the_curve(
    strict_ui: Page, api: httpx.Client, backgrounds: dict[str, list[str]]
) -> None:
    ui = strict_ui
    page = ui.open()
    shown = card_ids(page)
    background = "dark blue"  # the background its nearest neighbours find best (see the fixture)
    examples = [i for i in backgrounds[background] if i in shown][:2]
    assert len(examples) == 2
    for asset in examples:
        page.locator(f"#results .card[data-id='{asset}'] .mark.like").click()
    page.click("#autolabel-open")
    dialog = page.locator("#autolabel-dialog")
    assert "2 “more like” examples" in dialog.locator("#auto-from").inner_text()
    page.fill("#auto-label", background)
    name = "similar-dark-blue"
    assert dialog.locator("#auto-name").input_value() == name
    assert dialog.locator("#auto-mode-target").is_checked()
    page.fill("#auto-target", "0.5")
    page.select_option("#auto-gt", "backgrounds")
    page.click("#auto-run")
    dialog.locator("#auto-threshold-value").wait_for()
    ui.shot("auto-label")
    fn = api.get(f"/labeling-functions/{name}").json()
    run = fn["run"]
    assert fn["definition"]["rules"] == [{"label": background, "like": examples}]
    assert run["state"] == "succeeded" and run["estimated_from"] == "backgrounds" and run["labeled"] > 0
    # The numbers are the API's.
    assert dialog.locator("#auto-threshold-value").inner_text() == f"{run['threshold']:.3f}"
    assert run["estimated_precision"] is not None and run["estimated_on"] == base.N_IMAGES - 2
    assert dialog.locator("#auto-precision").inner_text() == f"{run['estimated_precision'] * 100:.1f} %"
    assert dialog.locator("#auto-coverage").inner_text() == f"{run['estimated_coverage'] * 100:.1f} %"
    assert dialog.locator("#auto-labeled").inner_text().startswith(f"{run['labeled']} as “{background}”")
    # The curve: the API's points, drawn, with the chosen threshold marked.
    curve = api.get(f"/labeling-functions/{name}/curve").json()["curve"]
    assert len(curve) > 2
    assert dialog.locator(".curve polyline.curve-precision").count() >= 1
    assert dialog.locator(".curve polyline.curve-coverage").count() >= 1
    assert dialog.locator(".curve line.curve-chosen").count() == 1
    dialog.locator(".curve-table summary").click()
    rows = dialog.locator(".curve-table tbody tr")
    assert rows.count() == len(curve)
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[0] == f"{curve[0]['threshold']:.3f}" and first[3] == str(curve[0]["labeled"])
    # Shown in the grid: exactly the assets the function labelled.
    page.click("#auto-show")
    expect(page.locator("#summary")).to_contain_text(f"{run['labeled']} assets match the filters")
    expect(page.locator("#results .card")).to_have_count(run["labeled"])
    got = set(card_ids(page))
    assert got == labelled(api, f"labels.{name}.label", background)
    assert page.locator("#search-button").inner_text() == "Search"  # the marks were cleared
    ui.shot("auto-label-shown")


def test_auto_label_without_ground_truth_says_nothing_was_estimated(
    ui: Page, api: httpx.Client, backgrounds: dict[str, list[str]]
) -> None:
    page = ui.open()
    # Nothing marked, selected or typed: nothing to start from, and the dialog says so.
    page.click("#autolabel-open")
    assert page.locator("#auto-run").is_disabled()
    assert "Nothing to start from" in page.locator("#auto-from").inner_text()
    page.click("#auto-cancel")
    page.locator("#results .card .pick").first.check()
    page.click("#autolabel-open")
    assert page.locator("#auto-run").is_enabled()
    page.fill("#auto-label", "near")
    page.check("#auto-mode-threshold")
    page.fill("#auto-threshold", "0.99")
    page.select_option("#auto-gt", "")
    page.click("#auto-run")
    note = page.locator("#autolabel-dialog #auto-nothing-estimated")
    note.wait_for()
    run = api.get("/labeling-functions/similar-near").json()["run"]
    assert run["estimated_from"] is None and run["threshold"] == pytest.approx(0.99)
    assert page.locator("#autolabel-dialog #auto-precision").count() == 0
    assert page.locator("#autolabel-dialog .curve").count() == 0
    ui.shot("auto-label-unmeasured")
