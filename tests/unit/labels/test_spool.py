"""The import spool: batches kept in the state store, and in memory for the process that spooled them."""

from __future__ import annotations

from pathlib import Path

from service.labels import store
from service.labels.store import LabelSetStore
from service.state import StateStore

BATCHES = [
    [
        [
            "0b6c7a52-1c1b-4f0e-9a57-4c6f75706521",
            {"label": "a", "score": 0.25, "scores": {"a": 0.25, "b": 0.75}},
        ]
    ],
    [
        [
            "1b6c7a52-1c1b-4f0e-9a57-4c6f75706521",
            {"label": None, "boxes": [{"label": "b", "bbox": [1.5, 2, 3, 4]}]},
        ]
    ],
]


def test_batches_come_back_from_memory_and_from_the_store_alike(tmp_path: Path) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        sets = LabelSetStore(state)
        sets.put_batches("job-1", BATCHES)
        assert sets.batch("job-1", 1) is BATCHES[1]  # the spooling process: no decoding
        store._ready.drop("job-1")  # as another replica (or a restarted runner) sees it
        assert [sets.batch("job-1", i) for i in range(3)] == [*BATCHES, None]
        sets.put_batches("job-2", BATCHES)
        sets.drop_batches("job-2")  # the job ended: gone from both
        assert sets.batch("job-2", 0) is None
    finally:
        state.close()


def test_memory_keeps_only_the_newest_spools() -> None:
    ready = store._Ready()
    for n in range(ready.KEEP + 2):
        ready.put(f"job-{n}", BATCHES)
    assert ready.get("job-0", 0) is None and ready.get("job-1", 0) is None
    assert ready.get(f"job-{ready.KEEP + 1}", 1) is BATCHES[1]
    assert ready.get(f"job-{ready.KEEP + 1}", 2) is None
