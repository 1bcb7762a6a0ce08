"""The Curation view, Sort by, the map coloured by a signal and the Select next batch dialog, in a
real browser.

Uses test_page.py's fixtures (its browser and its served catalog of 90 shapes) with this module's
own shapes folder: the same 90 files, two of them overwritten with a copy of a third, so the
catalog holds one group of exact duplicates. Signals are computed over REST once for the module
(the page's own Compute button is tested on a signal the fixture leaves alone), and every check
compares what the page shows with what the REST API answers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.integration.web import test_page as base
from tests.integration.web.test_page import CHROMIUM, N_IMAGES, Page, count_in, summary

server, browser = base.server, base.browser
ui, strict_ui = base.ui, base.strict_ui  # pages on this module's own server (below)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
PLANTED = ["img_00000.jpg", "img_00001.jpg", "img_00002.jpg"]  # one file and two exact copies of it
TIGHT = 0.0005  # a near-duplicate distance that leaves only the identical files in a group
LAYOUT_MS = 90_000  # the map's first UMAP layout compiles numba code: slow on a loaded machine


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("shapes-dups")
    write_dataset(root, N_IMAGES, 11, size=64)
    for name in PLANTED[1:]:
        shutil.copyfile(root / PLANTED[0], root / name)
    return root


def _wait(c: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    while job["state"] in ("queued", "running"):
        job = c.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def signals(api: httpx.Client) -> dict[str, Any]:
    """Duplicates (tight), uniqueness and clusters computed over REST; the planted group's id."""
    for kind, body in (("duplicates", {"threshold": TIGHT}), ("uniqueness", {}), ("clusters", {"k": 3})):
        res = api.post(f"/signals/{kind}", json=body)
        assert res.status_code == 202, res.text
        _wait(api, res.json())
    # GET /fields lists the signals' fields once computed (the sidebar's filters, Sort by, the map's colours).
    fields = {f["name"]: f for f in api.get("/fields").json()["data"]}
    assert fields["signals.uniqueness"]["type"] == "float" and fields["signals.uniqueness"]["derived"]
    assert fields["signals.cluster"]["type"] == "integer"
    planted = api.get("/assets", params={"filter": json.dumps({"key": {"in": PLANTED}})}).json()["data"]
    groups = {a["signals"]["duplicate_group"] for a in planted}
    assert len(planted) == 3 and len(groups) == 1, planted
    return {"group": groups.pop(), "planted": sorted(a["id"] for a in planted)}


def card_ids(page: Any) -> list[str]:
    return list(page.locator("#results .card").evaluate_all("cards => cards.map(c => c.dataset.id)"))


def open_curation(ui: Page) -> Any:
    page = ui.page
    page.goto(ui.url + "/#curation")  # the view's address opens it
    if page.locator("#tab-curation").get_attribute("aria-selected") != "true":
        page.click("#tab-curation")  # already on the page: a hash change alone does not reload it
    page.locator("#curation-view .signals-table tbody tr").first.wait_for()
    return page


# -- the signals ---------------------------------------------------------------------------


def test_compute_a_signal_from_the_curation_view(
    ui: Page, api: httpx.Client, signals: dict[str, Any]
) -> None:
    page = open_curation(ui)
    row = page.locator("tr[data-kind='typicality']")
    assert "Not computed" in row.locator(".signal-state").inner_text()
    assert row.locator("input[type=number]").first.input_value() == "10"  # the documented default k
    row.locator("button[data-kind='typicality']").click()
    row.locator(".signal-line[data-state='succeeded']").wait_for()
    listed = api.get("/signals", params={"kind": "typicality"}).json()["data"]
    assert [s["state"] for s in listed] == ["succeeded"] and listed[0]["assets"] == N_IMAGES
    assert listed[0]["params"]["k"] == 10
    assert f"over {N_IMAGES} assets" in row.inner_text() and "up to date" in row.inner_text()
    assert "up to date" in page.locator("tr[data-kind='uniqueness']").inner_text()
    ui.shot("curation-signals")


