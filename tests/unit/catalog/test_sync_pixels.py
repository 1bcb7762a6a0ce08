"""The pixel budget bounds the pixels a sync decodes at once, whatever the number of fetch workers."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from service.catalog import sync
from service.catalog.decode import Decoded, Opened, PixelBudget
from service.config import Settings
from tests.fakes import FakeEncoder
from tests.unit.catalog.sync_helpers import MemorySource, embedded_index, image_size, png, run_sync

SIZE = (400, 300)  # 120,000 pixels per image
PIXELS = SIZE[0] * SIZE[1]


class DecodeMeter:
    """Counts the pixels between the start of a decode and the end of `prepare`.

    Each decode waits (up to `linger_s`) until `crowd` decodes are in flight at once, so
    without a bound on pixels the crowd forms every time; with one, the wait times out.
    """

    def __init__(self, *, crowd: int, linger_s: float) -> None:
        self.crowd, self.linger_s = crowd, linger_s
        self.held = self.peak = self.running = 0
        self._cond = threading.Condition()

    def started(self, pixels: int) -> None:
        with self._cond:
            self.held += pixels
            self.running += 1
            self.peak = max(self.peak, self.held)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.running >= self.crowd, timeout=self.linger_s)

    def done(self, pixels: int) -> None:
        with self._cond:
            self.held -= pixels
            self.running -= 1


class MeteredEncoder(FakeEncoder):
    def __init__(self, meter: DecodeMeter) -> None:
        self.meter = meter

    def prepare(self, image: Any) -> np.ndarray:
        out = super().prepare(image)
        self.meter.done(image.info["metered_pixels"])
        return out


@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch) -> DecodeMeter:
    """A DecodeMeter around the pipeline's decode step (sync.load)."""
    meter = DecodeMeter(crowd=4, linger_s=0.3)
    real = sync.load

    def load(opened: Opened, *, target: int) -> Decoded:
        meter.started(opened.pixels)
        decoded = real(opened, target=target)
        decoded.image.info["metered_pixels"] = opened.pixels
        return decoded

    monkeypatch.setattr(sync, "load", load)
    return meter


def _source(n: int) -> MemorySource:
    source = MemorySource()
    for i in range(n):
        source.put(f"{i}.png", png(i, SIZE))
    assert image_size(source.files["0.png"][1]) == PIXELS
    return source


@pytest.mark.parametrize(("budget", "most"), [(2 * PIXELS + 1, 2), (PIXELS // 2, 1)])
def test_the_budget_bounds_pixels_held_at_once(
    settings: Settings, metered: DecodeMeter, budget: int, most: int
) -> None:
    source = _source(8)
    with embedded_index(settings) as index:
        report = run_sync(
            index, source, encoder=MeteredEncoder(metered), fetch_workers=8, max_pixels_in_flight=budget
        )
    assert report.added == 8 and report.failed == 0  # an image over the whole budget decodes alone
    assert metered.peak == most * PIXELS


def test_without_a_budget_the_workers_crowd_in(settings: Settings, metered: DecodeMeter) -> None:
    source = _source(8)
    with embedded_index(settings) as index:
        report = run_sync(
            index, source, encoder=MeteredEncoder(metered), fetch_workers=8, max_pixels_in_flight=None
        )
    assert report.added == 8
    assert metered.peak >= metered.crowd * PIXELS  # what the budget exists to prevent


def test_waiters_are_served_in_order_so_a_large_image_is_not_starved() -> None:
    budget = PixelBudget(100)
    order: list[str] = []
    small_held = budget.hold(30)
    small_held.__enter__()  # 30 of 100 held

    def take(name: str, pixels: int, ready: threading.Event) -> None:
        ready.set()
        with budget.hold(pixels):
            order.append(name)

    threads = []
    for name, pixels in (("large", 95), ("small", 10)):
        ready = threading.Event()
        t = threading.Thread(target=take, args=(name, pixels, ready))
        t.start()
        ready.wait(5)
        time.sleep(0.1)  # queued behind the one before it
        threads.append(t)
    # "small" would fit beside the 30 held, but "large" asked first.
    assert order == [] and budget.held == 30
    small_held.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == ["large", "small"]
    assert budget.held == 0 and budget.peak == 95
