"""Label sets made, imported and deleted from the Models view, in a real browser: a CSV upload
into a new set, a malformed file (refused whole, the new set gone again), labels from a
metadata field, an unreachable Label Studio, and a delete that asks first.

Uses test_page.py's catalog (90 shapes with `shape`/`background` metadata), server and browser.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.integration.web import test_page as base
from tests.integration.web.test_page import CHROMIUM, Page, _page, answer_dialog

data_dir, server, browser = base.data_dir, base.server, base.browser
ui = base.ui

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", timeout=60)


def assets(server: LiveServer) -> list[dict[str, Any]]:
    with api(server) as c:
        return sorted(c.get("/assets", params={"limit": 1000}).json()["data"], key=lambda a: a["key"])


def set_names(server: LiveServer) -> list[str]:
    with api(server) as c:
        return [s["name"] for s in c.get("/labelsets").json()["data"]]


def open_import(ui: Page) -> Any:
    page = ui.page
    page.goto(f"{ui.url}/#models")
    page.locator("#label-sets").wait_for()
    page.click("#labels-import-open")
    page.locator("#labels-import").wait_for()
    return page


def import_into_new(page: Any, name: str, *, role: str = "ground_truth") -> None:
    page.select_option("#import-set", "")
    page.fill("#import-name", name)
    page.select_option("#import-role", role)
    page.select_option("#import-task", "classification")


def wait_status(page: Any) -> str:
    page.locator("#import-status .ok, #import-status .error").first.wait_for()
    return page.locator("#import-status").inner_text()


def test_a_csv_upload_makes_a_set_with_the_apis_counts_and_its_fields_in_the_sidebar(
    ui: Page, server: LiveServer, tmp_path: Path
) -> None:
    rows = assets(server)[:30]
    path = tmp_path / "shapes.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["asset_id", "label"])
        w.writerows([a["id"], a["metadata"]["shape"]] for a in rows)
        w.writerow(["00000000-0000-0000-0000-000000000000", "circle"])  # matches no asset
    page = open_import(ui)
    import_into_new(page, "pagecsv")
    page.select_option("#import-from", "file")
    page.set_input_files("#import-file", str(path))
    page.select_option("#import-format", "csv")
    page.click("#import-run")
    status = wait_status(page)
    assert "Imported 30 annotations into pagecsv" in status and "1 matched no asset" in status, status
    assert "00000000-0000-0000-0000-000000000000" in status  # the unmatched record is listed
    with api(server) as c:
        held = c.get("/labelsets/pagecsv").json()
        count = c.get(
            "/assets/count", params={"filter": json.dumps({"labels.pagecsv.label": {"exists": True}})}
        )
    assert held["role"] == "ground_truth" and held["assets"] == 30 and count.json()["count"] == 30
    row = page.locator("#label-sets tr", has_text="pagecsv")
    row.wait_for()
    assert row.locator("td.num").first.inner_text() == "30"  # the Assets column
    page.locator("details.field[data-field='labels.pagecsv.label']").wait_for(state="attached")
    ui.shot("labelsets-import")


def test_a_malformed_file_imports_nothing_and_leaves_no_new_set(
    ui: Page, server: LiveServer, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("asset_id,label\n" + assets(server)[0]["id"] + ",circle\nnot-an-id\n")
    before = set_names(server)
    page = open_import(ui)
    import_into_new(page, "pagebad")
    page.set_input_files("#import-file", str(path))
    page.select_option("#import-format", "csv")
    page.click("#import-run")
    status = wait_status(page)
    assert page.locator("#import-status .error").count() == 1
    assert "line 3" in status, status  # the error names where the file is wrong
    page.wait_for_function("() => !document.querySelector('#import-run').disabled")
    assert set_names(server) == before and "pagebad" not in page.locator("#label-sets").inner_text()
    # A form lacking its file says so without sending anything.
    page.fill("#import-name", "pagenofile")
    page.set_input_files("#import-file", [])
    page.click("#import-run")
    assert "Choose the file" in wait_status(page)
    assert set_names(server) == before


def test_labels_from_a_metadata_field_and_an_unreachable_label_studio(ui: Page, server: LiveServer) -> None:
    page = open_import(ui)
    import_into_new(page, "pagefield")
    page.select_option("#import-from", "field")
    page.select_option("#import-field", "meta.shape")
    page.click("#import-run")
    assert "Imported 90 annotations into pagefield" in wait_status(page)
    with api(server) as c:
        assert c.get("/labelsets/pagefield").json()["assets"] == 90
    # Label Studio where nothing listens: refused in plain words, and the new set removed again.
    before = set_names(server)
    import_into_new(page, "pagels")
    page.select_option("#import-from", "label-studio")
    page.fill("#import-ls-url", "http://127.0.0.1:9")
    page.fill("#import-ls-token", "secret")
    page.fill("#import-ls-project", "3")
    page.click("#import-run")
    status = wait_status(page)
    assert page.locator("#import-status .error").count() == 1 and "Traceback" not in status, status
    page.wait_for_function("() => !document.querySelector('#import-run').disabled")
    assert set_names(server) == before


def test_deleting_a_set_asks_first_then_removes_it_and_its_fields(ui: Page, server: LiveServer) -> None:
    with api(server) as c:
        assert (
            c.post(
                "/labelsets", json={"name": "pagedel", "role": "ground_truth", "task": "classification"}
            ).status_code
            == 201
        )
        job = c.post("/labelsets/pagedel/annotations", json={"from_field": "shape"})
        assert job.status_code == 202, job.text
    from tests.jobs import wait_for

    with api(server) as c:
        wait_for(c, "/jobs", job.json(), succeeded=True)
    page = open_import(ui)  # its open form offers the set, until the set is gone
    option = "#import-set option[value='pagedel']"
    page.locator(option).wait_for(state="attached")
    button = page.locator(".set-delete[data-name='pagedel']")
    button.wait_for()
    field = "details.field[data-field='labels.pagedel.label']"
    page.locator(field).wait_for(state="attached")
    messages: list[str] = []

    def answer(accept: bool) -> Any:
        return answer_dialog(messages, accept=accept)

    page.once("dialog", answer(False))
    button.click()  # the dialog is answered inside the click
    assert messages and "pagedel" in messages[0] and "labels.pagedel" in messages[0]
    assert "pagedel" in set_names(server)
    page.once("dialog", answer(True))
    button.click()
    page.locator(".set-delete[data-name='pagedel']").wait_for(state="detached")
    page.locator(field).wait_for(state="detached")
    page.locator(option).wait_for(state="detached")
    assert "pagedel" not in set_names(server)
    with api(server) as c:
        count = c.get(
            "/assets/count", params={"filter": json.dumps({"labels.pagedel.label": {"exists": True}})}
        )
    assert count.json()["count"] == 0
    ui.shot("labelsets-deleted")


def test_the_import_form_works_under_the_content_security_policy(browser: Any, server: LiveServer) -> None:
    for strict in _page(browser, server, enforce_csp=True):
        page = open_import(strict)
        import_into_new(page, "pagecsp")
        page.select_option("#import-from", "field")
        page.select_option("#import-field", "meta.background")
        page.click("#import-run")
        page.locator("#import-status .ok").wait_for()
        assert "Imported 90 annotations into pagecsp" in page.locator("#import-status").inner_text()
        assert not [e for e in strict.errors if "Content Security Policy" in e]