def test_sort_by_uniqueness_follows_the_api_order(
    ui: Page, api: httpx.Client, signals: dict[str, Any]
) -> None:
    page = ui.open()
    page.locator("#sort-by option[value='signals.uniqueness']").wait_for(state="attached")
    for order in ("desc", "asc"):
        page.select_option("#sort-by", "signals.uniqueness")
        page.select_option("#sort-order", order)
        page.wait_for_function(
            "document.querySelector('#summary').textContent.includes('sorted by uniqueness')"
            " && document.querySelectorAll('#results .card .score.sorted').length >= 40"
        )
        expected = api.get(
            "/assets",
            params={
                "order_by": "signals.uniqueness",
                "order": order,
                "limit": 40,
                "filter": json.dumps({"status": "ok"}),
            },
        ).json()["data"]
        assert card_ids(page)[:40] == [a["id"] for a in expected]
        shown = [float(t) for t in page.locator("#results .card .score.sorted").all_inner_texts()[:40]]
        assert shown == [round(a["signals"]["uniqueness"], 3) for a in expected]
        if order == "desc":
            ui.shot("sort-by-uniqueness")
    # A text search ranks by similarity: the sort control says it does not apply.
    page.fill("#q", "a red star")
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('#summary').textContent.includes('Best matches')")
    assert page.locator("#sort-by").is_disabled()


def test_the_curation_view_and_the_batch_dialog_under_the_csp(
    strict_ui: Page, signals: dict[str, Any]
) -> None:
    page = open_curation(strict_ui)
    page.locator("#duplicates .dup-member img").first.wait_for()
    page.locator("#clusters .cluster-strip img").first.wait_for()
    page.click("#curation-batch")  # the Curation view opens the same dialog as the toolbar
    page.locator("#batch-dialog #batch-name").wait_for()
    assert page.locator("#batch-dialog").evaluate("d => d.open")
    page.click("#batch-cancel")
    assert not [e for e in strict_ui.errors if "Content Security Policy" in e]


# -- duplicates ------------------------------------------------------------------------------


def test_keep_another_duplicate(ui: Page, api: httpx.Client, signals: dict[str, Any]) -> None:
    group_id = signals["group"]
    before = next(g for g in api.get("/duplicates").json()["data"] if g["group"] == group_id)
    assert sorted(before["ids"]) == signals["planted"] and not before["excluded"]
    total = api.get("/assets/count").json()["count"]
    page = open_curation(ui)
    group = page.locator(f".dup-group[data-group='{group_id}']")
    group.wait_for()
    assert group.locator(".dup-member.kept").get_attribute("data-id") == before["keep"]
    assert "left out of search and export" in page.locator(".dup-note").inner_text()
    other = next(i for i in before["ids"] if i != before["keep"])
    group.locator(f".dup-member[data-id='{other}']").click()
    group.locator(f".dup-member.kept[data-id='{other}']").wait_for()
    after = next(g for g in api.get("/duplicates").json()["data"] if g["group"] == group_id)
    assert after["keep"] == other and sorted(after["excluded"]) == sorted(set(before["ids"]) - {other})
    assert group.locator(".dup-member.excluded").count() == 2
    hits = {h["id"] for h in api.post("/search", json={"text": "a shape", "limit": 100}).json()["hits"]}
    assert other in hits and not hits & set(after["excluded"])  # left out of search (and export)
    assert len(hits) == total - 2
    ui.shot("curation-duplicates")
    # "Include all" brings them back (and leaves the catalog as the other tests expect it).
    group.get_by_role("button", name="Include all").click()
    group.locator(".dup-member.excluded").first.wait_for(state="detached")
    restored = next(g for g in api.get("/duplicates").json()["data"] if g["group"] == group_id)
    hits = {h["id"] for h in api.post("/search", json={"text": "a shape", "limit": 100}).json()["hits"]}
    assert restored["excluded"] == [] and len(hits) == total


