"""The web page in a real browser: Debian's Chromium driven by Playwright against a live server.

One small synthetic catalog (coloured shapes with sidecar metadata, encoded by
the deterministic colour-layout FakeEncoder) is served by uvicorn on 127.0.0.1
for the whole module; each test opens the page in a fresh browser context.
Screenshots go to tests/.artifacts/. Skips, saying why, when chromium is not
installed (CI installs it with scripts/system-deps.sh); installs nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.config import Settings
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder

CHROMIUM = shutil.which("chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
N_IMAGES = 90
WAIT_MS = 20_000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium; scripts/system-deps.sh does it)",
)


class SlowableEncoder(FakeEncoder):
    """The fake encoder, with a delay per batch so a test can watch a sync in progress."""

    delay = 0.0

    def encode_prepared(self, items: Any) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        return super().encode_prepared(items)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root, N_IMAGES, 11, size=64)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[LiveServer]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=SlowableEncoder())
    catalog.add_source("shapes", "local", {"path": str(data_dir)})
    job = catalog.sync("shapes")
    assert job.state == "succeeded" and job.counts["added"] == N_IMAGES, job.counts
    with LiveServer(create_app(settings, catalog=catalog)) as live:
        live.catalog = catalog  # type: ignore[attr-defined]
        yield live
    catalog.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page plus the console errors it logged (a test fails on any it did not expect)."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, path: str = "/") -> Any:
        self.page.goto(self.url + path)
        self.page.wait_for_selector("#results .card", timeout=WAIT_MS)
        return self.page

    def shot(self, name: str) -> None:
        """A screenshot once the images in view have loaded (thumbnails are made on request)."""
        try:
            self.page.wait_for_function(
                "[...document.images].filter(i => { const r = i.getBoundingClientRect();"
                " return r.width && r.top < innerHeight && r.bottom > 0; }).every(i => i.complete)",
                timeout=10_000,
            )
        except Exception:  # a slow thumbnail makes a worse picture, not a failed test
            pass
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"))


def answer_dialog(messages: list[str], *, accept: bool) -> Callable[[Any], None]:
    """A `page.once("dialog", ...)` handler: records the dialog's text, then accepts or dismisses."""

    def on_dialog(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    return on_dialog


def _page(browser: Any, server: LiveServer, *, enforce_csp: bool) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=not enforce_csp)
    context.set_default_timeout(WAIT_MS)
    page = Page(context.new_page(), server.url)
    yield page
    context.close()
    unexpected = [e for e in page.errors if "Failed to load resource" not in e]
    assert not unexpected, unexpected


@pytest.fixture
def ui(browser: Any, server: LiveServer) -> Iterator[Page]:
    """A page whose CSP is bypassed: Playwright's `wait_for_function` evaluates strings."""
    yield from _page(browser, server, enforce_csp=False)


@pytest.fixture
def strict_ui(browser: Any, server: LiveServer) -> Iterator[Page]:
    """A page under its own Content-Security-Policy, as users get it."""
    yield from _page(browser, server, enforce_csp=True)


# -- helpers -----------------------------------------------------------------------


def summary(page: Any) -> str:
    return str(page.locator("#summary").inner_text())


def count_in(text: str) -> int:
    match = re.search(r"([\d,]+) assets", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def card_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.id)"))


