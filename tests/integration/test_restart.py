"""`kill -9` of `loupe serve` on the embedded default (SQLite state, embedded index), then a restart.

Tried as a new user would: a sync killed halfway left its job "running" and the restarted
server refused new syncs with 409 for the whole stale period. Now the restarted server
sees that the job's process is gone and resumes the job at once; the catalog ends with
every asset once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.test_replicas import Replica, add_source, assets_of, photos, submit, wait_done

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        LOUPE_JOBS_STALE_AFTER_S="120",  # far longer than the test may take: only the dead pid tells
        LOUPE_INGEST__BATCH_SIZE="2",
        LOUPE_INGEST__FETCH_WORKERS="2",
        LOUPE_INDEX__OPTIMIZE_AFTER_SYNC="false",
        **extra,
    )
    return env


def test_a_sync_killed_with_its_server_is_resumed_at_once_by_the_restarted_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(LOUPE_TEST_ENCODE_DELAY_S="0.15")  # 20 batches: about 3 s of sync
    first = Replica("first", home=home, env=env)
    try:
        first.wait_ready()
        add_source(first, "slow", photos(tmp_path / "photos", 40))
        job = submit(first, "slow")
        deadline = time.monotonic() + 30
        while (current := first.client.get(f"/api/v1/jobs/{job['id']}").json())["counts"]["added"] < 6:
            assert current["state"] in ("queued", "running") and time.monotonic() < deadline, current
            time.sleep(0.05)
        victim = first.owner
        first.kill()
    finally:
        first.stop()

    second = Replica("second", home=home, env=env)
    try:
        second.wait_ready()
        started = time.monotonic()
        while not ((row := second.client.get(f"/api/v1/jobs/{job['id']}").json())["detail"] or "").startswith(
            "resumed"
        ):
            assert row["state"] == "running" and time.monotonic() - started < 15, row
            time.sleep(0.05)
        # Taken over means re-queued with the reason; the runner's claim (a moment later,
        # in its own transaction) makes it running again under the new owner.
        assert row["state"] in ("queued", "running"), row
        assert row["detail"] == f"resumed: its process ({victim}) is gone", row
        done = wait_done(second, job["id"])
        assert done["state"] == "succeeded", done
        # The first server's committed batches were kept: the resumed sync skipped them.
        assert (
            done["counts"]["unchanged"] >= 6 and done["counts"]["unchanged"] + done["counts"]["added"] == 40
        )
        assert len(assets_of(second, "slow")) == 40
        rerun = wait_done(second, submit(second, "slow")["id"])
        assert rerun["state"] == "succeeded" and rerun["counts"]["unchanged"] == 40, rerun
    finally:
        second.stop()
    assert "Traceback" not in second.output(), second.output()