# -- clusters -----------------------------------------------------------------------------------


def test_a_cluster_click_opens_exactly_its_assets(
    ui: Page, api: httpx.Client, signals: dict[str, Any]
) -> None:
    page = open_curation(ui)
    items = page.locator("#clusters li.cluster")
    items.first.wait_for()
    # Read in one call: a refresh re-renders the list, so two reads could see two renders.
    pairs = items.evaluate_all("els => els.map(e => [e.dataset.count, e.dataset.cluster])")
    sizes, clusters = [int(s) for s, _ in pairs], [int(c) for _, c in pairs]
    real = [s for s, c in zip(sizes, clusters, strict=True) if c != -1]
    facets = api.get("/facets/signals.cluster", params={"limit": 100}).json()["values"]
    listed = api.get("/signals", params={"kind": "clusters"}).json()["data"]
    assert len(real) >= 2 and real == sorted(real), (sizes, clusters, facets, listed)  # small first
    page.select_option("#cluster-order", "desc")
    largest = [
        int(c)
        for c in items.evaluate_all(
            "els => els.filter(e => e.dataset.cluster !== '-1').map(e => e.dataset.count)"
        )
    ]
    assert largest == sorted(real, reverse=True)
    page.select_option("#cluster-order", "asc")
    page.locator("#clusters .cluster-strip img").first.wait_for()
    page.locator("#clusters").scroll_into_view_if_needed()
    ui.shot("curation-clusters")
    smallest, count = clusters[0], sizes[0]
    flt = {"signals.cluster": smallest, "status": "ok"}
    members = api.get("/assets", params={"filter": json.dumps(flt), "limit": 100}).json()["data"]
    assert len(members) == count
    items.first.locator("button.cluster-open").click()
    page.wait_for_function(f"document.querySelectorAll('#results .card').length === {count}")
    page.wait_for_function("!document.querySelector('#summary').textContent.includes('…')")
    assert count_in(summary(page)) == count
    assert sorted(card_ids(page)) == sorted(a["id"] for a in members)
    assert "cluster" in page.locator("#active-filters").inner_text()


# -- the map ---------------------------------------------------------------------------------------


def test_colour_the_map_by_a_signal(ui: Page, api: httpx.Client, signals: dict[str, Any]) -> None:
    page = ui.open()
    page.click("#tab-map")
    page.locator("#map-color option[value='signals.uniqueness']").wait_for(
        state="attached", timeout=LAYOUT_MS
    )
    page.select_option("#map-color", "signals.uniqueness")
    ramp = page.locator("#map-legend .ramp")
    ramp.wait_for()
    assert ramp.locator(".legend-title").inner_text() == "uniqueness"
    ui.shot("map-by-uniqueness")
    # Clusters are categories: one legend entry per cluster (noise included), counted as the API does.
    page.select_option("#map-color", "signals.cluster")
    page.locator("#map-legend .legend-item").first.wait_for()
    facets = api.get("/facets/signals.cluster", params={"limit": 100}).json()["values"]
    assert page.locator("#map-legend .legend-item").count() == len(facets)
    assert "noise" in page.locator("#map-legend").inner_text()


# -- Select next batch -------------------------------------------------------------------------------


