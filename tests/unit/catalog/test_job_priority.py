"""Sync jobs are background work: every thread a job uses runs at a lower CPU priority."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.catalog.catalog import Catalog
from service.config import Settings
from service.jobs.runner import JobRunner
from tests.fakes import FakeEncoder
from tests.images import gradient

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread niceness is Linux")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class PriorityEncoder(FakeEncoder):
    """Records the niceness of the threads that decode (prepare) and encode for a sync."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def prepare(self, image: Image.Image) -> np.ndarray:
        self.seen.append(("prepare", threading.current_thread().name, _nice()))
        return super().prepare(image)

    def encode_prepared(self, items: Sequence[np.ndarray]) -> np.ndarray:
        self.seen.append(("encode", threading.current_thread().name, _nice()))
        return super().encode_prepared(items)


def test_a_sync_job_runs_its_job_fetch_and_encode_threads_niced(settings: Settings, tmp_path: Path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(12):
        gradient(i).save(root / f"{i}.png")
    enc = PriorityEncoder()
    cat = Catalog(settings, encoder=enc)  # type: ignore[arg-type]
    mine = _nice()
    runner = JobRunner(cat, nice=7)
    runner.start()
    try:
        cat.add_source("s", "local", {"path": str(root)})
        job = cat.submit_sync("s")
        runner.wake()
        deadline = time.monotonic() + 60
        while cat.jobs.get(job.id).state in ("queued", "running"):
            assert time.monotonic() < deadline, "the sync job did not finish"
            time.sleep(0.05)
        assert cat.jobs.get(job.id).state == "succeeded"
    finally:
        runner.stop()
        cat.close()
    kinds = {kind for kind, _, _ in enc.seen}
    assert kinds == {"prepare", "encode"}
    assert any(name.startswith("loupe-fetch") for kind, name, _ in enc.seen if kind == "prepare")
    assert all(prio == max(mine, 7) for _, _, prio in enc.seen), enc.seen
    assert _nice() == mine  # the caller's (request) threads keep their priority