def search_text(page: Any, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('#summary').textContent.includes('Best matches')")
    page.wait_for_function("document.querySelector('#summary').textContent.includes('showing')")


# -- search ----------------------------------------------------------------------------


def test_the_page_works_under_its_content_security_policy(strict_ui: Page) -> None:
    page = strict_ui.open()
    assert "script-src 'self'" in (
        page.evaluate("fetch('/').then(r => r.headers.get('content-security-policy'))")
    )
    page.fill("#q", "a yellow triangle")
    page.press("#q", "Enter")
    page.locator("#results .card .score").first.wait_for()
    page.locator("details.field[data-field='meta.color'] .values li").first.wait_for()
    page.click("#tab-map")
    page.locator("#map-legend .legend-item").first.wait_for()
    # The fixture fails the test on any console error, CSP violations ("Refused to ...") included.
    assert not [e for e in strict_ui.errors if "Content Security Policy" in e]


def test_text_search_shows_scored_results(ui: Page) -> None:
    page = ui.open()
    assert count_in(summary(page)) == N_IMAGES  # browsing: the whole catalog
    search_text(page, "a red star")
    cards = page.locator("#results .card")
    assert cards.count() == 40  # one page; more load on scroll
    scores = [float(s) for s in page.locator("#results .card .score").all_inner_texts()]
    assert len(scores) == 40 and scores == sorted(scores, reverse=True)
    assert page.locator("#results .card img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    ui.shot("text-search")


def test_infinite_scroll_loads_the_next_page(ui: Page) -> None:
    page = ui.open()
    assert page.locator("#results .card").count() == 40
    for _ in range(10):  # as a reader scrolls down: each page loads before its end comes into view
        page.locator("#sentinel").scroll_into_view_if_needed()
        if page.locator("#results .card").count() == N_IMAGES:
            break
        page.wait_for_timeout(300)
    assert page.locator("#results .card").count() == N_IMAGES
    assert len(set(card_ids(page))) == N_IMAGES
    assert "showing 90" in summary(page)


def test_filter_changes_the_count(ui: Page) -> None:
    page = ui.open()
    section = page.locator("details.field[data-field='meta.color']")
    if not section.evaluate("d => d.open"):
        section.locator("summary").click()
    first = section.locator(".values li").first
    first.wait_for()
    value = first.locator(".value").inner_text()
    expected = int(first.locator(".count").inner_text().replace(",", ""))
    assert 0 < expected < N_IMAGES
    first.locator("input").check()
    page.wait_for_function(f"document.querySelector('#summary').textContent.startsWith('{expected} assets')")
    assert page.locator("#active-filters .chip").inner_text().startswith(f"color: {value}")
    page.wait_for_function(f"document.querySelectorAll('#results .card').length === {min(expected, 40)}")
    texts = page.locator("#results .card .kv").all_inner_texts()
    assert all(f"color: {value}" in t for t in texts)
    ui.shot("filter")
    # Removing the filter brings the whole catalog back.
    page.locator("#active-filters .chip button").click()
    page.wait_for_function(f"document.querySelector('#summary').textContent.startsWith('{N_IMAGES} assets')")


def test_a_date_range_filter(ui: Page, server: LiveServer) -> None:
    page = ui.open()
    section = page.locator("details.field[data-field='meta.captured_at']")
    section.locator("summary").click()
    section.get_by_label("captured at from").fill("2024-03-01")
    section.get_by_label("captured at to").fill("2024-06-30")
    section.get_by_label("captured at to").press("Tab")  # a date input commits on change
    # The whole last day counts: "to 2024-06-30" is "before 2024-07-01".
    flt = {"captured_at": {"gte": "2024-03-01", "lt": "2024-07-01"}, "status": "ok"}
    expected = httpx.get(f"{server.url}/api/v1/assets/count", params={"filter": json.dumps(flt)}).json()[
        "count"
    ]
    assert 0 < expected < N_IMAGES
    page.wait_for_function(f"document.querySelector('#summary').textContent.startsWith('{expected} assets')")
    assert "≥ 2024-03-01 and ≤ 2024-06-30" in page.locator("#active-filters .chip").inner_text()


def test_upload_an_example_image(ui: Page, data_dir: Path) -> None:
    page = ui.open()
    example = data_dir / "img_00007.jpg"
    page.set_input_files("#files", str(example))
    page.wait_for_function("document.querySelector('#summary').textContent.includes('Best matches')")
    page.wait_for_function("document.querySelectorAll('#results .card .score').length > 0")
    assert page.locator("#examples li").count() == 1
    # The colour-layout encoder finds the image itself first, at cosine ~1.
    top = page.locator("#results .card").first
    assert top.locator(".name").inner_text() == example.name
    assert float(top.locator(".score").inner_text()) > 0.99
    ui.shot("image-search")


def test_a_negative_mark_drops_the_result(ui: Page) -> None:
    page = ui.open()
    search_text(page, "a blue circle")
    before = card_ids(page)
    victim = before[1]
    page.locator(f"#results .card[data-id='{victim}'] .mark.unlike").click()
    assert page.locator(f"#results .card[data-id='{victim}'] .mark.unlike").get_attribute("aria-pressed") == (
        "true"
    )
    assert page.locator("#unlike-list li").count() == 1
    assert page.locator("#search-button").inner_text() == "Search again"
    page.click("#search-button")
    page.wait_for_function(
        f"!document.querySelector(\"#results .card[data-id='{victim}']\") && "
        "document.querySelectorAll('#results .card').length === 40"
    )
    after = card_ids(page)
    assert victim not in after and len(after) == 40
    ui.shot("negative")


def test_select_click_shift_click_and_all(ui: Page) -> None:
    page = ui.open()
    boxes = page.locator("#results .card .pick")
    boxes.nth(2).click()
    boxes.nth(6).click(modifiers=["Shift"])
    assert page.locator("#selection-count").inner_text() == "5 assets selected"
    assert page.locator("#results .card.selected").count() == 5
    boxes.nth(4).click()  # one off again
    assert page.locator("#selection-count").inner_text() == "4 assets selected"
    page.click("#select-all")
    assert page.locator("#selection-count").inner_text() == "40 assets selected"
    page.click("#select-none")
    assert page.locator("#selection-count").inner_text() == "0 assets selected"


def test_export_the_selection_to_a_file(ui: Page, tmp_path: Path) -> None:
    page = ui.open()
    boxes = page.locator("#results .card .pick")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])
    chosen = card_ids(page)[:3]
    page.click("#export-open")
    dialog = page.locator("#export-dialog")
    assert dialog.locator("#export-what-ids-label").inner_text().endswith("(3 assets)")
    dialog.locator("#export-target").select_option("jsonl")
    out = tmp_path / "picked.jsonl"
    dialog.locator("#export-path").fill(str(out))
    dialog.locator("#export-submit").click()
    dialog.locator("#export-result .ok").wait_for()
    text = dialog.locator("#export-result").inner_text()
    assert "succeeded" in text and "3 selected" in text and str(out) in text, text
    ui.shot("export")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(chosen)
    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_api_errors_are_shown_in_plain_words(ui: Page, tmp_path: Path) -> None:
    page = ui.open()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a PNG at all")
    page.set_input_files("#files", str(broken))
    alert = page.locator("#alert")
    alert.wait_for()
    text = alert.inner_text()
    assert text.startswith("Please check the input:") and "example image 1" in text, text
    assert "Traceback" not in text
    alert.get_by_role("button", name="Dismiss the message").click()
    assert not alert.is_visible()