def test_a_selected_batch_opens_its_members_and_exports_them(
    ui: Page, api: httpx.Client, signals: dict[str, Any], tmp_path: Path
) -> None:
    page = ui.open()
    page.click("#batch-open")
    page.fill("#batch-name", "ui-batch")
    page.fill("#batch-budget", "12")
    assert page.locator("#strat-diversity").is_checked()  # the default strategy
    page.check("#strat-field")
    page.select_option("#batch-weight-field", "signals.uniqueness")
    # The pool is the current filters (none here), counted as the API counts them.
    page.wait_for_function(f"document.querySelector('#batch-pool').textContent.endsWith(': {N_IMAGES}')")
    ui.shot("batch-dialog")
    page.click("#batch-submit")
    page.wait_for_function("document.querySelector('#summary').textContent.includes('12 assets match')")
    page.wait_for_function("document.querySelectorAll('#results .card').length === 12")
    chosen = api.get("/selections/ui-batch").json()
    assert chosen["state"] == "succeeded" and chosen["count"] == 12
    assert sorted(card_ids(page)) == sorted(chosen["ids"])
    assert [s["kind"] for s in chosen["strategies"]] == ["diversity", "field"]
    ui.shot("batch-in-grid")
    # Export… offers the selection by name, and sends exactly its members.
    page.click("#export-open")
    label = page.locator("#export-what-search-label").inner_text()
    assert "ui-batch" in label and "(12)" in label
    page.check("#export-what-search")
    page.select_option("#export-target", "jsonl")
    out = tmp_path / "batch.jsonl"
    page.fill("#export-path", str(out))
    page.click("#export-submit")
    page.locator("#export-result .ok").wait_for()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(chosen["ids"])


def test_batch_errors_are_shown_in_plain_words(ui: Page, api: httpx.Client, signals: dict[str, Any]) -> None:
    created = api.post(
        "/labelsets", json={"name": "no-scores", "role": "predictions", "task": "classification"}
    )
    assert created.status_code == 201, created.text
    page = ui.open()
    page.click("#batch-open")
    page.fill("#batch-name", "bad-batch")
    page.fill("#batch-budget", "0")
    page.click("#batch-submit")
    error = page.locator("#batch-result .error")
    error.wait_for()
    assert "budget" in error.inner_text() and "greater than or equal to 1" in error.inner_text()
    assert "Please check the input" in error.inner_text()
    # Uncertainty on a predictions set that holds no scores: the API says so, nothing is written.
    page.fill("#batch-budget", "5")
    page.uncheck("#strat-diversity")
    page.check("#strat-uncertainty")
    page.select_option("#batch-predictions", "no-scores")
    page.click("#batch-submit")
    page.wait_for_function(
        "document.querySelector('#batch-result .error') && "
        "document.querySelector('#batch-result .error').textContent.includes('no-scores')"
    )
    ui.shot("batch-error")
    assert api.get("/selections/bad-batch").status_code == 404


# -- last: a sync makes the signals stale (it adds an asset, so this module's other tests come first) --


def test_a_sync_makes_the_signals_stale(
    ui: Page, api: httpx.Client, signals: dict[str, Any], data_dir: Path
) -> None:
    shutil.copyfile(data_dir / "img_00005.jpg", data_dir / "added_after.jpg")
    _wait(api, api.post("/sources/shapes/sync").json())
    # Sorted by uniqueness, the grid lists and counts only the assets that have it: not the new one.
    page = ui.open()
    assert count_in(summary(page)) == N_IMAGES + 1
    page.locator("#sort-by option[value='signals.uniqueness']").wait_for(state="attached")
    page.select_option("#sort-by", "signals.uniqueness")
    page.wait_for_function(
        "/sorted by uniqueness/.test(document.querySelector('#summary').textContent)"
        " && !document.querySelector('#summary').textContent.includes('…')"
    )
    assert count_in(summary(page)) == N_IMAGES
    page = open_curation(ui)
    line = page.locator("tr[data-kind='uniqueness'] .signal-line[data-state='stale']")
    line.wait_for()
    listed = api.get("/signals", params={"kind": "uniqueness"}).json()["data"][0]
    assert listed["stale"] and listed["stale_count"] == 1
    assert "stale: 1 asset synced since" in line.inner_text()
    page.locator("tr[data-kind='uniqueness']").scroll_into_view_if_needed()
    ui.shot("curation-stale")
