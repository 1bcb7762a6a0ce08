"""The vector-space selector in a real browser: search a user space by marks, and lay it out on the map.

Uses test_page.py's catalog (90 shapes) and browser; a user space is created and filled
over REST for a dozen assets with vectors whose order is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.integration.web import test_page as base
from tests.integration.web.test_page import CHROMIUM, Page, _page

# test_page.py's module fixtures, shared: its catalog of shapes and its browser.
data_dir, server, browser = base.data_dir, base.server, base.browser

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
HELD = 12


@pytest.fixture(scope="module")
def filled(server: LiveServer) -> list[str]:
    """The ids of the assets given a vector in the space `byo`, in the order of their vectors."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        assert (
            c.post("/vector-spaces", json={"name": "byo", "dim": 2, "distance": "euclid"}).status_code == 201
        )
        ids = [a["id"] for a in c.get("/assets", params={"limit": HELD}).json()["data"]]
        rows = "\n".join(json.dumps({"asset_id": i, "vector": [float(n), 0.0]}) for n, i in enumerate(ids))
        job = c.post("/vector-spaces/byo/vectors", files={"file": ("byo.jsonl", rows)}).json()
        while job["state"] in ("queued", "running"):
            job = c.get(f"/jobs/{job['id']}").json()
        assert job["counts"]["imported"] == HELD
    return ids


@pytest.fixture
def ui(browser: Any, server: LiveServer) -> Iterator[Page]:
    yield from _page(browser, server, enforce_csp=False)


def card_ids(page: Any) -> list[str]:
    return page.locator("#results .card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def test_the_space_selector_searches_a_user_space(ui: Page, filled: list[str]) -> None:
    page = ui.open()
    assert page.locator("#space-row").is_visible()
    labels = page.locator("#space option").all_inner_texts()
    assert labels[0].endswith("(encoder)") and any(t.startswith("byo · 2-d euclid") for t in labels)
    page.select_option("#space", "byo")
    # Only the assets with a vector in the space are listed; text and images are off, and say why.
    page.wait_for_function(f"document.querySelectorAll('#results .card').length === {HELD}")
    assert page.locator("#q").is_disabled() and page.locator("#space-hint").is_visible()
    ui.shot("space-browse")
    anchor = filled[3]
    page.locator(f"#results .card[data-id='{anchor}'] .mark.like").click()
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('#results .card .score').length > 0")
    # Ranked by the imported vectors: distance |n - 3|, nearest first (ties keep Qdrant's order).
    got = card_ids(page)
    distances = [abs(filled.index(i) - 3) for i in got]
    assert anchor not in got and distances == sorted(distances) and len(got) == HELD - 1
    assert float(page.locator("#results .card .score").first.inner_text()) == pytest.approx(1.0)
    ui.shot("space-search")
    # Back to the encoder's space: text search works again.
    page.select_option("#space", "")
    assert page.locator("#q").is_enabled() and page.locator("#space-hint").is_hidden()


def test_the_map_lays_out_a_user_space(ui: Page, filled: list[str]) -> None:
    page = ui.open()
    page.click("#tab-map")
    page.wait_for_function("document.querySelector('#map-status').textContent.includes('points')")
    assert "90 points" in page.locator("#map-status").inner_text()
    page.select_option("#map-space", "byo")
    page.wait_for_function(f"document.querySelector('#map-status').textContent.includes('{HELD} points')")
    ui.shot("space-map")