# -- the asset view and the keyboard ---------------------------------------------------------


def test_asset_view_opens_steps_and_closes_with_the_keyboard(ui: Page) -> None:
    page = ui.open()
    page.locator("#results .card .thumb").first.focus()
    first_name = page.locator("#results .card .name").first.inner_text()
    page.keyboard.press("Enter")
    dialog = page.locator("#detail")
    dialog.wait_for()
    assert dialog.locator("h2").inner_text() == first_name
    assert dialog.locator(".props dt", has_text="color").count() == 1  # metadata is listed
    page.wait_for_function("document.querySelector('#detail img.large').naturalWidth > 0")
    ui.shot("asset")
    page.keyboard.press("ArrowRight")
    assert dialog.locator("h2").inner_text() == page.locator("#results .card .name").nth(1).inner_text()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    # Focus returns to where it was, so keyboard users keep their place.
    assert page.evaluate("document.activeElement.classList.contains('thumb')")


def test_tab_order_reaches_the_search_box_and_enter_searches(ui: Page) -> None:
    page = ui.open()
    page.locator("body").focus()
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("a green square")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#summary').textContent.includes('Best matches')")


# -- the map ---------------------------------------------------------------------------


def drag(page: Any, box: dict[str, float], start: tuple[float, float], end: tuple[float, float]) -> None:
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    x1, y1 = box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def map_computed(ui: Page) -> None:
    """Wait for the default (UMAP) layout: its first fit in a process compiles (numba), seconds to minutes."""
    deadline = time.monotonic() + 600
    while not httpx.get(f"{ui.url}/api/v1/projector", timeout=30).json()["available"]:
        assert time.monotonic() < deadline, "the map's layout was not computed in 10 minutes"
        time.sleep(0.5)


