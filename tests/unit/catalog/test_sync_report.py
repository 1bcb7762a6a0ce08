"""What a sync reports: deleted and restored assets, and seconds per stage."""

from __future__ import annotations

import pytest

from service.catalog.sync import STAGES
from service.config import Settings
from tests.unit.catalog.sync_helpers import MemorySource, embedded_index, png, run_sync


def test_missing_assets_that_reappear_are_restored_and_prune_deletes(settings: Settings) -> None:
    source = MemorySource()
    for i in range(5):
        source.put(f"{i}.png", png(i))
    with embedded_index(settings) as index:
        first = run_sync(index, source)
        assert (first.added, first.restored, first.deleted) == (5, 0, 0)

        kept_back = {k: source.files.pop(k) for k in ("0.png", "1.png")}
        gone = run_sync(index, source)
        assert (gone.missing, gone.restored, gone.deleted) == (2, 0, 0)
        assert index.count(None) == 5  # marked missing, not deleted

        source.files["0.png"] = kept_back["0.png"]  # back unchanged: no re-encode
        source.put("1.png", png(101), version="2")  # back changed: re-encoded
        back = run_sync(index, source)
        assert (back.unchanged, back.updated, back.restored, back.missing) == (4, 1, 2, 0)
        assert back.counts["restored"] == 2

        again = run_sync(index, source)
        assert again.restored == 0  # restored once, not at every sync

        del source.files["2.png"], source.files["3.png"]
        pruned = run_sync(index, source, prune=True)
        assert (pruned.deleted, pruned.missing, pruned.restored) == (2, 0, 0)
        assert pruned.counts["deleted"] == 2
        assert index.count(None) == 3


def test_every_stage_is_timed(settings: Settings) -> None:
    source = MemorySource()
    for i in range(6):
        source.put(f"{i}.png", png(i))
    with embedded_index(settings) as index:
        report = run_sync(index, source, batch_size=4)
        assert tuple(report.timings) == STAGES
        for stage in ("read", "decode", "encode", "upsert"):
            assert report.timings[stage] > 0, stage
        unchanged = run_sync(index, source)
    # Nothing changed: nothing was read, decoded, encoded or written, but the listing ran.
    assert unchanged.timings["list"] > 0
    assert [unchanged.timings[s] for s in ("read", "decode", "encode", "upsert")] == [0.0] * 4


def test_the_cli_summary_shows_restored_deleted_and_stage_seconds(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli.sync import print_job

    source = MemorySource()
    for i in range(3):
        source.put(f"{i}.png", png(i))
    with embedded_index(settings) as index:
        run_sync(index, source)
        del source.files["2.png"]
        report = run_sync(index, source, prune=True)
    job = {
        "id": "j",
        "source": "mem",
        "state": "succeeded",
        "counts": report.counts,
        "timings": report.timings,
    }
    print_job(job)
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert first.endswith("0 missing, 1 deleted, 0 failed")
    assert second.startswith("  seconds per stage: list ") and "encode 0.00" in second  # nothing re-encoded
    print_job({**job, "counts": {**report.counts, "deleted": 0}, "timings": {}})
    assert capsys.readouterr().out.splitlines() == [
        "sync of mem succeeded: 2 seen, 0 added, 0 updated, 2 unchanged, 0 missing, 0 failed"
    ]
