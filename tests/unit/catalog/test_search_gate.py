"""Syncs step aside while searches run (service/catalog/priority.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from service.catalog.catalog import Catalog
from service.catalog.priority import SearchGate
from service.config import Settings
from tests.fakes import FakeEncoder
from tests.images import gradient


def test_yield_returns_at_once_without_searches_and_waits_for_a_running_one():
    gate = SearchGate(max_wait_s=10)
    assert gate.yield_to_searches() is False
    entered, leave = threading.Event(), threading.Event()

    def search() -> None:
        with gate.search():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=search)
    t.start()
    assert entered.wait(5)
    threading.Timer(0.3, leave.set).start()
    t0 = time.monotonic()
    assert gate.yield_to_searches() is True
    assert 0.2 < time.monotonic() - t0 < 5  # until the search ended, not the 10 s bound
    t.join()
    assert gate.active == 0


def test_the_wait_is_bounded_so_a_stream_of_searches_cannot_stall_a_sync():
    gate = SearchGate(max_wait_s=0.2)
    with gate.search():
        t0 = time.monotonic()
        assert gate.yield_to_searches() is True
        assert 0.15 < time.monotonic() - t0 < 2


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        self.prepared = 0

    def prepare(self, image: Image.Image) -> np.ndarray:
        self.prepared += 1
        return super().prepare(image)


def test_a_sync_decodes_nothing_while_a_search_is_in_flight(settings: Settings, tmp_path: Path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(6):
        gradient(i).save(root / f"{i}.png")
    enc = CountingEncoder()
    cat = Catalog(settings, encoder=enc)  # type: ignore[arg-type]
    cat.searches.max_wait_s = 30
    try:
        cat.add_source("s", "local", {"path": str(root)})
        done: list[object] = []
        with cat.searches.search():  # a long search holds the gate
            sync = threading.Thread(target=lambda: done.append(cat.sync("s")))
            sync.start()
            time.sleep(1.0)
            assert enc.prepared == 0 and not done
        sync.join(30)
        assert enc.prepared == 6
        assert done and done[0].counts["added"] == 6  # type: ignore[attr-defined]
    finally:
        cat.close()