def test_projector_box_and_lasso_selection(ui: Page) -> None:
    map_computed(ui)
    page = ui.open()
    page.click("#tab-map")
    page.wait_for_function("document.querySelector('#map-status').textContent.includes('points')")
    assert "90 points" in page.locator("#map-status").inner_text()
    page.locator("#map-legend .legend-item").first.wait_for()
    ui.shot("map")
    canvas = page.locator("#map-canvas").bounding_box()
    # A box over the whole map (the pan tool box-selects with Shift held).
    page.click("label[for=tool-box]")
    drag(page, canvas, (0.01, 0.01), (0.99, 0.99))
    count = page.locator("#map-selection-count")
    assert count.inner_text().startswith("90 of 90 points selected"), count.inner_text()
    # A lasso around the left half of the map: some points, not all.
    page.click("label[for=tool-lasso]")
    canvas = page.locator("#map-canvas").bounding_box()
    page.mouse.move(canvas["x"] + 5, canvas["y"] + 5)
    page.mouse.down()
    for fx, fy in [(0.5, 0.01), (0.5, 0.99), (0.01, 0.99), (0.01, 0.02)]:
        page.mouse.move(canvas["x"] + fx * canvas["width"], canvas["y"] + fy * canvas["height"], steps=5)
    page.mouse.up()
    chosen = int(count.inner_text().split(" ")[0].replace(",", ""))
    assert 0 < chosen < N_IMAGES, count.inner_text()
    ui.shot("map-lasso")
    # The selection becomes the results grid.
    page.click("#map-show")
    page.wait_for_function(f"document.querySelectorAll('#results .card').length === {min(chosen, 40)}")
    assert summary(page).startswith(f"{chosen} point")
    assert page.locator("#scope-banner").is_visible()


def test_projector_hover_click_colour_and_keyboard(ui: Page) -> None:
    map_computed(ui)
    page = ui.open()
    page.click("#tab-map")
    page.wait_for_function("document.querySelector('#map-status').textContent.includes('points')")
    page.select_option("#map-color", "meta.shape")
    page.wait_for_function(
        "[...document.querySelectorAll('#map-legend .legend-item')]"
        ".some(b => b.textContent.includes('circle'))"
    )
    # Where point 0 is drawn, from the page's own map (main.js exports its parts).
    x, y = page.evaluate(
        """async () => {
          const { map } = await import('/static/js/main.js');
          const s = map.scatter, c = document.querySelector('#map-canvas').getBoundingClientRect();
          const [x, y] = s.toScreen(s.xy[0], s.xy[1]);
          return [c.left + x, c.top + y];
        }"""
    )
    page.mouse.move(x, y)
    tip = page.locator("#map-tip")
    tip.wait_for()
    page.wait_for_function("document.querySelector('#map-tip img').naturalWidth > 0")
    page.wait_for_function("document.querySelector('#map-tip .tip-name').textContent.includes('.jpg')")
    assert "shape: " in tip.inner_text()
    ui.shot("map-hover")
    page.mouse.click(x, y)  # a click on a point opens its asset
    page.locator("#detail").wait_for()
    assert page.locator("#detail h2").inner_text() in tip.inner_text()
    page.keyboard.press("Escape")
    # Keyboard: zoom, pick the box tool, reset the view, Escape clears a selection.
    canvas = page.locator("#map-canvas")
    canvas.focus()
    scale = "(async () => (await import('/static/js/main.js')).map.scatter.scale)()"
    before = page.evaluate(scale)
    page.keyboard.press("+")
    assert page.evaluate(scale) > before
    page.keyboard.press("0")
    assert page.evaluate(scale) == pytest.approx(before)
    page.keyboard.press("b")
    assert page.locator("#tool-box").is_checked()
    page.locator("#map-legend .legend-item").first.click()  # a legend entry selects its points
    assert page.locator("#map-selection").is_visible()
    canvas.focus()
    page.keyboard.press("Escape")
    assert not page.locator("#map-selection").is_visible()


# -- API keys ----------------------------------------------------------------------------------


def test_a_server_with_api_keys_asks_for_one(browser: Any, server: LiveServer, tmp_path: Path) -> None:
    from service.api.app import create_app

    key = "web-test-key-0123456789"
    settings = Settings(home=tmp_path / "home", api_keys=f"{key}:read", _env_file=None)  # type: ignore[call-arg]
    # The same catalog behind a second app that checks keys.
    with LiveServer(create_app(settings, catalog=server.catalog)) as guarded:  # type: ignore[attr-defined]
        for page in _page(browser, guarded, enforce_csp=False):
            p = page.page
            p.goto(guarded.url + "/")
            dialog = p.locator("#key-dialog")
            dialog.wait_for()
            assert "needs an API key" in dialog.inner_text()
            dialog.locator("#key-input").fill(key)
            dialog.locator("#key-input").press("Enter")
            p.wait_for_selector("#results .card")
            # Thumbnails need the key too: fetched with it, shown from blob: URLs.
            p.wait_for_function("document.querySelector('#results .card img').naturalWidth > 0")
            assert p.locator("#results .card img").first.get_attribute("src").startswith("blob:")
            assert count_in(summary(p)) == N_IMAGES
            page.errors.clear()  # the 401s before the key was given are expected


def test_an_empty_catalog_says_what_to_do(browser: Any, tmp_path: Path) -> None:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    settings = Settings(home=tmp_path / "empty", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=SlowableEncoder())
    try:
        with LiveServer(create_app(settings, catalog=catalog)) as empty:
            for page in _page(browser, empty, enforce_csp=True):
                p = page.page
                p.goto(empty.url + "/")
                p.locator("#empty-catalog").wait_for()
                assert "loupe source add" in p.locator("#empty-catalog").inner_text()
                p.click("#tab-map")
                p.get_by_text("No assets yet").wait_for()
    finally:
        catalog.close()


# -- syncs (last: it adds a source to the shared catalog) ---------------------------------------


def test_a_running_sync_shows_its_progress(ui: Page, server: LiveServer, tmp_path: Path) -> None:
    from service.synth.dataset import write_dataset

    more = tmp_path / "more"
    write_dataset(more, 48, 12, size=48)
    page = ui.open()
    server.catalog.encoder.delay = 0.4  # type: ignore[attr-defined]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            source = {"name": "more", "kind": "local", "config": {"path": str(more)}}
            resp = client.post("/api/v1/sources", json=source)
            assert resp.status_code == 201, resp.text
            resp = client.post("/api/v1/sources/more/sync", json={})
            assert resp.status_code == 202, resp.text
        page.reload()
        job = page.locator("#jobs .job.running, #jobs .job.queued")
        job.first.wait_for()
        assert "Syncing more" in job.first.inner_text()
        assert page.locator("#jobs progress").count() == 1
        ui.shot("sync")
    finally:
        server.catalog.encoder.delay = 0.0  # type: ignore[attr-defined]
    page.locator("#jobs .job.succeeded").wait_for(timeout=60_000)
    assert "Synced more: 48 added" in page.locator("#jobs .job.succeeded").inner_text()
    page.wait_for_function(
        f"document.querySelector('#summary').textContent.startsWith('{N_IMAGES + 48} assets')"
    )


def test_a_running_sync_is_cancelled_from_the_page(ui: Page, server: LiveServer, tmp_path: Path) -> None:
    from service.synth.dataset import write_dataset

    slow = tmp_path / "slow"
    write_dataset(slow, 64, 13, size=48)
    page = ui.open()
    ingest = server.catalog.settings.ingest  # type: ignore[attr-defined]
    batch_size, ingest.batch_size = ingest.batch_size, 4  # 16 batches of half a second each
    server.catalog.encoder.delay = 0.5  # type: ignore[attr-defined]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            source = {"name": "slow", "kind": "local", "config": {"path": str(slow)}}
            assert client.post("/api/v1/sources", json=source).status_code == 201
            job = client.post("/api/v1/sources/slow/sync", json={}).json()
            page.reload()
            row = page.locator(f'#jobs .job[data-id="{job["id"]}"]')
            row.locator("text=Syncing slow").wait_for(timeout=WAIT_MS)
            ui.shot("sync-cancel-before")
            row.get_by_role("button", name="Cancel the sync of slow").click()
            page.locator(f'#jobs .job.cancelled[data-id="{job["id"]}"]').wait_for(timeout=30_000)
            text = page.locator(f'#jobs .job[data-id="{job["id"]}"]').inner_text()
            assert text.startswith("Sync of slow cancelled:") and "before it stopped" in text, text
            ui.shot("sync-cancelled")
            done = client.get(f"/api/v1/jobs/{job['id']}").json()
            assert done["state"] == "cancelled" and 0 < done["counts"]["added"] < 64, done
            kept = client.get("/api/v1/assets", params={"filter": '{"source": "slow"}', "limit": 100}).json()
            assert len(kept["data"]) == done["counts"]["added"], "exactly the committed batches are kept"
    finally:
        server.catalog.encoder.delay = 0.0  # type: ignore[attr-defined]
        ingest.batch_size = batch_size
